"""Refuse requests whose Content-Type Django cannot build a request from.

Django takes a request's charset from its Content-Type and adopts any codec
``codecs.lookup`` finds, before any middleware runs: "zlib_codec", "rot13" or
"base64" then fail as LookupError when the body or the query string is read,
"undefined" as UnicodeError, a NUL in the name as ValueError, and an RFC 2231
parameter with an unknown charset as ValueError while the header is parsed.
Each was a 500. The WSGI and ASGI applications are wrapped so that such a
request is answered 400 before Django sees it (in the API's envelope under
/api/), with the header read by Django's own parser so both see the same
charset.
"""

from __future__ import annotations

import codecs
import encodings
import encodings.aliases
import json
import pkgutil
from collections.abc import Callable, Iterable
from typing import Any

from django.utils.http import parse_header_parameters

# Text encodings Python knows that are no character set a body comes in: the
# host-name and escape codecs, one that fails on every input, and UTF-7, whose
# "+" shifts clash with form encoding and hide characters from filters (no
# browser sends it).
NOT_CHARSETS = frozenset(
    {"idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape", "utf-7"}
)

# Every name the standard library's codecs answer to, normalized. Only these
# are looked up: the codec registry remembers every name it is asked for,
# unknown ones included, so looking up whatever clients send would grow it
# without bound.
_STANDARD_NAMES = (
    frozenset(encodings.aliases.aliases)
    | frozenset(encodings.aliases.aliases.values())
    | {module.name for module in pkgutil.iter_modules(encodings.__path__)}
)

NAME_SHOWN = 40


def is_readable_charset(name: str) -> bool:
    """Whether request text may come in this charset: a real text encoding."""
    if encodings.normalize_encoding(name.lower()).replace(".", "_") not in _STANDARD_NAMES:
        return False
    try:
        codec = codecs.lookup(name)
    except (LookupError, ValueError):
        return False
    return codec._is_text_encoding and codec.name not in NOT_CHARSETS


def content_type_problem(content_type: str) -> str | None:
    """Why a request with this Content-Type cannot be read, or None if it can."""
    try:
        _, params = parse_header_parameters(content_type)
    except (ValueError, LookupError, UnicodeError):
        return "The Content-Type header cannot be read."
    charset = params.get("charset")
    if charset is None or is_readable_charset(charset):
        return None
    return (
        f"The charset {charset[:NAME_SHOWN]!r} in Content-Type is not a text encoding "
        "this service reads: send UTF-8."
    )


def _refusal(path: str, problem: str) -> tuple[str, bytes]:
    """The content type and body of the 400 answer."""
    if path.startswith("/api/"):
        body = json.dumps({"success": False, "error": problem}).encode()
        return "application/json", body
    return "text/plain; charset=utf-8", f"Bad Request: {problem}\n".encode()


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def refuse_unreadable_content_types_wsgi(app: WSGIApp) -> WSGIApp:
    def application(environ: dict[str, Any], start_response: Callable[..., Any]):
        problem = content_type_problem(environ.get("CONTENT_TYPE", ""))
        if problem is None:
            return app(environ, start_response)
        content_type, body = _refusal(environ.get("PATH_INFO", ""), problem)
        start_response(
            "400 Bad Request",
            [("Content-Type", content_type), ("Content-Length", str(len(body)))],
        )
        return [body]

    return application


class RefuseUnreadableContentTypesASGI:
    """The same for ASGI; other scope types (WebSockets) pass untouched."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            # Repeated headers joined as Django's ASGI request joins them.
            header = b",".join(
                value for name, value in scope.get("headers", []) if name == b"content-type"
            ).decode("latin-1")
            problem = content_type_problem(header)
            if problem is not None:
                content_type, body = _refusal(scope.get("path", ""), problem)
                await send(
                    {
                        "type": "http.response.start",
                        "status": 400,
                        "headers": [
                            (b"content-type", content_type.encode()),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
