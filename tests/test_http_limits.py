"""A request line or header too long for daphne gets an answer, not a dropped connection."""

from __future__ import annotations

import socket

import pytest
import requests
from twisted.internet.testing import StringTransport
from twisted.web.http import HTTPChannel

from neonhub.http_limits import answer_overlong_lines
from tests.processes import start_daphne

TOO_LONG = 100_000  # bytes; Twisted reads lines of up to 16 kB


def channel_fed(data: bytes) -> StringTransport:
    answer_overlong_lines()
    channel = HTTPChannel()
    channel.timeOut = None  # no idle timer: it would need a running reactor
    transport = StringTransport()
    channel.makeConnection(transport)
    channel.dataReceived(data)
    return transport


def test_a_request_line_too_long_is_answered_414_and_the_connection_closed():
    transport = channel_fed(b"GET /" + b"a" * TOO_LONG)
    head, _, body = transport.value().partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0] == b"HTTP/1.1 414 URI Too Long"
    assert b"Connection: close" in head
    assert body == b"Request line too long.\n"
    assert transport.disconnecting


def test_a_header_too_long_is_answered_431():
    transport = channel_fed(b"GET / HTTP/1.1\r\nHost: x\r\nCookie: " + b"a" * TOO_LONG)
    assert transport.value().startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert transport.disconnecting


def test_a_request_line_that_fits_is_left_to_twisted():
    transport = channel_fed(b"GET /" + b"a" * 8000)
    assert transport.value() == b""
    assert not transport.disconnecting


@pytest.fixture(scope="module")
def web(django_db_setup):
    daphne, port = start_daphne()
    yield f"http://127.0.0.1:{port}"
    daphne.stop()


@pytest.mark.integration
def test_the_web_process_answers_a_100_kb_path_with_414(web):
    response = requests.get(f"{web}/{'a' * TOO_LONG}", timeout=10)
    assert response.status_code == 414
    assert response.text == "Request line too long.\n"
    # The process is unharmed: the next request is served as usual.
    assert requests.get(f"{web}/healthz", timeout=10).status_code in (200, 503)


@pytest.mark.integration
def test_the_web_process_answers_a_100_kb_header_with_431(web):
    response = requests.get(f"{web}/healthz", headers={"Cookie": "a" * TOO_LONG}, timeout=10)
    assert response.status_code == 431


@pytest.mark.integration
def test_a_raw_client_reads_the_answer_before_the_close(web):
    host, port = web.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as client:
        client.sendall(b"GET /" + b"a" * TOO_LONG + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while chunk := client.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 414 URI Too Long\r\n")
    assert answer.endswith(b"\r\n\r\nRequest line too long.\n")
