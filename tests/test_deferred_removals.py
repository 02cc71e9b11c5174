"""Deferred removal of used containers (`removals.py`), with a fake remove: a queued container
waits while a run is starting, while a run started just now, and while the pool creates, but
never beyond its deadline; `stop` removes every queued one at once and ends the removals' thread,
which starts with the first container queued."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from opscraft.execution.removals import DeferredRemovals
from tests.waiting import wait_until


class Removed:
    """A fake `remove` recording what was removed, when (monotonic)."""

    def __init__(self) -> None:
        self.at: dict[str, float] = {}
        self._lock = threading.Lock()

    def __call__(self, container: str) -> None:
        with self._lock:
            self.at[container] = time.monotonic()


Make = Callable[..., DeferredRemovals]


@pytest.fixture
def make() -> Iterator[Make]:
    """`DeferredRemovals(...)`, stopped after the test (no removals' thread outlives it)."""
    made: list[DeferredRemovals] = []

    def new(*args: Any, **kwargs: Any) -> DeferredRemovals:
        made.append(DeferredRemovals(*args, **kwargs))
        return made[-1]

    yield new
    for removals in made:
        removals.stop()


def test_a_queued_container_is_removed_at_once_when_quiet(make: Make) -> None:
    removed = Removed()
    removals = make(removed, quiet_seconds=0.05)
    removals.put("a")
    wait_until(lambda: "a" in removed.at, "container a removed", 10)
    assert not removals.pending()


def test_no_removal_begins_while_a_run_is_starting_and_just_after(make: Make) -> None:
    removed = Removed()
    removals = make(removed, deadline_seconds=60, quiet_seconds=0.3)
    with removals.starting():
        removals.put("a")
        time.sleep(0.2)  # the removals' thread had time to act, and must not
        assert removals.pending() == ["a"] and not removed.at
        # Read before the start ends: the quiet period counts from its end, a moment later (read
        # after it, a busy machine's delay before the read was taken out of the 0.3 s).
        started = time.monotonic()
    wait_until(lambda: "a" in removed.at, "container a removed", 10)
    assert removed.at["a"] - started >= 0.3


def test_no_removal_begins_while_busy_until_quiet(make: Make) -> None:
    removed = Removed()
    busy = threading.Event()
    busy.set()
    removals = make(removed, busy=busy.is_set, deadline_seconds=60, quiet_seconds=0)
    removals.put("a")
    time.sleep(0.2)
    assert removals.pending() == ["a"]
    busy.clear()
    wait_until(lambda: "a" in removed.at, "container a removed", 10)


def test_the_deadline_bounds_the_wait_for_quiet(make: Make) -> None:
    removed = Removed()
    removals = make(removed, busy=lambda: True, deadline_seconds=0.3)
    with removals.starting():
        queued = time.monotonic()
        removals.put("a")
        removals.put("b")
        wait_until(lambda: {"a", "b"} <= removed.at.keys(), "containers a and b removed", 10)
    assert min(removed.at.values()) - queued >= 0.3


def test_stop_removes_every_queued_container_at_once_and_ends_the_thread(make: Make) -> None:
    removed = Removed()
    removals = make(removed, busy=lambda: True, deadline_seconds=3600)
    assert removals._thread is None, "no thread before a container is queued"
    for name in "abc":
        removals.put(name)
    thread = removals._thread
    assert thread is not None
    removals.stop()
    assert set(removed.at) == {"a", "b", "c"} and not removals.pending()
    assert not thread.is_alive() and removals._thread is None


def test_stop_waits_for_the_removal_under_way(make: Make) -> None:
    release = threading.Event()
    removed = Removed()

    def slow(container: str) -> None:
        release.wait(10)
        removed(container)

    removals = make(slow, quiet_seconds=0)
    removals.put("a")
    wait_until(lambda: not removals.pending(), "the removals taken by their thread", 10)
    stopping = threading.Thread(target=removals.stop)
    stopping.start()
    stopping.join(0.2)
    assert stopping.is_alive(), "stop returned with a removal under way"
    release.set()
    stopping.join(10)
    assert not stopping.is_alive() and "a" in removed.at and removals._thread is None


def test_after_stop_a_queued_container_is_removed_at_once_and_start_resumes_waiting(make: Make) -> None:
    removed = Removed()
    removals = make(removed, busy=lambda: True, deadline_seconds=3600)
    removals.stop()
    removals.put("late")  # busy, far from its deadline: removed all the same
    wait_until(lambda: "late" in removed.at and removals._thread is None, "the late removal done", 10)
    removals.start()
    removals.put("a")
    time.sleep(0.2)  # the removals' thread had time to act, and must not: busy again counts
    assert removals.pending() == ["a"]
    removals.stop()
    assert "a" in removed.at
