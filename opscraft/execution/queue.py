"""The job queue: Huey, with an in-process consumer that wakes the moment a job is enqueued.

The payload of a job is the execution id only. `SqliteHuey` in the data directory is the default;
a Redis-backed Huey (and `opscraft worker` processes) plug in behind the same `ports.JobQueue`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from huey import SqliteHuey
from huey.consumer import Consumer, Worker
from huey.storage import SqliteStorage

log = logging.getLogger(__name__)

# Safety net only: a consumer in another process may enqueue without notifying this one.
IDLE_POLL_SECONDS = 1.0


class _Wakeup:
    """A generation counter: a waiter sleeps only if nothing was enqueued since it looked."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.generation = 0

    def notify(self, everyone: bool = False) -> None:
        """Wake one sleeping worker per job (all of them to stop): no herd for a single job."""
        with self._cond:
            self.generation += 1
            if everyone:
                self._cond.notify_all()
            else:
                self._cond.notify()

    def wait(self, seen: int, timeout: float) -> None:
        with self._cond:
            if self.generation == seen:
                self._cond.wait(timeout)


class _WakingWorker(Worker):
    wakeup: _Wakeup

    def loop(self, now: object = None) -> None:
        seen = self.wakeup.generation
        try:
            task = self.huey.dequeue()
        except Exception:
            self._logger.exception("error reading from the job queue")
            self.wakeup.wait(seen, IDLE_POLL_SECONDS)
            return
        if task is None:
            if not self.stop_flag.is_set():
                self.wakeup.wait(seen, IDLE_POLL_SECONDS)
            return
        try:
            self.huey.execute(task, now)
        except Exception:
            self._logger.exception("unhandled error in job %s", task.id)


class _InProcessConsumer(Consumer):
    """Huey's consumer without signal handlers (the web server owns them) and with wake-ups."""

    worker_class = _WakingWorker

    def __init__(self, huey: SqliteHuey, workers: int, wakeup: _Wakeup) -> None:
        self._wakeup = wakeup
        super().__init__(huey, workers=workers, periodic=False, worker_type="thread")

    def _create_worker(self) -> Worker:
        worker = super()._create_worker()
        worker.wakeup = self._wakeup
        return worker

    def start(self) -> None:
        """Start the worker threads only: no scheduler (nothing is scheduled), no signal handlers."""
        for _, thread in self.worker_threads:
            thread.start()

    def join(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for _, thread in self.worker_threads:
            thread.join(max(deadline - time.monotonic(), 0))
        return not any(thread.is_alive() for _, thread in self.worker_threads)


class _QueueStorage(SqliteStorage):
    """SQLite storage with `synchronous=NORMAL`: the queue is rebuilt from the database on start."""

    def _create_connection(self) -> sqlite3.Connection:
        conn = super()._create_connection()
        conn.execute("pragma synchronous=NORMAL")
        return conn


class HueyQueue:
    """`ports.JobQueue` on Huey on SQLite; with a `handler`, an in-process consumer of `workers`
    threads calls `handler(execution_id)`; without one it only enqueues (for consumers in another
    process on the same data directory, which poll it every `IDLE_POLL_SECONDS`)."""

    def __init__(self, path: Path, workers: int, handler: Callable[[int], None] | None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._huey = SqliteHuey("opscraft", filename=str(path), results=False, storage_class=_QueueStorage)
        self._task = self._huey.task(name="run_execution")(handler or _elsewhere)
        self._wakeup = _Wakeup()
        self._consumer = _InProcessConsumer(self._huey, workers, self._wakeup) if handler else None

    def enqueue(self, execution_id: int) -> None:
        self._task(execution_id)
        self._wakeup.notify()

    def start(self) -> None:
        if self._consumer is None:
            raise RuntimeError("this queue only enqueues: it was made without a handler")
        self._consumer.start()

    def stop(self) -> None:
        if self._consumer is not None:
            self._consumer.stop_flag.set()
            self._wakeup.notify(everyone=True)

    def join(self, timeout: float) -> bool:
        return self._consumer.join(timeout) if self._consumer is not None else True

    def clear(self) -> None:
        self._huey.flush()


def _elsewhere(execution_id: int) -> None:
    """The task body of an enqueue-only queue: never called here (consumers run elsewhere)."""
    raise RuntimeError(f"execution {execution_id} belongs to a consumer in another process")
