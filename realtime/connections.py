"""The per-user WebSocket connection cap, shared by every daphne process.

Each user has one Redis sorted set: members are the channel names of their
open connections, scores the moment each one's lease runs out. A live consumer
renews its lease every third of ``WS_CONNECTION_LEASE_SECONDS``. A connection
whose process died without a ``disconnect()`` stops renewing and stops
counting once its lease has run out, so the count cannot leak.

Checking the count and adding a member happen in one Lua script, so two
connections opening at the same moment cannot both take the last place. The
script reads Redis's own clock: daphne processes on different machines never
disagree about which leases have run out.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass

import redis.asyncio
from django.conf import settings
from redis.commands.core import AsyncScript

from core.redis import fast_redis, new_async_redis

KEY_PREFIX = "neonhub:ws:connections:"

# KEYS[1] the user's set; ARGV: member, lease seconds, limit. Returns 1 when
# the member holds a place (newly taken or renewed), 0 when the user is full.
# A renewal of a member that was already pruned (its process stalled past the
# lease) takes a place again only if there is one.
_CLAIM = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local lease = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
    if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
        return 0
    end
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
-- Written last, this member's lease is the latest one: the set may go with it.
redis.call('EXPIRE', KEYS[1], math.ceil(lease) + 1)
return 1
"""

_COUNT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
return redis.call('ZCOUNT', KEYS[1], '(' .. now, '+inf')
"""


@dataclass
class _LoopClient:
    redis: redis.asyncio.Redis
    claim: AsyncScript
    count: AsyncScript


# A redis.asyncio client belongs to the event loop it was created on. daphne
# runs one loop per process, so this is one client (and one pool) per process
# instead of one per WebSocket; tests, which run a loop per test, close theirs.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopClient] = (
    weakref.WeakKeyDictionary()
)


def _client() -> _LoopClient:
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        connection = new_async_redis()
        client = _clients[loop] = _LoopClient(
            redis=connection,
            claim=connection.register_script(_CLAIM),
            count=connection.register_script(_COUNT),
        )
    return client


async def close_redis() -> None:
    """Close the current event loop's client, if it has one."""
    client = _clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.redis.aclose()


def connections_key(user_id: object) -> str:
    return f"{KEY_PREFIX}{user_id}"


async def claim_connection(user_id: object, channel_name: str) -> bool:
    """Take (or renew) a place for this connection; False when the user is at the cap."""
    result = await _client().claim(
        keys=[connections_key(user_id)],
        args=[
            channel_name,
            settings.WS_CONNECTION_LEASE_SECONDS,
            settings.WS_MAX_CONNECTIONS_PER_USER,
        ],
    )
    return bool(result)


async def release_connection(user_id: object, channel_name: str) -> None:
    await _client().redis.zrem(connections_key(user_id), channel_name)


async def count_connections(user_id: object) -> int:
    """How many connections of the user hold an unexpired lease."""
    return int(await _client().count(keys=[connections_key(user_id)]))


def renewal_interval() -> float:
    return settings.WS_CONNECTION_LEASE_SECONDS / 3


def count_open_connections() -> int:
    """Open sockets of every user on every web process; raises RedisError."""
    client = fast_redis()
    seconds, microseconds = client.time()
    # Leases are scored with the time they run out.
    now = seconds + microseconds / 1_000_000
    keys = list(client.scan_iter(match=f"{KEY_PREFIX}*", count=1000))
    if not keys:
        return 0
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.zcount(key, f"({now}", "+inf")
    return sum(int(count) for count in pipe.execute())
