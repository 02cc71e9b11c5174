"""Concurrent cache misses of one key share one load (issue 15).

The per-process caches of the submit path (`user_cache`, `app_settings`) keep a row for about a
second. In a burst of requests on many connections the entry goes stale for all of them at
once, and each request loaded the row itself: 191 user loads in one 1,000-run burst on 32
connections (docs/benchmarks.md, session 50), each a database round trip on the event loop.
`SharedLoads.get` lets the first caller load and the others, arriving while it does, wait for
its outcome.

The rule that keeps a cache's "a change is seen at once by every later request" true: a caller
joins only a load that began after the latest change it must see (`changed_at`, a
`time.monotonic()` time), so a load under way when a change commits is never handed to a
request that comes after the change; that request loads again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

V = TypeVar("V")

_FAILED = object()


class SharedLoads(Generic[V]):
    """The loads under way, per key, on one process's event loops."""

    def __init__(self) -> None:
        self._loading: dict[Hashable, tuple[float, asyncio.Future[Any]]] = {}

    async def get(self, key: Hashable, changed_at: float, load: Callable[[], Awaitable[V]]) -> tuple[V, bool]:
        """`(await load(), False)`, or `(value, True)`: the value of a load of `key` under way on
        this event loop that began after `changed_at` (monotonic seconds), shared with this
        caller (the same object: callers that may change it copy it). A shared load that
        raised or was cancelled leaves this caller to load for itself; the loader's own
        exception is raised to the loader only."""
        loop = asyncio.get_running_loop()
        flight = self._loading.get(key)
        if flight is not None and flight[0] > changed_at and flight[1].get_loop() is loop:
            outcome = await asyncio.shield(flight[1])
            if outcome is not _FAILED:
                return outcome, True
        done: asyncio.Future[Any] = loop.create_future()
        self._loading[key] = (time.monotonic(), done)
        try:
            value = await load()
        except BaseException:
            done.set_result(_FAILED)
            raise
        finally:
            if self._loading.get(key, (0.0, None))[1] is done:
                del self._loading[key]
        done.set_result(value)
        return value, False

    def clear(self) -> None:
        """Forget the loads under way (their callers still get their own outcome)."""
        self._loading.clear()

    def __len__(self) -> int:
        return len(self._loading)
