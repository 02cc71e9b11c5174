"""Deferred removal of used run containers, off the runs' path.

A run's exit status is known before its container is removed (`container_job`'s end record),
and a removal (60-140 ms of Docker's time, docs/benchmarks.md) delays whatever Docker does
beside it: the next run's start, a warm container's creation. So a used container is queued
here and removed when the runner is quiet: no run is starting (between `DockerRunner.run`'s
entry and its job handed over), none started within `QUIET_SECONDS`, and the warm pool creates
nothing (`busy`). A queued container is removed at the latest `DEADLINE_SECONDS` after its
run ended, quiet or not, so a steady stream of runs never piles up containers; `drain` removes
every queued one at once (the worker's shutdown). A removal a crash interrupts is finished by
the next start's sweep (`DockerRunner.sweep`).
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


class DeferredRemovals:
    """Removes the containers `put` here on its own thread, when quiet or by their deadline.

    `remove(container)` removes one (must not raise); `busy()` says, without blocking, whether
    something else on the next runs' path is under way (the warm pool creating containers).
    `starting()` wraps a run's start. Thread-safe.
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
        threading.Thread(target=self._loop, name="opscraft-docker-remove", daemon=True).start()

    def put(self, container: str) -> None:
        """Queue `container` (its run ended now) for removal within `deadline_seconds`."""
        with self._cond:
            self._pending.append((container, time.monotonic() + self.deadline_seconds))
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

    def drain(self) -> None:
        """Remove every queued container now, and wait for a removal under way on the
        removals' thread (the worker's shutdown)."""
        while True:
            with self._cond:
                if not self._pending:
                    while self._removing:
                        self._cond.wait()
                    return
                container, _ = self._pending.popleft()
            self._remove(container)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while (wait := self._wait_for()) is not None:
                    self._cond.wait(wait)
                container, _ = self._pending.popleft()
                self._removing += 1
            try:
                self._remove(container)
            finally:
                with self._cond:
                    self._removing -= 1
                    self._cond.notify_all()

    def _wait_for(self) -> float | None:
        """Under the lock: None when the oldest queued container is to be removed now, else
        how many seconds to wait (or until notified) before looking again."""
        if not self._pending:
            return 3600.0
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
