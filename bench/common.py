"""Shared helpers for the benchmarks: a throw-away PostgreSQL database, a Redis
database left as it was found, child processes that always stop, percentiles,
tables and a description of the machine.

Every benchmark talks only to 127.0.0.1 and bounds its loops in count and time.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
BENCH_SECRET_KEY = "bench-secret-key-that-is-long-enough-for-hmac-signing"
DEFAULT_POSTGRES = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS = "redis://127.0.0.1:6379/14"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def require_loopback(url: str) -> None:
    host = urlsplit(url).hostname or ""
    if host not in {"127.0.0.1", "localhost", "::1"}:
        raise SystemExit(f"Benchmarks only run against this machine, not {host!r}.")


# --- PostgreSQL -------------------------------------------------------------------


@contextlib.contextmanager
def bench_database(admin_url: str = DEFAULT_POSTGRES, *, keep: bool = False) -> Iterator[str]:
    """Create a PostgreSQL database for one run and drop it afterwards; yields its URL."""
    import psycopg

    require_loopback(admin_url)
    name = f"neonhub_bench_{os.getpid()}"
    parts = urlsplit(admin_url)
    url = urlunsplit(parts._replace(path=f"/{name}"))
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url
    finally:
        if keep:
            print(f"kept database {name}")
        else:
            with psycopg.connect(admin_url, autocommit=True) as admin:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def setup_django(database_url: str, redis_url: str, **settings_env: str) -> None:
    """Point this process's Django at the bench database and Redis, then migrate."""
    os.environ.update(bench_env(database_url, redis_url, **settings_env))
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0, interactive=False)


def bench_env(database_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    return {
        "DJANGO_SETTINGS_MODULE": "neonhub.settings",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": BENCH_SECRET_KEY,
        "DEBUG": "0",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "PYTHONUNBUFFERED": "1",
        **extra,
    }


# --- Redis ------------------------------------------------------------------------


@contextlib.contextmanager
def redis_database(url: str = DEFAULT_REDIS) -> Iterator[str]:
    """Use a Redis database for one run; delete the keys the run created, and only those."""
    import redis

    require_loopback(url)
    client = redis.Redis.from_url(url)
    before = set(client.scan_iter(count=1000))
    if before:
        print(f"note: {url} already holds {len(before)} keys; they are left alone")
    try:
        yield url
    finally:
        created = [key for key in client.scan_iter(count=1000) if key not in before]
        for start in range(0, len(created), 500):
            client.delete(*created[start : start + 500])
        client.close()


# --- processes --------------------------------------------------------------------


class Child:
    """A child process in its own process group, its output in a file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.log_path = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, text: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.output():
                return
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.output()[-3000:]}")
            time.sleep(0.1)
        raise TimeoutError(f"{self.name}: {text!r} not seen in {timeout} s")

    def rss_mib(self) -> float | None:
        try:
            status = Path(f"/proc/{self.popen.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return None

    def stop(self, timeout: float = 20) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        self._log.close()

    def remove_log(self) -> None:
        with contextlib.suppress(OSError):
            self.log_path.unlink()


def celery(*args: str) -> list[str]:
    return [str(BIN / "celery"), "-A", "neonhub", *args]


def start_worker(env: dict[str, str], concurrency: int = 8) -> Child:
    """A worker as the Procfile starts it (thread pool, ``concurrency`` threads)."""
    worker = Child(
        "worker",
        celery(
            "worker",
            "--pool=threads",
            f"--concurrency={concurrency}",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            f"--hostname=bench-{os.getpid()}@%h",
        ),
        env,
    )
    worker.wait_for("ready.", 60)
    return worker


def start_beat(env: dict[str, str], scheduler: str) -> Child:
    schedule_dir = tempfile.mkdtemp(prefix="bench-beat-")
    beat = Child(
        "beat",
        celery(
            "beat",
            "--loglevel=INFO",
            f"--scheduler={scheduler}",
            f"--schedule={schedule_dir}/schedule",
            "--pidfile=",
        ),
        env,
    )
    beat.wait_for("beat: Starting...", 60)
    return beat


def wait_until(predicate: Callable[[], bool], *, timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


# --- figures ----------------------------------------------------------------------


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile; ``math.inf`` entries stand for "not within the time limit"."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


def seconds(value: float | None, *, limit: float | None = None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if math.isinf(value):
        return f"> {limit:.0f} s" if limit else "never"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    cells = [[str(cell) for cell in row] for row in rows]
    widths = [max(len(str(h)), *(len(row[i]) for row in cells)) for i, h in enumerate(headers)]
    line = " | ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True))
    print(line)
    print("-+-".join("-" * w for w in widths))
    for row in cells:
        print(" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)))


def machine() -> dict[str, str]:
    """What the figures were measured on."""

    def run(*args: str) -> str:
        if shutil.which(args[0]) is None:
            return "?"
        try:
            return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return "?"

    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = run("free", "-h").splitlines()
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "nproc": run("nproc"),
        "memory": memory[1].split()[1] if len(memory) > 1 else "?",
        "python": platform.python_version(),
        "postgresql": run("psql", "--version").removeprefix("psql (PostgreSQL) "),
        "redis": run("redis-server", "--version").split(" v=")[-1].split()[0]
        if shutil.which("redis-server")
        else "?",
        "kernel": platform.release(),
    }


def append_results(path: Path, record: dict) -> None:
    """Add one record to a JSON list file (created if missing)."""
    records = json.loads(path.read_text()) if path.exists() else []
    records.append(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(records, indent=2, default=str) + "\n")
