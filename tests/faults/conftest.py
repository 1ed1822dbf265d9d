from __future__ import annotations

from tests.stack import stack  # noqa: F401
