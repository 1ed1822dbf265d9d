"""An agent's slot ledger: what became of every slot at which its schedule was due."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema
from rest_framework.decorators import api_view
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response

from core.dates import iso
from scheduling.models import ScheduleSlot
from web.api.cursors import next_page, read_cursor, unpack
from web.api.pagination import DEFAULT_LIMIT, MAX_LIMIT, SHALLOW_ROWS, bounded_int, page_bounds
from web.api.schema import AGENT_ID, CURSOR, PAGE, SLOT_RANGE, SlotListSerializer
from web.api.serializers import SlotSerializer, parse_aware_datetime
from web.api.views.lookups import get_visible_agent

# How far past the page the count looks. A year of a once-a-minute schedule
# is 525,600 rows: counting them all on every first page would cost more
# than the page. Past this, `total` is a lower bound (and says so).
COUNT_AHEAD = 10_000

COLUMNS = ("scheduled_for", "outcome", "session_id", "reason")


def _time(request: Request, name: str) -> datetime | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return parse_aware_datetime(raw)
    except ValueError as exc:
        message = f"'{name}': {exc}"
        if " " in raw:
            # The usual cause: an offset's + sent unescaped, which a query string reads as a space.
            message = f"{message} A + in a URL must be written %2B."
        raise ValidationError({name: [message]}) from None


def _read(slots: QuerySet, *, offset: int, limit: int) -> list[dict[str, Any]]:
    """The page: a deep one skips slot times in the (agent, slot) index, then reads its rows.

    The slot time is unique per agent, so it serves as the key of the
    deferred join, and the skip never leaves the index.
    """
    if offset + limit <= SHALLOW_ROWS:
        return list(slots.values(*COLUMNS)[offset : offset + limit])
    keys = slots.values("scheduled_for")[offset : offset + limit]
    return list(slots.filter(scheduled_for__in=keys).values(*COLUMNS))


def _total(slots: QuerySet, rows: list[dict[str, Any]], *, offset: int, limit: int) -> int:
    """How many slots there are, counting on from the page rather than from the top,
    so that a deep page skips its offset once, not twice."""
    if len(rows) == limit:
        older = slots.filter(scheduled_for__lt=rows[-1]["scheduled_for"])
        return offset + limit + older.values("scheduled_for")[:COUNT_AHEAD].count()
    if rows:
        return offset + len(rows)
    # Past the end: all there is lies before the offset.
    return slots.values("scheduled_for")[:offset].count()


@extend_schema(
    tags=["schedules"],
    operation_id="listSlots",
    summary="An agent's slot ledger, newest first: what became of every due slot, and why",
    parameters=[AGENT_ID, *SLOT_RANGE, *PAGE, CURSOR],
    responses=SlotListSerializer,
)
@api_view(["GET"])
def agent_slots(request: Request, agent_id: str) -> Response:
    agent = get_visible_agent(request, agent_id)
    start, end = _time(request, "from"), _time(request, "to")
    if start is not None and end is not None and start >= end:
        raise ValidationError({"to": ["'to' must be later than 'from'."]})
    slots = ScheduleSlot.objects.filter(agent=agent).order_by("-scheduled_for")
    if start is not None:
        slots = slots.filter(scheduled_for__gte=start)
    if end is not None:
        slots = slots.filter(scheduled_for__lt=end)
    # A cursor is good for the range it was made in only.
    scope = f"slots:{agent.pk}:{iso(start) if start else ''}:{iso(end) if end else ''}"
    position = read_cursor(request, scope)
    if position is None:
        limit, offset = page_bounds(request)
        rows = _read(slots, offset=offset, limit=limit)
        total = _total(slots, rows, offset=offset, limit=limit)
        exact = total < offset + limit + COUNT_AHEAD
        more = len(rows) == limit and offset + limit < total
    else:
        limit = bounded_int(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
        (after,) = unpack(position, parse_datetime)
        found = list(slots.filter(scheduled_for__lt=after).values(*COLUMNS)[: limit + 1])
        rows, more = found[:limit], len(found) > limit
        # Counting from the top would cost what the cursor saves: as far as COUNT_AHEAD.
        total = slots.values("scheduled_for")[:COUNT_AHEAD].count()
        offset, exact = None, total < COUNT_AHEAD
    return Response(
        {
            "slots": SlotSerializer(rows, many=True).data,
            "pagination": {
                "total": total,
                "limit": limit,
                "offset": offset,
                "total_is_exact": exact,
                "next": next_page(request, scope, [iso(rows[-1]["scheduled_for"])])
                if more and rows
                else None,
            },
        }
    )
