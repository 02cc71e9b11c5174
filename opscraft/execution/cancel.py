"""The cancel signal: tells the worker running an execution to kill it now.

The database flag `cancel_requested` is the durable half (a worker reads it when it claims the
run); this signal is the immediate half. A Redis-backed signal reaches `opscraft worker` processes.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class LocalCancelSignal:
    """In-process `ports.CancelSignal`: the kill callbacks of this process's running executions."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._watchers: dict[int, Callable[[], None]] = {}

    def request(self, execution_id: int) -> None:
        """Ask a run in this process to stop: call its watcher now, if it has one (no effect otherwise)."""
        with self._lock:
            on_cancel = self._watchers.get(execution_id)
        if on_cancel is not None:
            on_cancel()

    def watch(self, execution_id: int, on_cancel: Callable[[], None]) -> None:
        """Call `on_cancel` (on the requesting thread) when the run is asked to stop; replaces an earlier
        watcher.
        """
        with self._lock:
            self._watchers[execution_id] = on_cancel

    def unwatch(self, execution_id: int) -> None:
        """Stop watching a run's cancel requests (no error when it was not watched)."""
        with self._lock:
            self._watchers.pop(execution_id, None)
