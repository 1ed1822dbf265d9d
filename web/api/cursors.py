"""Cursor pages: the next page of a newest-first list starts where the last one ended.

A cursor is the sort key of a page's last row, signed (``django.core.signing``)
and bound to the list it came from: an agent's sessions, or its slot ledger
over one range. Reading the page after it is a range of the list's index,
whatever its depth, where an offset would skip every row before it. Clients
get cursors only as ``pagination.next`` and send them back as ``cursor``;
what one holds is not part of the API.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core import signing
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

SALT = "neonhub.api.cursor"
PARAMETER = "cursor"
NOT_OURS = "'cursor' must be one that this list gave as pagination.next."


def read_cursor(request: Request, scope: str) -> list[Any] | None:
    """The position the request's cursor holds, None without one, or a 400
    naming ``cursor`` (not one of this list's) or ``offset`` (sent with one)."""
    raw = request.query_params.get(PARAMETER)
    if raw is None or raw == "":
        return None
    if request.query_params.get("offset") not in (None, ""):
        raise ValidationError(
            {"offset": ["'offset' cannot be sent with 'cursor': the cursor says where to start."]}
        )
    try:
        signed_scope, position = signing.loads(raw, salt=SALT)
    except (signing.BadSignature, ValueError, TypeError):
        signed_scope, position = None, None
    if signed_scope != scope or not isinstance(position, list):
        raise malformed()
    return position


def unpack(position: list[Any], *readers: Callable[[str], Any]) -> list[Any]:
    """The position's parts, each read by its reader (None or ValueError: not
    readable), or the 400 of a malformed cursor."""
    if len(position) != len(readers) or not all(isinstance(part, str) for part in position):
        raise malformed()
    try:
        values = [read(part) for read, part in zip(readers, position, strict=True)]
    except ValueError:
        raise malformed() from None
    if any(value is None for value in values):
        raise malformed()
    return values


def next_page(request: Request, scope: str, position: list[Any]) -> str:
    """The URL (a path and query) of the page after the one ending at ``position``:
    the request's own query, the offset replaced by the cursor."""
    query = request.query_params.copy()
    query.pop("offset", None)
    query[PARAMETER] = make_cursor(scope, position)
    return f"{request.path}?{query.urlencode()}"


def make_cursor(scope: str, position: list[Any]) -> str:
    return signing.dumps([scope, position], salt=SALT, compress=True)


def malformed() -> ValidationError:
    """The 400 of a cursor that is not one of the list's, or whose position
    does not parse (one given out by an older version of the list)."""
    return ValidationError({PARAMETER: [NOT_OURS]})
