from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

MAX_LIMIT = 100
DEFAULT_LIMIT = 20
MAX_OFFSET = 10**9
# Up to here a page is read directly; deeper, skipping whole rows costs more
# than skipping primary keys in an index.
SHALLOW_ROWS = 1000


@dataclass(frozen=True)
class Page:
    items: list
    total: int
    limit: int
    offset: int

    def as_data(self, key: str, serialized: Any) -> dict[str, Any]:
        """``serialized``: a ``many=True`` serializer's data for ``items``."""
        return {
            key: serialized,
            "pagination": {"total": self.total, "limit": self.limit, "offset": self.offset},
        }


def bounded_int(request: Request, name: str, default: int, minimum: int, maximum: int) -> int:
    """The query parameter ``name`` as an integer in [minimum, maximum], or a 400 naming it."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValidationError({name: [f"'{name}' must be an integer, got {raw!r}."]}) from None
    if not minimum <= value <= maximum:
        raise ValidationError({name: [f"'{name}' must be between {minimum} and {maximum}."]})
    return value


def page_bounds(request: Request) -> tuple[int, int]:
    """The request's ``limit`` and ``offset``, parsed strictly, within the contract's bounds."""
    limit = bounded_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = bounded_int(request, "offset", 0, 0, MAX_OFFSET)
    return limit, offset


def paginate(request: Request, queryset: QuerySet, *, total: int | None = None) -> Page:
    """Limit/offset pagination with the contract's bounds and strict parsing.

    ``queryset`` must be ordered, ideally by an index. ``total`` may be given
    when the caller knows the exact count more cheaply than ``count()``.
    """
    limit, offset = page_bounds(request)
    if total is None:
        total = queryset.count()
    items = read_page(queryset, offset=offset, limit=limit, total=total) if offset < total else []
    return Page(items=items, total=total, limit=limit, offset=offset)


def read_page(queryset: QuerySet, *, offset: int, limit: int, total: int) -> list:
    """The rows ``offset`` to ``offset + limit`` of an ordered queryset of ``total`` rows.

    A deep page skips primary keys (an index-only scan when the ordering has an
    index that includes the key), then reads just its own rows: a deferred
    join. Past the middle it counts from the other end, in the reversed
    order, so the last page costs what the first does.
    """
    if offset + limit <= SHALLOW_ROWS:
        return list(queryset[offset : offset + limit])
    if offset > total // 2:
        take = min(limit, total - offset)
        start = total - offset - take
        keys = queryset.reverse().values("pk")[start : start + take]
    else:
        keys = queryset.values("pk")[offset : offset + limit]
    return list(queryset.filter(pk__in=keys))
