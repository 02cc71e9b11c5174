"""The job queue: Huey, with an in-process consumer that wakes the moment a job is enqueued.

The payload of a job is the execution id only. `SqliteHuey` in the data directory is the default
(one machine); with `REDIS_URL`, `RedisHuey` with a blocking pop (`BRPOP`: a consumer in any
process takes a job the moment it is pushed, no polling delay) serves web and `opscraft worker`
processes on any machine, behind the same `ports.JobQueue`.

On a SQLite database (one process runs everything: `transport.limitations`) a job enqueued by
the process that consumes it is handed to a consumer thread in memory (`in_process`), without
the queue file's write and its consumer's exclusive read (issue 15: two SQLite transactions per
run, off the request path). Nothing is lost that was not lost before: the queue is rebuilt from
the `queued` rows at every start (`worker.start`), which covers a job in memory at a crash.
There a run may also come already claimed (`hand`, from the submission's own transaction:
`Executor.take`) while a consumer thread is free (`free_slots`).
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import redis
from huey import Huey, RedisHuey, SqliteHuey
from huey.consumer import Consumer, Worker
from huey.storage import RedisStorage, SqliteStorage

from opscraft.execution.queue_error import QueueFileError

log = logging.getLogger(__name__)

# Safety net only: a consumer in another process may enqueue without notifying this one.
IDLE_POLL_SECONDS = 1.0
# How long a blocking pop (Redis) waits before the consumer checks whether it should stop.
BLOCKING_READ_SECONDS = 1
# A Redis that accepted the connection but does not answer (frozen, a network cut without a reset)
# fails a command after this long instead of holding the consumer (and an enqueue) for ever.
REDIS_SOCKET_TIMEOUT_SECONDS = BLOCKING_READ_SECONDS + 4
REDIS_CONNECT_TIMEOUT_SECONDS = 2
QUEUE_WARN_EVERY_SECONDS = 30.0


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


class _ReadState:
    """Whether the consumers' last read of the queue failed, and why (shared by their threads;
    at most `ERROR_CHARS` characters, as the `workers.queue_error` column keeps it)."""

    ERROR_CHARS = 500

    def __init__(self) -> None:
        self.error: str | None = None

    def read(self) -> None:
        self.error = None

    def failed(self, exc: Exception) -> None:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        self.error = f"cannot read the job queue: {reason}"[: self.ERROR_CHARS]


Handed = int | Callable[[], None]
"""What the in-memory hand-over carries: an execution id to claim, or a claimed run to start."""


class _Busy:
    """How many consumer threads run a job now (shared by them; `HueyQueue.free_slots`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def add(self, delta: int) -> None:
        with self._lock:
            self.count += delta


class _WakingWorker(Worker):
    wakeup: _Wakeup
    blocking: bool
    handed: deque[Handed]
    handler: Callable[[int], None]
    read_state: _ReadState
    busy: _Busy
    _last_warning = 0.0

    def loop(self, now: object = None) -> None:
        seen = self.wakeup.generation
        # Busy before the pop: between the two, `free_slots` would count this thread free and
        # the job gone, and a run claimed then would wait, `running`, for another thread.
        self.busy.add(1)
        try:
            job = self.handed.popleft()
        except IndexError:
            self.busy.add(-1)
        else:
            try:
                self.handler(job) if isinstance(job, int) else job()
            except Exception:
                self._logger.exception("unhandled error in the in-process job %s", job)
            finally:
                self.busy.add(-1)
            return
        try:
            task = self.huey.dequeue()
        except Exception as exc:
            self.read_state.failed(exc)
            if time.monotonic() - _WakingWorker._last_warning >= QUEUE_WARN_EVERY_SECONDS:
                _WakingWorker._last_warning = time.monotonic()
                self._logger.warning("cannot read the job queue (%s); retrying every second", exc)
            self.wakeup.wait(seen, IDLE_POLL_SECONDS)
            return
        self.read_state.read()
        if task is None:
            if not self.blocking and not self.stop_flag.is_set():
                self.wakeup.wait(seen, IDLE_POLL_SECONDS)
            return
        if self.stop_flag.is_set():
            # Taken by a blocking pop that began before the stop: back to the queue for another
            # worker (it used to be run here and killed at the end of the grace period).
            self.huey.enqueue(task)
            return
        self.busy.add(1)
        try:
            # The job's function itself, not `Huey.execute`: that asked the storage whether the
            # job was revoked before running it and cleared the flag after (OpsCraft revokes,
            # schedules and keeps nothing of a job), so a Redis that went away between the pop
            # and that question dropped a job already taken off the queue (a traceback at ERROR;
            # its run waited `queued` for a stall check, 10-20 s).
            task.execute()
        except Exception:
            self._logger.exception("unhandled error in job %s", task.id)
        finally:
            self.busy.add(-1)


class _InProcessConsumer(Consumer):
    """Huey's consumer without signal handlers (the web server owns them) and with wake-ups."""

    worker_class = _WakingWorker

    def __init__(
        self,
        huey: Huey,
        workers: int,
        wakeup: _Wakeup,
        handed: deque[Handed],
        handler: Callable[[int], None],
        read_state: _ReadState,
        busy: _Busy,
    ) -> None:
        self._wakeup = wakeup
        self._handed = handed
        self._handler = handler
        self._read_state = read_state
        self._busy = busy
        self._blocking = isinstance(huey.storage, RedisStorage) and bool(huey.storage.blocking)
        super().__init__(huey, workers=workers, periodic=False, worker_type="thread")

    def _create_worker(self) -> Worker:
        worker = super()._create_worker()
        worker.wakeup = self._wakeup
        worker.blocking = self._blocking
        worker.handed = self._handed
        worker.handler = self._handler
        worker.read_state = self._read_state
        worker.busy = self._busy
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


class _RedisQueueStorage(RedisStorage):
    """Redis storage whose blocking pop tells a Redis that does not answer (the socket timed out:
    `redis.exceptions.TimeoutError` is raised) from an empty queue (`BRPOP`'s own timeout: None).
    Huey's own takes both for an empty queue, so consumers of a frozen Redis looked idle."""

    def dequeue(self) -> bytes | None:
        if not self.blocking:
            return super().dequeue()
        reply = self.conn.brpop(self.queue_key, timeout=self.read_timeout)
        return None if reply is None else reply[1]


class HueyQueue:
    """`ports.JobQueue` on a Huey (`sqlite` or `redis` below); with a `handler`, an in-process
    consumer of `workers` threads calls `handler(execution_id)`; without one it only enqueues (for
    consumers in other processes: on SQLite they poll every `IDLE_POLL_SECONDS`, on Redis they
    block on the queue). `in_process` (with a `handler`): jobs enqueued here go to this
    process's consumer in memory (see the module docstring); jobs in the storage (enqueued by
    another process) are still taken."""

    @classmethod
    def sqlite(
        cls, path: Path, workers: int, handler: Callable[[int], None] | None, *, in_process: bool = False
    ) -> HueyQueue:
        """Huey on the SQLite file `path` (one machine); raises QueueFileError when the file
        cannot be opened (not a database, a full or failing disk: SQLite's own error)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            huey = SqliteHuey("opscraft", filename=str(path), results=False, storage_class=_QueueStorage)
        except sqlite3.Error as exc:
            raise QueueFileError(path, str(exc)) from exc
        return cls(huey, workers, handler, in_process=in_process)

    @classmethod
    def redis(cls, url: str, name: str, workers: int, handler: Callable[[int], None] | None) -> HueyQueue:
        """Huey on Redis at `url` (queue key `huey.redis.<name>`), consumers blocking on `BRPOP`;
        a command Redis does not answer fails after `REDIS_SOCKET_TIMEOUT_SECONDS`."""
        pool = redis.ConnectionPool.from_url(
            url,
            socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_CONNECT_TIMEOUT_SECONDS,
        )
        huey = RedisHuey(
            name,
            connection_pool=pool,
            results=False,
            blocking=True,
            read_timeout=BLOCKING_READ_SECONDS,
            storage_class=_RedisQueueStorage,
        )
        return cls(huey, workers, handler)

    def __init__(
        self, huey: Huey, workers: int, handler: Callable[[int], None] | None, *, in_process: bool = False
    ) -> None:
        self._huey = huey
        self._task = self._huey.task(name="run_execution")(_task_body(handler))
        self._wakeup = _Wakeup()
        self._handed: deque[Handed] = deque()  # thread-safe appends and pops
        self._closing = threading.Lock()  # `hand` against `left_over`
        self._closed = False
        self.in_process = in_process and handler is not None
        self._read_state = _ReadState()
        self._workers = workers
        self._busy = _Busy()
        self._consumer = (
            _InProcessConsumer(
                self._huey, workers, self._wakeup, self._handed, handler, self._read_state, self._busy
            )
            if handler
            else None
        )

    def enqueue(self, execution_id: int) -> None:
        """Queue a run for the workers (in-process: hand it to this process's consumer) and wake the waiting
        consumers.
        """
        if self.in_process:
            self._handed.append(execution_id)
        else:
            self._task(execution_id)
        self._wakeup.notify()

    def free_slots(self) -> int:
        """Consumer threads (of an `in_process` queue) that would take a job handed now at once:
        neither running one nor due to take one already handed. A snapshot: a thread may take
        a job from the queue file meanwhile, and a run handed then waits for the next free one.
        0 once the consumer is stopping (`stop`)."""
        if not self.in_process or self._consumer is None or self._consumer.stop_flag.is_set():
            return 0
        return self._workers - self._busy.count - len(self._handed)

    def hand(self, job: Callable[[], None]) -> bool:
        """Have a consumer thread of an `in_process` queue call `job()` (a claimed run:
        `Executor.take`); True. False once `left_over` was called (the consumer stopped): the
        job was not taken, and its caller ends it. A run claimed before the stop and handed
        after it used to wait in the deque for a thread that never came, `running` until the
        next start recovered it."""
        if not self.in_process:
            raise RuntimeError("only an in-process queue takes claimed runs")
        with self._closing:
            if self._closed:
                return False
            self._handed.append(job)
        self._wakeup.notify()
        return True

    def queued_ahead(self, most: int) -> list[int]:
        """Up to `most` execution ids waiting at the front of an `in_process` queue, removed
        from it (none behind a claimed run waiting there): a consumer thread claims them with
        its own in one transaction (`Executor`) and puts them back (`put_back`), claimed or not.
        At most one fewer than the consumer threads: more claimed at once would wait longer
        than a run for a thread. [] on any other queue."""
        ids: list[int] = []
        if not self.in_process:
            return ids
        most = min(most, self._workers - 1)
        while len(ids) < most:
            try:
                job = self._handed.popleft()
            except IndexError:
                break
            if not isinstance(job, int):
                self._handed.appendleft(job)
                break
            ids.append(job)
        return ids

    def put_back(self, jobs: list[Handed]) -> bool:
        """Put `jobs` (from `queued_ahead`: ids, or the runs claimed among them) back at the
        front of the queue, in their order; True. False once `left_over` was called: nothing
        was put back, and the caller ends the claimed runs (the ids stay `queued` for the next
        start, as any job in memory at a stop)."""
        with self._closing:
            if self._closed:
                return False
            self._handed.extendleft(reversed(jobs))
        for _ in jobs:
            self._wakeup.notify()
        return True

    def left_over(self) -> list[Callable[[], None]]:
        """After `join`: the claimed runs handed that no consumer thread started (removed here);
        from now on `hand` takes none."""
        with self._closing:
            self._closed = True
            jobs = [job for job in self._handed if not isinstance(job, int)]
            for job in jobs:
                self._handed.remove(job)
        return jobs

    def start(self) -> None:
        """Start consuming; RuntimeError for a queue made without a handler (enqueue only)."""
        if self._consumer is None:
            raise RuntimeError("this queue only enqueues: it was made without a handler")
        self._consumer.start()

    def stop(self) -> None:
        """Set the consumer's stop flag and wake its waiting threads: they take no new runs (`join` waits
        for them to end).
        """
        if self._consumer is not None:
            self._consumer.stop_flag.set()
            self._wakeup.notify(everyone=True)

    def join(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the consumer to stop; True when it stopped (or there is none)."""
        return self._consumer.join(timeout) if self._consumer is not None else True

    def clear(self) -> None:
        """Drop every queued run (the in-process hand-offs and the Huey queue)."""
        self._handed.clear()
        self._huey.flush()

    def emptied(self) -> bool:
        """`ports.JobQueue.emptied`: on Redis, a marker key next to the queue's is set when it is
        missing, and it is missing only when Redis lost its data (restarted without persistence,
        flushed) or on the very first ask; `SET NX` answers True to one process only. A queue
        file (SQLite) is never emptied behind our back: False."""
        storage = self._huey.storage
        if not isinstance(storage, RedisStorage):
            return False
        return bool(storage.conn.set(f"{storage.queue_key}.kept", "1", nx=True))

    def unreadable(self) -> str | None:
        """`ports.JobQueue.unreadable`: the error of the consumers' last read, None after a read
        that worked (an empty blocking pop is one)."""
        return self._read_state.error


def _task_body(handler: Callable[[int], None] | None) -> Callable[[int], None]:
    """The job's function. Huey names a task by its function's module and name, and a consumer
    runs only messages whose name it knows, so every process registers the same name
    (`opscraft.execution.queue.run_execution`), whoever calls it; without a `handler` (an
    enqueue-only queue) it is never called here."""

    def run_execution(execution_id: int) -> None:
        if handler is None:
            raise RuntimeError(f"execution {execution_id} belongs to a consumer in another process")
        handler(execution_id)

    return run_execution
