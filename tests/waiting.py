"""Waiting in tests for a condition, never for a fixed time: one helper for every module.

The suite runs on busy 2-core CI machines at any hour, several pytest processes at once, so a
deadline is a bound on a failure, not a duration the test expects: each is `timeout` seconds
multiplied by `scale()`, the environment's `OPSCRAFT_TEST_TIME_SCALE` (default 1; e.g. 3 on a
machine known to be slow) times the machine's load per core when that is above 1 (at most 4).
The condition is polled every `every` seconds (not scaled: the poll interval only bounds how
late a met condition is noticed).
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

MAX_LOAD_FACTOR = 4.0


def scale() -> float:
    """The factor every deadline is multiplied by: `OPSCRAFT_TEST_TIME_SCALE` (a positive number,
    default 1) times the 1-minute load average per CPU when above 1, capped at `MAX_LOAD_FACTOR`.
    Raises ValueError for a variable that is not a positive number."""
    configured = float(os.environ.get("OPSCRAFT_TEST_TIME_SCALE") or 1)
    if configured <= 0:
        raise ValueError(f"OPSCRAFT_TEST_TIME_SCALE must be a positive number, not {configured}")
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    return configured * min(MAX_LOAD_FACTOR, max(1.0, load))


def wait_until(condition: Callable[[], T], what: str, timeout: float = 60, every: float = 0.02) -> T:
    """Call `condition` until it returns a truthy value and return that value. Raises
    AssertionError naming `what` when `timeout` seconds (times `scale()`) pass first; an exception
    from `condition` propagates at once."""
    limit = timeout * scale()
    deadline = time.monotonic() + limit
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"waited {limit:.0f} s for {what}"
        time.sleep(every)


async def until(
    condition: Callable[[], T | Awaitable[T]],
    what: str,
    timeout: float = 60,
    every: float = 0.02,
    woken: Callable[[float], Awaitable[object]] | None = None,
) -> T:
    """`wait_until` for a coroutine: `condition` may be a plain or an async callable (its result
    awaited); the event loop runs between polls. Between two polls it sleeps `every` seconds,
    or, given `woken`, awaits `woken(every)`: a wait that returns as soon as something the
    condition reads may have changed (an event), and after `every` seconds at the latest."""
    limit = timeout * scale()
    deadline = time.monotonic() + limit
    while True:
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        assert time.monotonic() < deadline, f"waited {limit:.0f} s for {what}"
        await (asyncio.sleep(every) if woken is None else woken(every))
