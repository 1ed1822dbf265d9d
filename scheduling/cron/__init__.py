"""Strict five-field cron expressions: validation, run times, descriptions, Celery fields.

Grammar
    ``minute hour day-of-month month day-of-week`` separated by whitespace. Each field is a
    comma-separated list of ``*``, ``*/step``, ``n``, ``a-b``, ``a-b/step`` or ``a/step`` (which
    means ``a-max/step``). Months take ``jan``..``dec`` and weekdays ``sun``..``sat``
    (case-insensitive, also inside ranges). Day-of-week 7 is Sunday and is normalised to 0;
    ``a/step`` and ``*`` in day-of-week stop at Saturday so Sunday is counted once, and a range
    ending in the name ``sun`` (``mon-sun``, ``sat-sun``) runs through Sunday. The macros
    ``@yearly``/``@annually``, ``@monthly``, ``@weekly``, ``@daily``/``@midnight`` and ``@hourly``
    stand for their five-field forms. Everything else - six or seven fields, ``L``, ``W``, ``#``,
    ``?``, ``H``, ``@reboot``, reversed ranges, step 0, ``*`` mixed into a list, or a
    day-of-month/month pair that never occurs (``0 0 31 2 *``) - is rejected with a
    :class:`CronError` whose message names the problem.

Day rule
    As in cron, when both day-of-month and day-of-week are restricted a day matches if either
    matches; when one is ``*`` only the other applies. A field counts as unrestricted only when it
    is exactly ``*`` (Vixie cron's "starts with ``*``" test would make ``*/2`` unrestricted,
    which surprises users who wrote an explicit step).

Time zones and DST
    Run times are computed on the schedule's local wall clock (zoneinfo) and returned as aware
    UTC datetimes. The policy is classic cron's (Vixie/cronie ``cron(8)``), which treats two
    kinds of schedule differently:

    * Fixed-time schedules (neither the minute nor the hour field starts with ``*``, e.g.
      ``30 2 * * *`` or ``0 9 * * 1-5``): a slot whose wall time is skipped by a spring-forward
      gap runs once at the instant the gap ends (02:30 on 2026-03-08 in America/New_York runs at
      03:00 EDT); a slot whose wall time occurs twice in a fall-back overlap runs once, at the
      first occurrence (fold=0).
    * Wildcard schedules (the minute or hour field starts with ``*``, e.g. ``*/15 * * * *`` or
      ``0 * * * *``): they run at every real instant whose local wall time matches, so nothing
      runs inside a gap and a repeated hour runs twice. This keeps "every 30 minutes" an even
      real-time cadence across both transitions.

    Slots that land on the same instant (a gap-end run coinciding with a regular slot) are
    returned once, and results are always strictly ascending.

    :func:`dst_warnings` says in sentences what this policy does to an expression's fire times
    that the clock changes of the coming year skip or repeat, one sentence per change.

Celery
    Celery's ``crontab`` ANDs day-of-month with day-of-week. :func:`celery_crontab_fields`
    therefore widens both day fields to ``*`` when both are restricted; the dispatcher must then
    filter each firing with :meth:`CronExpression.matches_day`.

Why a parser of our own
    croniter and cronsim (Healthchecks' library) were weighed. cronsim comes closest: zoneinfo,
    and the same Vixie DST rule as above with the same fixed-time test. What neither gives:

    * Errors fit for a 400: one sentence naming the field, the entry and the problem
      (``minute value 99 is out of range 0-59``); cronsim says ``Bad minute``, croniter
      ``[99 * * * *] is not acceptable, out of range``.
    * The grammar beat can run, and no more: both accept a seconds field, ``L`` and ``#``;
      croniter also a reversed range (``5-1``), cronsim ``*`` inside a list. cronsim has no
      macros. Expressions are bounded (:data:`MAX_EXPRESSION_LENGTH`), as beat's columns are.
    * Never-fires found when parsing: croniter accepts ``0 0 31 2 *`` and fails only when asked
      for a run; cronsim also rejects ``0 0 31 2 mon``, which fires every Monday.
    * The day rule documented in the API: cronsim takes ``*/2`` as unrestricted (Debian's
      "starts with ``*``"), so ``0 0 */2 * 5`` means odd days *that are* Fridays there.
    * DST: croniter runs a fixed-time slot twice in a repeated hour (``30 1 * * *`` in New York
      on 2026-11-01 at 05:30 and 06:30 UTC).
    * Normalised fields for beat's ``CrontabSchedule`` (names and 7 to numbers, ``a/step`` to
      ``a-max/step``) and the day-field widening above.

    Parsing and run times need only the standard library; cron-descriptor serves
    :func:`describe` alone, which falls back to the normalised text. The tests check run times
    against croniter in UTC, where the two agree.
"""

from __future__ import annotations

from scheduling.cron.descriptions import describe
from scheduling.cron.dst import dst_warnings
from scheduling.cron.expressions import (
    KNOWN_ZONES,
    MAX_EXPRESSION_LENGTH,
    CronError,
    CronExpression,
    TimezoneError,
    celery_crontab_fields,
    parse_cron,
    validate_timezone,
)
from scheduling.cron.times import next_run, next_runs, previous_run, previous_runs

__all__ = [
    "KNOWN_ZONES",
    "MAX_EXPRESSION_LENGTH",
    "CronError",
    "CronExpression",
    "TimezoneError",
    "celery_crontab_fields",
    "describe",
    "dst_warnings",
    "next_run",
    "next_runs",
    "parse_cron",
    "previous_run",
    "previous_runs",
    "validate_timezone",
]
