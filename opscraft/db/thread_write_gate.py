"""This process's threads write to one SQLite file in turns, first come first served (issue 15).

`db.write_gate` queues the writers of the async engine; the synchronous engines (the execution
engine's consumer threads and output writer, `execution.store`; the group commit of submissions,
`db.group_commit`) each hold SQLite's write lock for a short transaction of their own, and used to
race for it in SQLite's busy handler, which polls: it sleeps 1, 2, 5, ... then 100 ms between
tries. Under the 1,000-run burst a worker's claim or finish waited 5-10 ms on average, with waits
of 0.5-0.8 s (a writer that has slept a while loses every race to one that tries every
millisecond), and a group of submissions (a few rows) took 20-35 ms to commit.

`ThreadWriteGate` is one FIFO lock per database file, shared by every synchronous engine on that
file in this process: a connection takes its turn just before its first writing statement
(where pysqlite begins the transaction and SQLite takes its lock) and hands it to the next
waiter, without any polling delay, when it returns to the pool (after its COMMIT or ROLLBACK).
SQLite's own lock and busy timeout still arbitrate between this gate and other writers (the
async engine's connection, other processes).

A writer that waits `timeout` seconds for its turn gets SQLite's own error for that case
(`OperationalError`, "database is locked"): the database is busy (`db.engine.is_busy`), exactly
as when SQLite's busy timeout ran out.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import deque
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import OperationalError

from opscraft.db.write_gate import is_write

_HELD = "opscraft_thread_write_gate_held"


class ThreadWriteGate:
    """A lock taken in arrival order (see the module docstring); `timeout` in seconds."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._mutex = threading.Lock()
        self._held = False
        self._waiters: deque[threading.Lock] = deque()

    @property
    def held(self) -> bool:
        """True while some connection holds the gate."""
        return self._held

    @property
    def waiting(self) -> int:
        """How many writers wait for their turn."""
        return len(self._waiters)

    def acquire(self) -> bool:
        """Wait for this thread's turn (at most `timeout` seconds); False when it did not come."""
        with self._mutex:
            if not self._held:
                self._held = True
                return True
            turn = threading.Lock()
            turn.acquire()
            self._waiters.append(turn)
        if turn.acquire(timeout=self.timeout):
            return True
        with self._mutex:
            if turn in self._waiters:
                self._waiters.remove(turn)
                return False
        return True  # handed over just as the wait ran out: the turn is this thread's

    def release(self) -> None:
        """Hand the turn to the longest waiter, or free the gate."""
        with self._mutex:
            if self._waiters:
                self._waiters.popleft().release()  # still held: it is the next writer's now
            else:
                self._held = False

    def install(self, engine: Engine) -> None:
        """Gate every write made through `engine` (call once, before it is used)."""
        event.listen(engine, "before_cursor_execute", self._before_execute)
        event.listen(engine.pool, "checkin", self._returned)
        event.listen(engine.pool, "invalidate", self._invalidated)

    def _before_execute(self, conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if _HELD in conn.info or not is_write(statement):
            return
        if not self.acquire():
            locked = sqlite3.OperationalError("database is locked")
            raise OperationalError(statement, parameters, locked)
        conn.info[_HELD] = True

    def _returned(self, _dbapi_connection: Any, record: Any) -> None:
        if record is not None and record.info.pop(_HELD, False):
            self.release()

    def _invalidated(self, _dbapi_connection: Any, record: Any, _exception: Any) -> None:
        self._returned(None, record)


_gates: dict[str, ThreadWriteGate] = {}
_gates_lock = threading.Lock()


def for_file(path: str, timeout: float) -> ThreadWriteGate:
    """The gate of the SQLite file `path` in this process (created with `timeout` at first use)."""
    with _gates_lock:
        gate = _gates.get(path)
        if gate is None:
            gate = _gates[path] = ThreadWriteGate(timeout)
        return gate
