"""Start the project's real processes (worker, beat, daphne) for integration tests.

The benchmarks start theirs with the same helpers, once Django is set up on their database.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar
from urllib.parse import quote

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

T = TypeVar("T")


def test_database_url() -> str:
    """The URL of the database the tests run on, for child processes."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db.get("USER") or "", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    at = f"{credentials}@" if credentials else ""
    host = db.get("HOST") or "localhost"
    port = db.get("PORT") or 5432
    return f"postgres://{at}{host}:{port}/{quote(db['NAME'], safe='')}"


def child_env(**overrides: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "neonhub.settings",
            "DATABASE_URL": test_database_url(),
            "REDIS_URL": settings.REDIS_URL,
            "SECRET_KEY": settings.SECRET_KEY,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SCHEDULER_MAX_CONCURRENT": str(settings.SCHEDULER_MAX_CONCURRENT),
            "SCHEDULER_MAX_CONCURRENT_PER_USER": str(settings.SCHEDULER_MAX_CONCURRENT_PER_USER),
            "SCHEDULER_TYPE_LIMITS": ",".join(
                f"{agent_type}={limit}"
                for agent_type, limit in settings.SCHEDULER_TYPE_LIMITS.items()
            ),
            "SCHEDULER_MAX_RETRIES": str(settings.SCHEDULER_MAX_RETRIES),
            "SCHEDULER_BACKOFF_BASE": str(settings.SCHEDULER_BACKOFF_BASE),
            "SCHEDULER_BACKOFF_MAX": str(settings.SCHEDULER_BACKOFF_MAX),
            # The test's limits (the root conftest's generous ones unless it set
            # its own): every test run counts sign-ins from 127.0.0.1 in one
            # Redis counter, which a web process's default limit would refuse.
            "API_RATE_LIMIT": settings.API_RATE_LIMIT,
            "API_TOKEN_RATE_LIMIT": settings.API_TOKEN_RATE_LIMIT,
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(overrides)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """A child process whose output goes to a file, stopped with its group."""

    def __init__(self, name: str, args: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.log_path = Path(tempfile.mkstemp(prefix=f"neonhub-{name}-", suffix=".log")[1])
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str) -> None:
        def ready() -> bool:
            if predicate():
                return True
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.output()[-3000:]}")
            return False

        if not poll(ready, timeout, interval=0.1):
            raise TimeoutError(
                f"{self.name}: {what} not seen in {timeout} s:\n{self.output()[-3000:]}"
            )

    def signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            # It may still exit between the check and the signal.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 15) -> None:
        self.signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.popen.wait(timeout=5)
        self._log.close()

    def remove_log(self) -> None:
        with contextlib.suppress(OSError):
            self.log_path.unlink()


def celery_command(*args: str) -> list[str]:
    return [str(BIN / "celery"), "-A", "neonhub", *args]


def start_worker(
    concurrency: int = 8, *, hostname: str = "", options: Sequence[str] = (), **env: str
) -> Process:
    """A worker as the Procfile starts it (thread pool), once it reports ready."""
    hostname = hostname or f"test-{os.getpid()}-{time.monotonic_ns()}@%h"
    process = Process(
        "worker",
        celery_command(
            "worker",
            "--pool=threads",
            f"--concurrency={concurrency}",
            "--loglevel=INFO",
            "--without-gossip",
            "--without-mingle",
            f"--hostname={hostname}",
            *options,
        ),
        child_env(**env),
    )
    process.wait_for(lambda: "ready." in process.output(), 60, "worker ready")
    return process


def start_beat(*, scheduler: str = "", **env: str) -> Process:
    """Beat with the configured scheduler unless another is named, once it has started."""
    schedule_dir = tempfile.mkdtemp(prefix="neonhub-beat-")
    process = Process(
        "beat",
        celery_command(
            "beat",
            "--loglevel=INFO",
            f"--schedule={schedule_dir}/schedule",
            "--pidfile=",
            *([f"--scheduler={scheduler}"] if scheduler else []),
        ),
        child_env(**env),
    )
    process.wait_for(lambda: "beat: Starting..." in process.output(), 60, "beat start")
    return process


def start_daphne(port: int | None = None, **env: str) -> tuple[Process, int]:
    port = port or free_port()
    process = Process(
        "daphne",
        [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "neonhub.asgi:application"],
        child_env(**env),
    )

    def answers() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    process.wait_for(answers, 60, f"daphne listening on {port}")
    return process, port


def poll(predicate: Callable[[], T], timeout: float, interval: float = 0.05) -> T:
    """Call ``predicate`` until it returns something truthy or ``timeout`` has passed; return
    its last value."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(interval)
    return value


def wait_until(predicate, timeout: float = 30, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy, and return that."""
    value = poll(predicate, timeout, interval)
    if not value:
        raise AssertionError(f"{what} not reached within {timeout} s")
    return value
