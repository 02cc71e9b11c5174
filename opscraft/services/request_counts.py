"""HTTP request counts for `/metrics`, shared by every web process of an installation.

With `REDIS_URL`, each web process adds its counts to one Redis hash,
`<OPSCRAFT_REDIS_PREFIX>:metrics:http` (field `route<TAB>method<TAB>status`, value the count,
`HINCRBY`), so a scrape of any web process returns the installation's totals: a request served by
process A and one served by process B are both in every scrape, each once. Counting a request
only touches a dict in memory; a background task sends what accumulated in one pipelined round
trip as soon as the previous one is done (a few milliseconds behind), and a scrape first sends
this process's pending counts. While Redis is unreachable, or does not answer within
`redis_state.ANSWER_SECONDS` (frozen), the counts stay pending here (nothing is lost or counted
twice) and the scrape omits the HTTP metric (`opscraft_redis_up 0` says why). Without `REDIS_URL` (one
process: SQLite, or PostgreSQL with a single web process) the counts are this process's, kept
in memory. Source of the commands: https://redis.io/docs/latest/commands/hincrby/
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Protocol

from opscraft.services import redis_state

log = logging.getLogger(__name__)

#: (route template, method, status code)
Key = tuple[str, str, str]
RETRY_SECONDS = 1.0
TIMEOUT_SECONDS = 2.0
WARN_EVERY_SECONDS = 60.0


class RequestCounts(Protocol):
    """Where the web process counts answered HTTP requests."""

    def count(self, key: Key) -> None:
        """Count one request (synchronous, no I/O: called for every response)."""

    async def totals(self) -> dict[Key, int] | None:
        """Every process's counts so far, or None when they cannot be read now."""

    async def close(self) -> None:
        """Send what is pending and release connections."""


class MemoryRequestCounts:
    """This process's counts (installations with one web process)."""

    def __init__(self) -> None:
        self._counts: Counter[Key] = Counter()

    def count(self, key: Key) -> None:
        """Count one request under `key` (route template, method, status) in this process."""
        self._counts[key] += 1

    async def totals(self) -> dict[Key, int] | None:
        """The counts of this process, key -> requests."""
        return dict(self._counts)

    async def close(self) -> None:
        """Nothing to release."""
        return None


class RedisRequestCounts:
    """Counts kept in a Redis hash shared by every web process (see the module docstring)."""

    def __init__(self, url: str, prefix: str) -> None:
        self._url = url
        self.key = f"{prefix}:metrics:http"
        self._pending: Counter[Key] = Counter()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: object | None = None
        self._lock: asyncio.Lock | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._warned_at = 0.0

    def count(self, key: Key) -> None:
        """Count one request under `key` (route template, method, status); sent to Redis in the background."""
        self._pending[key] += 1
        try:
            self._ensure_started()
        except RuntimeError:  # no running loop: sent with the next request or scrape
            return
        assert self._wake is not None
        self._wake.set()

    def _ensure_started(self) -> None:
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        import redis.asyncio as aredis

        self._loop = loop
        self._client = aredis.from_url(
            self._url, socket_connect_timeout=TIMEOUT_SECONDS, socket_timeout=TIMEOUT_SECONDS
        )
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._task = loop.create_task(self._send_loop(), name="opscraft-request-counts")

    async def _send_loop(self) -> None:
        assert self._wake is not None
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not await self._send():
                await asyncio.sleep(RETRY_SECONDS)
                self._wake.set()

    async def _send(self) -> bool:
        """Add the pending counts to the hash; True when sent (or nothing was pending)."""
        from redis.exceptions import RedisError

        assert self._lock is not None
        async with self._lock:
            batch, self._pending = self._pending, Counter()
            if not batch:
                return True
            try:
                async with self._client.pipeline(transaction=True) as pipe:  # type: ignore[attr-defined]
                    for key, n in batch.items():
                        pipe.hincrby(self.key, "\t".join(key), n)
                    await pipe.execute()
            except BaseException as exc:
                # MULTI/EXEC applies all or nothing; only a connection lost (or a scrape's bound
                # passed) after EXEC was sent but before its reply can count a batch twice.
                self._pending.update(batch)
                if not isinstance(exc, RedisError | OSError):
                    raise  # cancelled: `totals`' bound, or the sender stopped
                self._warn(exc)
                return False
            return True

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning("HTTP request counts: Redis unreachable (%s); keeping them until it is back", exc)

    async def totals(self) -> dict[Key, int] | None:
        """The counts of every process sharing the Redis prefix, key -> requests; None when Redis fails
        or does not answer within `redis_state.ANSWER_SECONDS` (logged), what was pending kept.
        """
        from redis.exceptions import RedisError

        self._ensure_started()
        assert self._lock is not None
        try:
            async with asyncio.timeout(redis_state.ANSWER_SECONDS):
                if not await self._send():
                    return None
                async with self._lock:
                    raw = await self._client.hgetall(self.key)  # type: ignore[attr-defined]
        except (RedisError, OSError) as exc:  # TimeoutError, the bound, is an OSError
            self._warn(exc)
            return None
        out: dict[Key, int] = {}
        for field, value in raw.items():
            parts = field.decode().split("\t")
            if len(parts) == 3:
                out[(parts[0], parts[1], parts[2])] = int(value)
        return out

    async def close(self) -> None:
        """Stop the background sender, send what is pending and close the Redis client (only on the loop
        that started it).
        """
        if self._task is None or self._loop is not asyncio.get_running_loop():
            return
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        await self._send()
        await self._client.aclose()  # type: ignore[attr-defined]
        self._task = self._loop = self._client = None


def make_request_counts(redis_url: str | None, prefix: str) -> RequestCounts:
    """Shared counts in Redis when `redis_url` is set, else this process's, in memory."""
    return RedisRequestCounts(redis_url, prefix) if redis_url else MemoryRequestCounts()
