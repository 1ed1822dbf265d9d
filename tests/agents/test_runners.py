from __future__ import annotations

import json
import threading

import pytest

from agents.runners import (
    ConfigurationError,
    RunCancelled,
    RunFailed,
    UnknownAgentType,
    get_runner,
    registered_types,
)
from tests.receivers import Receiver


class FakeContext:
    def __init__(self, configuration, attempt=1, input=None):
        self.session_id = "s-1"
        self.agent_id = "a-1"
        self.agent_name = "Agent"
        self.attempt = attempt
        self.configuration = configuration
        self.input = input or {}
        self.progress: list[tuple[float, str]] = []
        self.logged: list[tuple[str, str]] = []
        self.cancelled = False

    def log(self, message, level="INFO"):
        self.logged.append((level, message))

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
    ("echo", "said"),
    [("hello", "Echo: hello"), ({"a": [1, None]}, 'Echo: {"a": [1, null]}'), (None, "Echo: null")],
)
def test_demo_echoes_its_input(echo, said):
    output = get_runner("demo").run(FakeContext({"steps": 0}, input={"echo": echo, "x": 1}))
    assert output == f"Demo run finished 0 steps. {said}"


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
    with pytest.raises(ConfigurationError):
        get_runner("demo").validate_configuration(configuration)


@pytest.fixture
def endpoint(settings):
    settings.AGENT_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    receiver = Receiver(body=b"agent says hi")
    yield receiver
    receiver.close()


def test_webhook_calls_the_endpoint_with_the_ids_and_the_input(endpoint):
    config = {
        "url": f"http://127.0.0.1:{endpoint.port}/run",
        "headers": {"X-Key": "k"},
        "timeoutSeconds": 5,
    }
    runner = get_runner("webhook")
    runner.validate_configuration(config)
    run_input = {"topic": "Spring launch", "snake_case": {"keptAs": "sent"}}
    assert runner.run(FakeContext(config, input=run_input)) == "agent says hi"
    (call,) = endpoint.received
    body = json.loads(call.body)
    assert body["agentId"] == "a-1" and body["sessionId"] == "s-1"
    assert body["input"] == run_input
    assert (call.method, call.path, call.headers["X-Key"]) == ("POST", "/run", "k")


def test_webhook_keeps_the_first_2000_characters_of_the_answer(endpoint):
    endpoint.body = b"0123456789" * 10_000
    output = get_runner("webhook").run(FakeContext({"url": f"http://127.0.0.1:{endpoint.port}/"}))
    assert output == ("0123456789" * 200)


def test_webhook_fails_on_a_non_2xx_answer(endpoint):
    endpoint.status = 503
    with pytest.raises(RunFailed, match="503"):
        get_runner("webhook").run(FakeContext({"url": f"http://127.0.0.1:{endpoint.port}/"}))


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


def test_webhook_fails_when_the_endpoint_hangs_up_without_answering(settings):
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    hang_up = threading.Thread(target=lambda: listener.accept()[0].close(), daemon=True)
    hang_up.start()
    settings.AGENT_WEBHOOK_ALLOWED_HOSTS = ["127.0.0.1"]
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/"
    try:
        with pytest.raises(RunFailed, match="Webhook request failed"):
            get_runner("webhook").run(FakeContext({"url": url, "timeoutSeconds": 5}))
    finally:
        hang_up.join(5)
        listener.close()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://localhost:8000/",
        "http://10.0.0.1/",
        "http://169.254.169.254/",
        "http://100.100.100.200/latest/meta-data/",
        "http://[::ffff:169.254.169.254]/",
    ],
)
def test_webhook_refuses_internal_addresses_unless_allowed(url):
    with pytest.raises(ConfigurationError):
        get_runner("webhook").validate_configuration({"url": url})
    with pytest.raises(RunFailed, match="internal"):
        get_runner("webhook").run(FakeContext({"url": url}))


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:18902\\@1.1.1.1/../../internal/secret",
        "http://user@1.1.1.1/",
        "http://1.1.1.1\t/",
        "http://1.1.1.1%00.example.com/",
        "http://\u0435xample.com/",
    ],
)
def test_webhook_refuses_a_url_that_parsers_could_read_differently(url):
    with pytest.raises(ConfigurationError) as refused:
        get_runner("webhook").validate_configuration({"url": url})
    assert refused.value.key == "url" and refused.value.message
    # One stored before these checks existed is refused before the call.
    with pytest.raises(RunFailed, match="Webhook URL refused"):
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
    with pytest.raises(ConfigurationError):
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
    with pytest.raises(ConfigurationError):
        get_runner("python").validate_configuration(configuration)
