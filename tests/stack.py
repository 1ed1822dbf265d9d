"""A private stack per test: its own redis-server, worker(s), beat and daphne.

Fault and scale-out tests stop, kill and multiply these processes, so they
never share them (nor the Redis the rest of the suite uses) with other tests.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time

import pytest
import requests
from rest_framework_simplejwt.tokens import AccessToken
from websockets.sync.client import ClientConnection, connect

from tests.processes import Process, free_port, start_beat, start_daphne, start_worker

FAST_SCHEDULER = {
    "SCHEDULER_LEASE_SECONDS": "3",
    "SCHEDULER_CHECK_INTERVAL": "1000",
    "SCHEDULER_BACKOFF_BASE": "200",
    "SCHEDULER_BACKOFF_MAX": "1000",
}


def start_redis(port: int) -> Process:
    workdir = tempfile.mkdtemp(prefix="neonhub-redis-")
    process = Process(
        "redis",
        [
            shutil.which("redis-server") or "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        {"PATH": "/usr/local/bin:/usr/bin:/bin"},
    )
    process.wait_for(lambda: "Ready to accept connections" in process.output(), 20, "redis ready")
    return process


class Stack:
    """Processes sharing one private Redis and the test database."""

    def __init__(self, **env: str) -> None:
        self.redis_port = free_port()
        self.env = {
            **FAST_SCHEDULER,
            **env,
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
        }
        self.redis: Process | None = start_redis(self.redis_port)
        self.processes: list[Process] = []
        self.base_url = ""

    def start_redis(self) -> None:
        self.redis = start_redis(self.redis_port)

    def stop_redis(self) -> None:
        if self.redis is not None:
            self.redis.stop()
            self.redis = None

    def worker(self, concurrency: int = 8, **env: str) -> Process:
        process = start_worker(concurrency, **{**self.env, **env})
        self.processes.append(process)
        return process

    def beat(self, **env: str) -> Process:
        process = start_beat(**{**self.env, **env})
        self.processes.append(process)
        return process

    def web(self, **env: str) -> str:
        process, port = start_daphne(**{**self.env, **env})
        self.processes.append(process)
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    def close(self) -> None:
        for process in reversed(self.processes):
            process.stop()
        self.stop_redis()


@pytest.fixture
def stack(transactional_db):
    created = []

    def make(**env: str) -> Stack:
        created.append(Stack(**env))
        return created[-1]

    yield make
    for each in created:
        each.close()


class Api:
    """A real HTTP client of the web process, signed in as a user."""

    def __init__(self, base_url: str, user) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {AccessToken.for_user(user)}"

    def post(self, path: str, json=None) -> requests.Response:
        return self.session.post(self.base_url + path, json=json, timeout=10)

    def get(self, path: str) -> requests.Response:
        return self.session.get(self.base_url + path, timeout=10)

    @property
    def token(self) -> str:
        return self.session.headers["Authorization"].split()[1]


def connect_websocket(base_url: str, token: str, **kwargs) -> ClientConnection:
    return connect(
        base_url.replace("http://", "ws://") + f"/ws/agents/?token={token}",
        open_timeout=10,
        close_timeout=2,
        **kwargs,
    )


def ask(socket: ClientConnection, event: str, data) -> dict:
    socket.send(json.dumps({"event": event, "data": data}))
    return json.loads(socket.recv(timeout=10))


def events_until(socket: ClientConnection, last: set[str], timeout: float = 30) -> list[dict]:
    """Frames received until one whose event is in ``last``."""
    frames: list[dict] = []
    deadline = time.monotonic() + timeout
    while not frames or frames[-1]["event"] not in last:
        frames.append(json.loads(socket.recv(timeout=max(0.1, deadline - time.monotonic()))))
    return frames
