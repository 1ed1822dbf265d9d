"""Per-user request limits shared by every web process through Redis.

The contract writes rates as ``100/15m``, which DRF's own parser cannot read,
so rates are parsed here.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

import redis
from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from core.redis import fast_redis

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# A unit is s, m, h or d, or one of their words ("2hours", "1minute"); any
# other word is refused, so "10/month" or "10/ms" cannot pass as per minute.
RATE_PATTERN = re.compile(
    r"^\s*(\d+)\s*/\s*(\d*)\s*([smhd])(?:(?<=s)(?:ec|econd)s?|(?<=m)(?:in|inute)s?|(?<=h)(?:r|our)s?|(?<=d)(?:ay)s?)?\s*$",
    re.IGNORECASE,
)
KEY_PREFIX = "neonhub:ratelimit:"


@dataclass(frozen=True)
class Rate:
    requests: int
    seconds: int


def parse_rate(text: str) -> Rate:
    """Read ``N/[multiplier]unit``: ``100/15m``, ``10/m``, ``5000/1d``, ``3/2hour``."""
    match = RATE_PATTERN.match(text or "")
    if not match:
        raise ValueError(f"Rate {text!r} must look like '100/15m' (units s, m, h, d).")
    count, multiplier, unit = match.groups()
    multiplier_value = int(multiplier) if multiplier else 1
    if int(count) < 1 or multiplier_value < 1:
        raise ValueError(f"Rate {text!r} must allow at least one request per period.")
    return Rate(requests=int(count), seconds=multiplier_value * UNIT_SECONDS[unit.lower()])


class FixedWindowThrottle(BaseThrottle):
    """Counts requests per client in fixed windows; one INCR per request."""

    scope = "api"
    setting_name = "API_RATE_LIMIT"

    def __init__(self) -> None:
        self.rate = parse_rate(getattr(settings, self.setting_name))
        self.retry_after: int | None = None

    def client_key(self, request: Request) -> str:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            return f"user:{user.pk}"
        return f"ip:{self.get_ident(request)}"

    def allow_request(self, request: Request, view) -> bool:
        now = time.time()
        window = int(now // self.rate.seconds)
        key = f"{KEY_PREFIX}{self.scope}:{self.client_key(request)}:{window}"
        try:
            pipe = fast_redis().pipeline()
            pipe.incr(key)
            pipe.expire(key, self.rate.seconds + 1)
            count, _ = pipe.execute()
        except redis.RedisError:
            # Failing open: an outage of the limiter must not take the API down.
            return True
        if count <= self.rate.requests:
            return True
        self.retry_after = max(1, int((window + 1) * self.rate.seconds - now + 0.999))
        return False

    def wait(self) -> float | None:
        return self.retry_after


class ApiRateThrottle(FixedWindowThrottle):
    scope = "api"
    setting_name = "API_RATE_LIMIT"


class TokenRateThrottle(FixedWindowThrottle):
    """A stricter limit on the token endpoints, per client address, against password guessing."""

    scope = "token"
    setting_name = "API_TOKEN_RATE_LIMIT"

    def client_key(self, request: Request) -> str:
        return f"ip:{self.get_ident(request)}"
