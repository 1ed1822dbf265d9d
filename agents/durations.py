"""Run durations as a distribution that merges: exact while small, a histogram once large.

A day's rollup of an agent's runs keeps its durations both ways: every
duration, sorted, while the day has at most ``DAY_EXACT`` of them, and a
histogram of logarithmic bins (each 2 % wider than the one below it)
always. A window merges its days: while all of them are exact and together
hold at most ``WINDOW_EXACT`` durations, so is the window, and its
percentiles are ``percentile_cont``'s to the last digit; past that the
window's percentiles come from the merged histogram, within 1 % of the
exact figure (a bin's geometric middle is at most 1 % from any value in it).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

RATIO = 1.02
DAY_EXACT = 2_000
WINDOW_EXACT = 50_000
_LOG_RATIO = math.log(RATIO)


def bin_of(ms: int) -> int:
    """The histogram bin of a duration: bin ``k`` holds ``[RATIO**k, RATIO**(k+1))``,
    and bin 0 also holds 0 ms."""
    return int(math.log(ms) / _LOG_RATIO) if ms > 1 else 0


def percentile_cont(ordered: Sequence[int], fraction: float) -> float | None:
    """The ``fraction`` percentile of ascending ``ordered``, as PostgreSQL's
    ``percentile_cont`` computes it (the same float operations, in the same order)."""
    if not ordered:
        return None
    rank = fraction * (len(ordered) - 1)
    low, high = math.floor(rank), math.ceil(rank)
    first = float(ordered[low])
    if low == high:
        return first
    return first + (float(ordered[high]) - first) * (rank - low)


def stay_exact(parts: Iterable[Durations]) -> bool:
    """Whether ``parts`` are all exact and few enough to make an exact window."""
    parts = list(parts)
    return all(part.exact is not None for part in parts) and (
        sum(part.count for part in parts) <= WINDOW_EXACT
    )


@dataclass
class Durations:
    """Some runs' durations (ms); ``exact`` is None once only the histogram is kept."""

    count: int = 0
    longest: int | None = None
    exact: list[int] | None = field(default_factory=list)
    bins: Counter[int] = field(default_factory=Counter)

    @classmethod
    def of_sorted(cls, ordered: Sequence[int], *, keep_exact: int | None = None) -> Durations:
        """``ordered``'s durations, every one of them while at most ``keep_exact``
        (by default a day's ``DAY_EXACT``)."""
        keep_exact = DAY_EXACT if keep_exact is None else keep_exact
        return cls(
            count=len(ordered),
            longest=ordered[-1] if ordered else None,
            exact=list(ordered) if len(ordered) <= keep_exact else None,
            bins=Counter(bin_of(ms) for ms in ordered),
        )

    @classmethod
    def exactly(cls, ordered: Sequence[int]) -> Durations:
        """``ordered``'s durations, every one, the histogram left until it is needed."""
        return cls(len(ordered), ordered[-1] if ordered else None, list(ordered))

    @classmethod
    def merged(cls, parts: Iterable[Durations]) -> Durations:
        """All of ``parts`` together: exact if they are and fit in a window."""
        parts = [part for part in parts if part.count]
        count = sum(part.count for part in parts)
        longest = max((part.longest for part in parts if part.longest is not None), default=None)
        if stay_exact(parts):
            exact = sorted(ms for part in parts for ms in part.exact or ())
            return cls(count, longest, exact)
        bins: Counter[int] = Counter()
        for part in parts:
            bins.update(part.histogram())
        return cls(count, longest, None, bins)

    def histogram(self) -> Counter[int]:
        if self.bins or self.exact is None:
            return self.bins
        return Counter(bin_of(ms) for ms in self.exact)

    def percentile(self, fraction: float) -> float | None:
        if self.exact is not None:
            return percentile_cont(self.exact, fraction)
        if not self.count:
            return None
        rank = fraction * (self.count - 1)
        seen = 0
        for bin_, n in sorted(self.bins.items()):
            seen += n
            if seen > rank:
                middle = RATIO ** (bin_ + 0.5) if bin_ else 1.0
                # The longest run is known exactly; no estimate goes past it.
                return min(middle, float(self.longest or 0))
        return float(self.longest or 0)

    def as_json(self) -> dict[str, Any]:
        return {
            "exact": self.exact,
            # JSON keys are strings; pairs keep the bins' numbers numbers.
            "bins": sorted(self.histogram().items()),
        }

    @classmethod
    def from_json(cls, data: dict[str, Any], longest: int | None) -> Durations:
        bins = Counter({bin_: n for bin_, n in data.get("bins", ())})
        return cls(count=bins.total(), longest=longest, exact=data.get("exact"), bins=bins)
