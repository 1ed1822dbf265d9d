"""HTTP servers on loopback addresses that record what outbound calls send them."""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    method: str
    path: str
    headers: Message  # names in any case
    body: bytes


class Receiver:
    """Answers every request with ``status``, ``headers`` and ``body`` repeated ``repeat`` times.

    ``pause`` seconds pass between the repeats, for answers that trickle in.
    ``sent`` counts the body bytes written, ``complete`` says whether the
    whole body was, and ``answered`` is set when an answer has ended, so a
    test can tell how much of it the client read.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        repeat: int = 1,
        pause: float = 0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.status, self.headers = status, headers or {}
        self.body, self.repeat, self.pause = body, repeat, pause
        self.received: list[Received] = []
        self.sent = 0
        self.complete = False
        self.answered = threading.Event()
        self.server = ThreadingHTTPServer((host, port), self._handler())
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                receiver.received.append(
                    Received(self.command, self.path, self.headers, self.rfile.read(length))
                )
                self.send_response(receiver.status)
                for name, value in receiver.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(receiver.body) * receiver.repeat))
                self.end_headers()
                try:
                    for _ in range(receiver.repeat):
                        self.wfile.write(receiver.body)
                        self.wfile.flush()
                        receiver.sent += len(receiver.body)
                        time.sleep(receiver.pause)
                    receiver.complete = True
                except OSError:
                    pass  # the client stopped reading and closed
                finally:
                    receiver.answered.set()

            do_GET = do_POST = do_PUT = do_PATCH = answer

            def log_message(self, *args) -> None:
                pass

        return Handler


class SmtpReceiver:
    """A real SMTP server on 127.0.0.1 (aiosmtpd) keeping every message it is sent."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[EmailMessage] = []
        receiver = self

        class Handler:
            async def handle_DATA(self, server, session, envelope) -> str:
                message = BytesParser(policy=default_policy).parsebytes(envelope.content)
                receiver.messages.append(message)  # type: ignore[arg-type]
                return "250 OK"

        from tests.processes import free_port

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.controller.stop()
