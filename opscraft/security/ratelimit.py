"""Fixed-window rate limits: in memory by default, in Redis when REDIS_URL is set."""

from __future__ import annotations

import math
import threading
import time
from typing import Protocol

from opscraft.config import Settings

WINDOW_SECONDS = 60


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int) -> int:
        """Count one hit on `key`; return 0 if allowed, else the seconds until the window resets."""
        ...


class MemoryRateLimiter:
    def __init__(self, window: int = WINDOW_SECONDS) -> None:
        self._window = window
        self._counts: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    async def hit(self, key: str, limit: int) -> int:
        now = time.time()
        bucket = int(now // self._window)
        with self._lock:
            if len(self._counts) > 10_000:
                self._counts = {k: v for k, v in self._counts.items() if k[1] >= bucket}
            count = self._counts.get((key, bucket), 0) + 1
            self._counts[(key, bucket)] = count
        if count <= limit:
            return 0
        return max(1, math.ceil((bucket + 1) * self._window - now))


class RedisRateLimiter:
    def __init__(self, url: str, window: int = WINDOW_SECONDS) -> None:
        import redis.asyncio as redis

        self._redis = redis.from_url(url)
        self._window = window

    async def hit(self, key: str, limit: int) -> int:
        now = time.time()
        bucket = int(now // self._window)
        name = f"opscraft:rl:{key}:{bucket}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(name)
            pipe.expire(name, self._window * 2)
            count, _ = await pipe.execute()
        if int(count) <= limit:
            return 0
        return max(1, math.ceil((bucket + 1) * self._window - now))


def make_rate_limiter(settings: Settings) -> RateLimiter:
    return RedisRateLimiter(settings.redis_url) if settings.redis_url else MemoryRateLimiter()
