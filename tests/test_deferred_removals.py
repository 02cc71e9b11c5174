"""Deferred removal of used containers (`removals.py`), with a fake remove: a queued container
waits while a run is starting, while a run started just now, and while the pool creates, but
never beyond its deadline; `drain` removes every queued one at once."""

from __future__ import annotations

import threading
import time

from opscraft.execution.removals import DeferredRemovals
from tests.test_warm_pool_refill import until


class Removed:
    """A fake `remove` recording what was removed, when (monotonic)."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, container: str) -> None:
        with self._lock:
            self.at[container] = time.monotonic()


def test_a_queued_container_is_removed_at_once_when_quiet() -> None:
    removed = Removed()
    removals = DeferredRemovals(removed, quiet_seconds=0.05)
    removals.put("a")
    until(lambda: "a" in removed.at)
    assert not removals.pending()


def test_no_removal_begins_while_a_run_is_starting_and_just_after() -> None:
    removed = Removed()
    removals = DeferredRemovals(removed, deadline_seconds=60, quiet_seconds=0.3)
    with removals.starting():
        removals.put("a")
        time.sleep(0.2)  # the removals' thread had time to act, and must not
        assert removals.pending() == ["a"] and not removed.at
    started = time.monotonic()
    until(lambda: "a" in removed.at)
    assert removed.at["a"] - started >= 0.3


def test_no_removal_begins_while_busy_until_quiet() -> None:
    removed = Removed()
    busy = threading.Event()
    busy.set()
    removals = DeferredRemovals(removed, busy=busy.is_set, deadline_seconds=60, quiet_seconds=0)
    removals.put("a")
    time.sleep(0.2)
    assert removals.pending() == ["a"]
    busy.clear()
    until(lambda: "a" in removed.at)


def test_the_deadline_bounds_the_wait_for_quiet() -> None:
    removed = Removed()
    removals = DeferredRemovals(removed, busy=lambda: True, deadline_seconds=0.3)
    with removals.starting():
        queued = time.monotonic()
        removals.put("a")
        removals.put("b")
        until(lambda: {"a", "b"} <= removed.at.keys())
    assert min(removed.at.values()) - queued >= 0.3


def test_drain_removes_every_queued_container_at_once() -> None:
    removed = Removed()
    removals = DeferredRemovals(removed, busy=lambda: True, deadline_seconds=3600)
    for name in "abc":
        removals.put(name)
    removals.drain()
    assert set(removed.at) == {"a", "b", "c"} and not removals.pending()
