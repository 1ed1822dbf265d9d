from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from rest_framework.exceptions import ValidationError

from agents.runners import RunCancelled, RunFailed, UnknownAgentType, get_runner, registered_types


class FakeContext:
    def __init__(self, configuration, attempt=1):
        self.session_id = "s-1"
        self.agent_id = "a-1"
        self.agent_name = "Agent"
        self.attempt = attempt
        self.configuration = configuration
        self.progress: list[tuple[float, str]] = []
        self.cancelled = False

    def report_progress(self, percent, message=""):
        self.progress.append((percent, message))

    def check_cancelled(self):
        if self.cancelled:
            raise RunCancelled("Cancelled.")

    def sleep(self, seconds):
        self.check_cancelled()


def report(value):
    """An allow-listed callable for the python runner's tests."""
    value.report_progress(50, "half")
    return f"called for {value.agent_id}"


def test_the_built_in_types_are_registered():
    assert registered_types() == ["demo", "python", "webhook"]
    with pytest.raises(UnknownAgentType):
        get_runner("nope")


def test_demo_reports_progress_after_each_step():
    context = FakeContext({"steps": 4, "stepSeconds": 0, "output": "done"})
    assert get_runner("demo").run(context) == "done"
    assert [p for p, _ in context.progress] == [25, 50, 75, 100]


def test_demo_fails_its_first_attempts_at_the_last_step():
    runner = get_runner("demo")
    context = FakeContext({"steps": 2, "stepSeconds": 0, "failTimes": 2}, attempt=2)
    with pytest.raises(RunFailed):
        runner.run(context)
    assert [p for p, _ in context.progress] == [50]
    assert runner.run(FakeContext({"steps": 2, "failTimes": 2, "stepSeconds": 0}, attempt=3))


def test_demo_with_no_steps_fails_or_succeeds_by_attempt():
    runner = get_runner("demo")
    with pytest.raises(RunFailed):
        runner.run(FakeContext({"steps": 0, "failTimes": 1}))
    assert "0 steps" in runner.run(FakeContext({"steps": 0}))


@pytest.mark.parametrize(
    "configuration",
    [
        {"steps": -1},
        {"steps": 1.5},
        {"steps": True},
        {"stepSeconds": "1"},
        {"failTimes": 1000},
        {"output": 3},
    ],
)
def test_demo_rejects_bad_configuration(configuration):
    with pytest.raises(ValidationError):
        get_runner("demo").validate_configuration(configuration)


class Endpoint(BaseHTTPRequestHandler):
    status = 200
    received: list[dict] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Endpoint.received.append({"body": json.loads(body), "auth": self.headers.get("X-Key")})
        self.send_response(Endpoint.status)
        self.end_headers()
        self.wfile.write(b"agent says hi")

    def log_message(self, *args):
        pass


@pytest.fixture
def endpoint(settings):
    server = HTTPServer(("127.0.0.1", 0), Endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    settings.AGENT_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    Endpoint.received = []
    Endpoint.status = 200
    yield f"http://127.0.0.1:{server.server_port}/run"
    server.shutdown()


def test_webhook_calls_the_endpoint_with_the_ids(endpoint):
    config = {"url": endpoint, "headers": {"X-Key": "k"}, "timeoutSeconds": 5}
    runner = get_runner("webhook")
    runner.validate_configuration(config)
    assert runner.run(FakeContext(config)) == "agent says hi"
    (call,) = Endpoint.received
    assert call["body"]["agentId"] == "a-1" and call["body"]["sessionId"] == "s-1"
    assert call["auth"] == "k"


def test_webhook_fails_on_a_non_2xx_answer(endpoint):
    Endpoint.status = 503
    with pytest.raises(RunFailed, match="503"):
        get_runner("webhook").run(FakeContext({"url": endpoint}))


def test_webhook_fails_on_a_timeout(settings):
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    settings.AGENT_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    try:
        with pytest.raises(RunFailed, match="timed out"):
            get_runner("webhook").run(FakeContext({"url": url, "timeoutSeconds": 0.3}))
    finally:
        listener.close()


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1/x", "http://localhost:8000/", "http://10.0.0.1/", "http://169.254.169.254/"],
)
def test_webhook_refuses_internal_addresses_unless_allowed(url):
    with pytest.raises(ValidationError):
        get_runner("webhook").validate_configuration({"url": url})
    with pytest.raises(RunFailed, match="internal"):
        get_runner("webhook").run(FakeContext({"url": url}))


@pytest.mark.parametrize(
    "configuration",
    [
        {},
        {"url": "ftp://example.com/"},
        {"url": "http:///nohost"},
        {"url": "https://example.com", "method": "DELETE"},
        {"url": "https://example.com", "headers": {"a": 1}},
        {"url": "https://example.com", "timeoutSeconds": 0},
    ],
)
def test_webhook_rejects_bad_configuration(configuration, settings):
    settings.AGENT_WEBHOOK_ALLOWED_HOSTS = ["example.com"]
    with pytest.raises(ValidationError):
        get_runner("webhook").validate_configuration(configuration)


def test_python_calls_an_allow_listed_function(settings):
    settings.AGENT_PYTHON_CALLABLES = ["tests.agents.test_runners.report"]
    config = {"callable": "tests.agents.test_runners.report"}
    runner = get_runner("python")
    runner.validate_configuration(config)
    context = FakeContext(config)
    assert runner.run(context) == "called for a-1"
    assert context.progress == [(50, "half")]


@pytest.mark.parametrize("configuration", [{}, {"callable": 3}, {"callable": "os.system"}])
def test_python_refuses_anything_not_allow_listed(configuration, settings):
    settings.AGENT_PYTHON_CALLABLES = ["tests.agents.test_runners.report"]
    with pytest.raises(ValidationError):
        get_runner("python").validate_configuration(configuration)
