"""Expressions in words, by cron-descriptor."""

from __future__ import annotations

from functools import lru_cache

from cron_descriptor import DescriptionTypeEnum, ExpressionDescriptor, Options

from scheduling.cron.expressions import CronExpression


def describe(expr: CronExpression) -> str:
    """Plain-English description of the normalised expression; never raises."""
    both_days = expr.day_of_month_restricted and expr.day_of_week_restricted
    try:
        return _description(expr.normalized, both_days)
    except Exception:  # cron-descriptor has many failure modes; a description is optional.
        return expr.normalized


@lru_cache(maxsize=256)
def _description(normalized: str, both_days: bool) -> str:
    options = Options()
    # Options() follows the process locale; the product speaks English with a 12-hour clock.
    options.locale_code = "en_US"
    options.use_24hour_time_format = False
    # The normalised text counts Sunday as 0.
    options.day_of_week_start_index_zero = True
    descriptor = ExpressionDescriptor(normalized, options)
    text: str = descriptor.get_description()
    if not both_days:
        return text
    # cron-descriptor words the two day fields as if both had to hold; cron needs only one.
    # No option of the library words them as "either" (its Options hold only casing,
    # verbosity, locale, the clock and the weekday base), so its day-of-week segment is
    # reworded: ", only on Friday" becomes ", or on Friday".
    weekdays: str = descriptor.get_description(DescriptionTypeEnum.DAYOFWEEK)
    either = ", or " + weekdays.removeprefix(", ").removeprefix("only ")
    return text.replace(weekdays, either, 1)
