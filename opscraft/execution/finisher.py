"""The runs' final states, written on a thread of their own, the ends waiting meanwhile in one
transaction.

A consumer thread whose run is over hands its end (`store.Finish`) to the finisher and takes its
next job; it no longer waits for SQLite's write lock (or PostgreSQL's round trips) itself. The
finisher writes every end waiting when its previous transaction commits in one transaction
(`store.finish`, at most `BATCH` runs: one UPDATE per run, one INSERT of their run events, one
look for a held-back run per script), and only after that COMMIT tells the rest of the
system about each run: its final event on the live bus, `on_finished` (the run events'
dispatcher), and the run a concurrency limit held back, enqueued. So a run's end is durable
before anyone hears of it, as before. The output was stored before the end is handed over
(`OutputPipeline.close` waits for it), except its last batch of at most
`output.TAIL_CHARS` characters, which comes with the end (`Finish.logs`) and is stored in the
end's transaction (a short run's whole output: one transaction instead of two); the live bus
is told it is stored (`stored`) after that COMMIT. So the end never precedes its output.

A transaction that fails is tried again as `Executor` did for one run: while the database is
unreachable (`db.unreachable.is_unreachable`) every `RETRY_SECONDS`, any other error
`ATTEMPTS` times; a batch that still fails is written run by run, so one bad end fails alone
(logged; its run stays `running` until a restart recovers it, as before). An end that fails
with its output chunks is written once more without them, as `error` ("storing the output
failed"), as a run whose output batch failed ended before.

Measured with 1,000 `true` submitted at once (docs/benchmarks.md, session 28): in a burst the
consumer threads spent about a third of their time waiting in `store.finish` for the write lock,
held by the submissions' group commits and the other threads' claims and ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from sqlalchemy.exc import DBAPIError

from opscraft.db import unreachable
from opscraft.db.models.executions import ExecutionStatus
from opscraft.db.unreachable import brief, is_unreachable
from opscraft.execution import store
from opscraft.execution.events import StatusEvent

log = logging.getLogger(__name__)

BATCH = 64
"""The most ends written in one transaction."""
ATTEMPTS = 3
RETRY_SECONDS = 1.0

Done = Callable[[int, StatusEvent, "int | None"], None]
"""Called on the finisher's thread after the COMMIT of a run's end: (execution id, its final
event, a waiting run of the same script to enqueue or None)."""


class Finisher:
    """Writes the ends handed to `put` (see the module docstring); `stop` writes those left."""

    def __init__(self, db: store.Store, done: Done, stored: Callable[[int, int], None]) -> None:
        self._db = db
        self._done = done
        self._stored = stored
        self._cond = threading.Condition()
        self._pending: list[tuple[int, store.Finish]] = []
        self._writing = 0
        self._stopping = False
        self._thread: threading.Thread | None = None

    def put(self, execution_id: int, result: store.Finish) -> None:
        """Have the end `result` of run `execution_id` written (and announced) soon."""
        with self._cond:
            self._pending.append((execution_id, result))
            if self._thread is None or not self._thread.is_alive():
                self._stopping = False
                self._thread = threading.Thread(target=self._loop, name="opscraft-finisher", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every end handed over so far is written (True), or `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._pending or self._writing:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
            return True

    def stop(self, timeout: float) -> None:
        """Write the ends still waiting (for at most `timeout` seconds: an unreachable database
        leaves them `running`, recovered by the next start) and end the thread."""
        if not self.wait_idle(timeout):
            with self._cond:
                left = len(self._pending) + self._writing
            log.warning("shutdown: %d run end(s) not written: the database did not take them", left)
        with self._cond:
            self._stopping = True
            self._cond.notify_all()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if not self._pending:
                    return
                batch, self._pending = self._pending[:BATCH], self._pending[BATCH:]
                self._writing = len(batch)
            try:
                self._write(batch)
            finally:
                with self._cond:
                    self._writing = 0
                    self._cond.notify_all()

    def _write(self, batch: list[tuple[int, store.Finish]]) -> None:
        try:
            ends = _retried(lambda: self._db.run(store.finish, batch), len(batch))
        except Exception as exc:
            if len(batch) == 1:
                execution_id, end = batch[0]
                unreachable.log_failure(log, f"execution {execution_id}: writing its final state failed", exc)
                if end.logs:
                    self._write([(execution_id, _without_output(end, exc))])
                return
            for one in batch:  # one bad end must not hold back the others
                self._write([one])
            return
        for (execution_id, end), (event, waiting) in zip(batch, ends, strict=True):
            try:
                if end.logs:
                    self._stored(execution_id, end.logs[-1].seq)
                self._done(execution_id, event, waiting)
            except Exception:
                log.exception("execution %s: announcing its end failed", execution_id)


Ends = list[tuple[StatusEvent, "int | None"]]
OUTPUT_FAILED = "storing the output failed: see the server log"


def output_failed(exc: BaseException) -> str:
    """A run's `error_message` when storing its output raised `exc`: the disk being full said
    as such (the operator's to fix: `db.unreachable.DISK_FULL`), anything else `OUTPUT_FAILED`."""
    if unreachable.is_disk_full(exc):
        return f"its output could not be stored: {unreachable.DISK_FULL}"
    return OUTPUT_FAILED


def _without_output(end: store.Finish, exc: BaseException) -> store.Finish:
    """`end` whose output chunks could not be stored with it (`exc`): an `error` saying so, as
    `Executor` ends a run whose output batch failed (its byte counts kept)."""
    message = end.error_message if end.status == ExecutionStatus.error else output_failed(exc)
    return replace(end, status=ExecutionStatus.error, error_message=message, logs=())


def _retried(write: Callable[[], Ends], runs: int) -> Ends:
    """`write()`, tried again while the database is unreachable (every `RETRY_SECONDS`) and up to
    `ATTEMPTS` times for another database error (locked, busy)."""
    attempt = 1
    while True:
        try:
            return write()
        except DBAPIError as exc:
            unreachable = is_unreachable(exc)
            if attempt >= ATTEMPTS and not unreachable:
                raise
            if attempt == 1 or not unreachable:
                log.warning("writing the final state of %d run(s) failed (%s), retrying", runs, brief(exc))
            time.sleep(RETRY_SECONDS if unreachable else attempt)
            attempt += 1
