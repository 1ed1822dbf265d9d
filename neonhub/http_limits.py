"""Answer a request whose line or header is too long instead of hanging up.

daphne serves HTTP through Twisted's ``HTTPChannel``, which reads the request
line and each header with ``LineReceiver``. A line longer than its
``MAX_LENGTH`` (16 kB) ends in ``LineReceiver.lineLengthExceeded``, which
drops the connection without a word: a client with a very long URL sees a
reset, not an error it can report. Neither daphne nor Twisted has a setting
for this, and daphne builds Twisted's channel itself (no factory or class to
hand it), so the one method is replaced on the class; ``neonhub.asgi``, which
every daphne process loads, installs it.
"""

from __future__ import annotations

from typing import Any

from twisted.web.http import HTTPChannel


def _answer_line_too_long(channel: HTTPChannel, line: bytes) -> None:
    # Nothing of this request has been read yet when its first line is the
    # long one: that is the request line, and the URL is what made it long.
    if channel._receivedHeaderSize == 0:
        status, body = b"414 URI Too Long", b"Request line too long.\n"
    else:
        status, body = b"431 Request Header Fields Too Large", b"Request header too long.\n"
    transport: Any = channel.transport
    transport.write(
        b"HTTP/1.1 " + status + b"\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n"
        b"Connection: close\r\n"
        b"\r\n" + body
    )
    channel.loseConnection()


def answer_overlong_lines() -> None:
    HTTPChannel.lineLengthExceeded = _answer_line_too_long  # type: ignore[method-assign,assignment]
