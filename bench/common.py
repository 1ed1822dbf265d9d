"""Shared helpers for the benchmarks: a throw-away PostgreSQL database, a Redis
database left as it was found, a process's memory and CPU time, the load,
percentiles, tables and a description of the machine. Child processes come
from ``tests.processes``.

Every benchmark talks only to 127.0.0.1 and bounds its loops in count and time.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
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
# Worker, beat and daphne come from tests.processes (started once setup_django has run, so
# they share this process's database and Redis); these are the figures taken of them.


def rss_mib(pid: int) -> float | None:
    """Resident memory of a process in MiB, or None once it has gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process and its threads so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """A process and every process under it, e.g. a django-q2 cluster and its workers."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        pending.extend(children.get(current, []))
    return found


def tree_cpu_seconds(pid: int) -> float:
    """CPU time of a process and the processes under it that are still running."""
    total = 0.0
    for member in descendants(pid):
        with contextlib.suppress(OSError):
            total += cpu_seconds(member)
    return total


def tree_rss_mib(pid: int) -> float | None:
    sizes = [size for member in descendants(pid) if (size := rss_mib(member)) is not None]
    return sum(sizes) if sizes else None


def load_average() -> list[str]:
    """The 1-, 5- and 15-minute load averages: the machine is shared."""
    return Path("/proc/loadavg").read_text().split()[:3]


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
