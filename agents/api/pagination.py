from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

MAX_LIMIT = 100
DEFAULT_LIMIT = 20


@dataclass(frozen=True)
class Page:
    items: list
    total: int
    limit: int
    offset: int

    def as_data(self, key: str, serialized: list) -> dict:
        return {
            key: serialized,
            "pagination": {"total": self.total, "limit": self.limit, "offset": self.offset},
        }


def _bounded_int(request: Request, name: str, default: int, minimum: int, maximum: int) -> int:
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


def paginate(request: Request, queryset: QuerySet) -> Page:
    """Limit/offset pagination with the contract's bounds and strict parsing."""
    limit = _bounded_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
    offset = _bounded_int(request, "offset", 0, 0, 10**9)
    total = queryset.count()
    items = list(queryset[offset : offset + limit]) if offset < total else []
    return Page(items=items, total=total, limit=limit, offset=offset)
