"""Fixed-window rate limits: in memory by default, in Redis when REDIS_URL is set; each counted hit
is a `Quota`, which the HTTP answer reports in RateLimit headers (`count`, `reported`)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Protocol

from opscraft.config import Settings
from opscraft.db import clock

WINDOW_SECONDS = 60
# How long a request waits for Redis to count it, the whole pipeline (redis-py's own retries too):
# a frozen Redis (SIGSTOPped, a network path dropping packets) then holds one request this long,
# not the 2 s of each command's socket timeout before; as `services.redis_state.ANSWER_SECONDS`.
REDIS_TIMEOUT_SECONDS = 1.0
# After Redis failed, requests count in memory and Redis is asked again only this often: a Redis
# that does not answer (frozen, a network cut) would otherwise add REDIS_TIMEOUT_SECONDS to each.
REDIS_RETRY_SECONDS = 5

log = logging.getLogger(__name__)


IPV6_PREFIX = 64


def address_key(client_ip: str | None) -> str:
    """What a per-address limit counts a client under: an IPv4 address as it is; an IPv6 address
    as its /64 network, where one home or one server gets a whole /64 (RFC 6177, RIPE-690) and
    picks any address in it at will: counted per address, each of 2^64 addresses had a limit of
    its own; an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) as its IPv4 address. Anything
    else (no address, a test client's name) as it is."""
    if not client_ip:
        return "unknown"
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return client_ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_PREFIX), strict=False))
    return str(address)


@dataclass(frozen=True)
class Quota:
    """Where one counted hit leaves its key: `limit` hits a window, `remaining` hits allowed after
    this one (0 when this one was refused too), `reset` whole seconds until the window ends (1 to
    the window's length), `exceeded` when this hit was over the limit (answered 429)."""

    limit: int
    remaining: int
    reset: int
    exceeded: bool


class RateLimiter(Protocol):
    """Counts hits per key in fixed windows of WINDOW_SECONDS seconds."""

    async def hit(self, key: str, limit: int) -> Quota:
        """Count one hit on `key` against `limit` hits a window; its `Quota`."""
        ...

    async def close(self) -> None:
        """Release the limiter's connections."""


class MemoryRateLimiter:
    """A rate limiter counting in this process only (no Redis configured, or Redis down); past 10,000
    counters it drops those of past windows.
    """

    def __init__(self, window: int = WINDOW_SECONDS) -> None:
        self._window = window
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    async def hit(self, key: str, limit: int) -> Quota:
        """Count one hit on `key` against `limit` hits a window; its `Quota`."""
        now = clock.now().timestamp()  # the database's clock: every process counts in one window
        bucket = int(now // self._window)
        with self._lock:
            if len(self._counts) > 10_000:
                self._counts = {k: v for k, v in self._counts.items() if k[1] >= bucket}
            count = self._counts.get((key, bucket), 0) + 1
            self._counts[(key, bucket)] = count
        return _quota(count, limit, bucket, self._window, now)

    async def close(self) -> None:
        """Nothing to release."""
        return None


class RedisRateLimiter:
    """Counts shared by every process of one installation, under `<prefix>:rl:`
    (`OPSCRAFT_REDIS_PREFIX`: two installations sharing a Redis database never count each other's
    requests); while Redis is unreachable, counts in memory instead, asking Redis again every
    `REDIS_RETRY_SECONDS`."""

    def __init__(self, url: str, prefix: str, window: int = WINDOW_SECONDS) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(
            url, socket_connect_timeout=REDIS_TIMEOUT_SECONDS, socket_timeout=REDIS_TIMEOUT_SECONDS
        )
        self._prefix = prefix
        self._window = window
        self._fallback = MemoryRateLimiter(window)
        self._degraded = False
        self._retry_at = 0.0  # monotonic: while degraded, Redis is not asked before this

    async def hit(self, key: str, limit: int) -> Quota:
        """Count one hit on `key` in Redis (shared by every process) against `limit` hits a window;
        its `Quota`.

        While Redis fails, counts in this process instead (logged once) and tries Redis again after a pause.
        """
        from redis.exceptions import RedisError

        if self._degraded and time.monotonic() < self._retry_at:
            return await self._fallback.hit(key, limit)
        now = clock.now().timestamp()  # the database's clock: every process counts in one window
        bucket = int(now // self._window)
        name = f"{self._prefix}:rl:{key}:{bucket}"
        try:
            async with asyncio.timeout(REDIS_TIMEOUT_SECONDS), self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.expire(name, self._window * 2)
                count, _ = await pipe.execute()
        except (RedisError, OSError) as exc:  # TimeoutError, the bound, is an OSError
            if not self._degraded:
                log.warning("rate limits: Redis unreachable (%s); counting in this process", exc)
                self._degraded = True
            self._retry_at = time.monotonic() + REDIS_RETRY_SECONDS
            return await self._fallback.hit(key, limit)
        if self._degraded:
            log.warning("rate limits: Redis reachable again")
            self._degraded = False
        return _quota(int(count), limit, bucket, self._window, now)

    async def close(self) -> None:
        """Close the Redis connection."""
        await self._redis.aclose()


def _quota(count: int, limit: int, bucket: int, window: int, now: float) -> Quota:
    """The `Quota` of the `count`th hit in window number `bucket` (of `window` seconds) at `now`
    (seconds since the epoch): the reset in whole seconds, rounded up, at least 1."""
    reset = max(1, math.ceil((bucket + 1) * window - now))
    return Quota(limit=limit, remaining=max(0, limit - count), reset=reset, exceeded=count > limit)


# The quotas counted while answering the current HTTP request (`reported`), None outside one.
_counted: ContextVar[list[Quota] | None] = ContextVar("rate_limit_quotas", default=None)


async def count(limiter: RateLimiter, key: str, limit: int) -> Quota:
    """Count one hit on `key` with `limiter` (`RateLimiter.hit`) and keep its quota for the RateLimit
    headers of the HTTP answer being made (`reported`); every rate-limited route counts this way."""
    quota = await limiter.hit(key, limit)
    if (counted := _counted.get()) is not None:
        counted.append(quota)
    return quota


@contextmanager
def reported() -> Iterator[list[Quota]]:
    """While answering one HTTP request: the list that `count` fills with the quotas the request
    counted (a list, not a value set in the context: FastAPI's dependencies and handlers may run in
    a copy of the context, whose own settings the middleware would not see)."""
    counted: list[Quota] = []
    token = _counted.set(counted)
    try:
        yield counted
    finally:
        _counted.reset(token)


def headers(counted: list[Quota]) -> list[tuple[bytes, bytes]]:
    """The RateLimit header fields of draft-ietf-httpapi-ratelimit-headers-06 (December 2022: the
    last version with one field per value; -07 on folds them into one `RateLimit` field) for the
    quotas a request counted: `RateLimit-Limit` (hits a window), `RateLimit-Remaining` (hits left
    in it) and `RateLimit-Reset` (seconds until it ends). With several limits (a sign-in counts by
    address, by username and address, and by username), those of the one closest to its limit, as
    the draft asks (the fewest remaining; the one exceeded on a 429). None without a quota."""
    if not counted:
        return []
    closest = min(counted, key=lambda quota: (quota.remaining, -quota.reset))
    return [
        (b"ratelimit-limit", str(closest.limit).encode()),
        (b"ratelimit-remaining", str(closest.remaining).encode()),
        (b"ratelimit-reset", str(closest.reset).encode()),
    ]


def make_rate_limiter(settings: Settings) -> RateLimiter:
    """The Redis rate limiter when a Redis URL is set, else the in-process one."""
    if settings.redis_url:
        return RedisRateLimiter(settings.redis_url, settings.redis_prefix)
    return MemoryRateLimiter()
