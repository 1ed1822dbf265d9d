"""Turning whatever a runner produced into text the database can store."""

from __future__ import annotations

import re

# PostgreSQL's text type refuses NUL, and a lone surrogate has no UTF-8 form,
# so psycopg and sqlite3 both fail to encode it. Nothing else a Python str
# can hold is refused by either backend.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")

# UTF-8 needs at most four bytes per character.
_MAX_BYTES_PER_CHARACTER = 4


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def is_storable(text: str) -> bool:
    """Whether ``text`` can be stored as it is, by every backend."""
    return _UNSTORABLE.search(text) is None


def storable_text(value: object, limit: int | None = None) -> str:
    """``value`` as text that every database backend stores as it is.

    - ``None`` is ``""``; bytes are read as UTF-8, a byte that is not part of
      valid UTF-8 written as ``\\xNN`` (its value in hex); anything else is
      ``str(value)``, or ``<unprintable TypeName>`` when that raises.
    - NUL and lone surrogates are written as the Python escapes ``\\x00`` and
      ``\\udXXX``: the stored text still says which character was there,
      where U+FFFD would not.
    - At most ``limit`` characters are kept.

    Never raises, so a runner's odd result cannot keep its run from being
    recorded.
    """
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value[: limit * _MAX_BYTES_PER_CHARACTER] if limit is not None else value)
        text = raw.decode("utf-8", errors="backslashreplace")
    else:
        try:
            # str.__str__ makes a plain str of a subclass, whose own slicing
            # or formatting could raise as well.
            text = str.__str__(value if isinstance(value, str) else str(value))
        except Exception:
            text = f"<unprintable {type(value).__name__}>"
    if limit is not None:
        # Escaping only lengthens the text: the first ``limit`` characters
        # are all that can end up stored.
        text = text[:limit]
    text = _UNSTORABLE.sub(_escape, text)
    return text if limit is None else text[:limit]
