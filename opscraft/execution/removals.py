"""Deferred removal of used run containers, off the runs' path.

A run's exit status is known before its container is removed (`container_job`'s end record),
and a removal (60-140 ms of Docker's time, docs/benchmarks.md) delays whatever Docker does
beside it: the next run's start, a warm container's creation. So a used container is queued
here and removed when the runner is quiet: no run is starting (between `DockerRunner.run`'s
entry and its job handed over), none started within `QUIET_SECONDS`, and the warm pool creates
nothing (`busy`). A queued container is removed at the latest `DEADLINE_SECONDS` after its
run ended, quiet or not, so a steady stream of runs never piles up containers. A removal a
crash interrupts is finished by the next start's sweep (`DockerRunner.sweep`).

The removals' thread starts with the first container queued (a runner that never runs keeps
none) and serves every later one. `stop` (the worker's shutdown) removes every queued container
at once and ends the thread; a container queued after it (a run that outlived the shutdown's
grace) is removed at once by a thread that ends when none is left, and `start` (the pool
started again) makes the next thread stay for the runs to come.
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Iterator

DEADLINE_SECONDS = 10.0
"""At most how long after its run ended a used container waits for its removal."""

QUIET_SECONDS = 0.25
"""How long after the last run began handing over its job the runner counts as quiet: runs in
quick succession (a client that submits the next when one ends) start closer together."""

BUSY_POLL_SECONDS = 0.05
"""How often a due-for-quiet removal looks again at `busy` (the pool's own state)."""

IDLE_WAIT_SECONDS = 3600.0
"""How long the removals' thread sleeps with nothing queued before looking again (`put` and
`stop` wake it)."""

THREAD_NAME = "opscraft-docker-remove"
"""The removals' thread's name."""


class DeferredRemovals:
    """Removes the containers `put` here on its own thread, when quiet or by their deadline.

    `remove(container)` removes one (must not raise); `busy()` says, without blocking, whether
    something else on the next runs' path is under way (the warm pool creating containers).
    `starting()` wraps a run's start; `stop`/`start` end and resume the thread's service (see
    the module docstring). Thread-safe.
    """

    def __init__(
        self,
        remove: Callable[[str], None],
        busy: Callable[[], bool] = lambda: False,
        deadline_seconds: float = DEADLINE_SECONDS,
        quiet_seconds: float = QUIET_SECONDS,
    ) -> None:
        self._remove = remove
        self._busy = busy
        self.deadline_seconds = deadline_seconds
        self.quiet_seconds = quiet_seconds
        self._cond = threading.Condition()
        self._pending: collections.deque[tuple[str, float]] = collections.deque()
        self._starting = 0
        self._last_start = -float("inf")
        self._removing = 0
        self._stopped = False
        self._thread: threading.Thread | None = None
        """The removals' thread while one runs (at most one: a new one starts once it ended)."""

    def put(self, container: str) -> None:
        """Queue `container` (its run ended now) for removal within `deadline_seconds` (at once
        after `stop`); starts the removals' thread if none runs."""
        with self._cond:
            self._pending.append((container, time.monotonic() + self.deadline_seconds))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=THREAD_NAME, daemon=True)
                self._thread.start()
            self._cond.notify_all()

    @contextlib.contextmanager
    def starting(self) -> Iterator[None]:
        """While open, a run is starting: no queued removal begins (unless it is due)."""
        with self._cond:
            self._starting += 1
        try:
            yield
        finally:
            with self._cond:
                self._starting -= 1
                self._last_start = time.monotonic()
                self._cond.notify_all()

    def pending(self) -> list[str]:
        """The containers queued and not being removed yet, oldest first."""
        with self._cond:
            return [container for container, _ in self._pending]

    def start(self) -> None:
        """Undo `stop`: queued containers wait for quiet again, and the next thread stays."""
        with self._cond:
            self._stopped = False

    def stop(self) -> None:
        """Remove every queued container now (on this thread and the removals' one), wait for
        the removals under way, and end the removals' thread (the worker's shutdown)."""
        with self._cond:
            self._stopped = True
            # Read now: once woken, the thread says it ends (`_thread` None) a moment before it
            # has ended, and a stop that read it after that returned with the thread still alive.
            thread = self._thread
            self._cond.notify_all()
        while True:
            with self._cond:
                if not self._pending:
                    while self._removing:
                        self._cond.wait()
                    break
                container, _ = self._pending.popleft()
            self._remove(container)
        if thread is not None:  # it ends at once: stopped, nothing queued
            thread.join()

    def _loop(self) -> None:
        while (container := self._next()) is not None:
            try:
                self._remove(container)
            finally:
                with self._cond:
                    self._removing -= 1
                    self._cond.notify_all()

    def _next(self) -> str | None:
        """The container to remove now (counted in `_removing`), once due; None (the thread
        ends) when stopped with nothing queued."""
        with self._cond:
            while (wait := self._wait_for()) is not None:
                if self._stopped and not self._pending:
                    self._thread = None
                    return None
                self._cond.wait(wait)
            container, _ = self._pending.popleft()
            self._removing += 1
            return container

    def _wait_for(self) -> float | None:
        """Under the lock: None when the oldest queued container is to be removed now, else
        how many seconds to wait (or until notified) before looking again."""
        if not self._pending:
            return IDLE_WAIT_SECONDS
        if self._stopped:
            return None
        now = time.monotonic()
        until_due = self._pending[0][1] - now
        if until_due <= 0:
            return None
        if self._starting:
            return until_due
        until_quiet = self._last_start + self.quiet_seconds - now
        if until_quiet > 0:
            return min(until_due, until_quiet)
        if self._busy():
            return min(until_due, BUSY_POLL_SECONDS)
        return None
