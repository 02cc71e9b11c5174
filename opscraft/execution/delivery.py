"""Handing committed runs to a job queue that is reached over the network (Redis), off the caller.

A submission commits its `queued` row and then enqueues the run's id. On Redis that enqueue is a
network round trip: a Redis that does not answer (frozen, a network cut without a reset) holds it
for the queue client's socket timeout (`queue.REDIS_SOCKET_TIMEOUT_SECONDS`, 5 s). It used to be
made on the web process's event loop (in the group commit's hand-over), so every page, API call
and WebSocket of that process stalled for 5 s per submission while Redis was frozen. `Delivery`
makes it on a thread of its own: the caller appends the id and returns at once.

Ids are sent in the order given. One the queue refuses (Redis stopped, frozen, restarting) stays
first in line and is tried again every `RETRY_SECONDS` until the queue takes it, so runs accepted
during an outage reach the workers, in order, as soon as Redis answers again; the outage is
logged once when it begins and once when it ends. The row stays the truth: ids still waiting
when the process stops are enqueued again by a worker's stall check (docs/deployment.md).
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from opscraft.execution.ports import JobQueue

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
"""How long an id the queue refused waits before it is tried again."""
THREAD_NAME = "opscraft-enqueue"


class Delivery:
    """Enqueues execution ids on `queue` from a thread of its own (see the module docstring).

    `error` is why the latest enqueue failed, None once one works; `waiting()` how many ids are
    not yet in the queue."""

    def __init__(self, queue: JobQueue) -> None:
        self._queue = queue
        self._ids: deque[int] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.error: str | None = None

    def put(self, execution_id: int) -> None:
        """Queue `execution_id` for delivery and return at once (thread-safe; no network)."""
        with self._cond:
            if self._closed:
                raise RuntimeError("the delivery of runs to the job queue was closed")
            self._ids.append(execution_id)
            if self._thread is None:
                self._thread = threading.Thread(target=self._deliver, name=THREAD_NAME, daemon=True)
                self._thread.start()
            self._cond.notify()

    def waiting(self) -> int:
        """How many ids are not in the queue yet (the one being sent included)."""
        with self._cond:
            return len(self._ids)

    def close(self, timeout: float = 2.0) -> None:
        """Stop delivering; wait up to `timeout` seconds for the id being sent. Ids still waiting
        stay `queued` in the database: a worker's stall check enqueues them."""
        with self._cond:
            self._closed = True
            thread = self._thread
            left = len(self._ids)
            self._cond.notify_all()
        if thread is not None:
            thread.join(timeout)
        if left:
            log.warning(
                "%d run(s) not handed to the job queue before the stop; a worker's stall check enqueues them",
                left,
            )

    def _deliver(self) -> None:
        while True:
            with self._cond:
                while not self._ids and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                execution_id = self._ids[0]
            try:
                self._queue.enqueue(execution_id)
            except Exception as exc:
                self._failed(execution_id, exc)
                with self._cond:
                    if not self._closed:
                        self._cond.wait(RETRY_SECONDS)
                continue
            with self._cond:
                self._ids.popleft()
                left = len(self._ids)
            if self.error is not None:
                self.error = None
                log.warning("the job queue answers again: runs are handed to it (%d still to send)", left)

    def _failed(self, execution_id: int, exc: Exception) -> None:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        if self.error is None:
            log.warning(
                "execution %s: the job queue is unreachable (%s); it and the runs after it are "
                "handed over once the queue answers again (tried every %.0f s)",
                execution_id,
                reason,
                RETRY_SECONDS,
            )
        self.error = f"the job queue is unreachable: {reason}"
