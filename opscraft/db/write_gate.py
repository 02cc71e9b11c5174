"""SQLite writers of one async engine take turns in arrival order (issue 15).

SQLite lets one connection write at a time. A connection that wants to write while another holds
the lock waits in SQLite's busy handler, which polls: it sleeps 1, 2, 5, ... and then 100 ms
between tries, so a writer that has waited a while loses every race to newcomers that poll every
millisecond. Under a burst (1,000 submissions over 32 connections, the run-event delivery and the
workers' claims all writing) some request waited past the busy timeout and answered 503 although
the server was only busy, not overloaded.

`WriteGate` queues the writers of one `AsyncEngine` on an asyncio lock instead, first come first
served: a connection takes the gate just before its first writing statement (the moment SQLite's
own write lock would be taken: pysqlite begins a transaction only before a write) and gives it
back when the connection returns to the pool (after its commit or rollback). SQLite's lock and
busy timeout still arbitrate between this engine and other connections (the workers' threads,
other processes), which hold it for one short statement each.

A writer that waits more than `timeout` seconds for its turn gets `WriteQueueTimeout`: that is
overload (`db.engine.is_busy`, answered 503 with Retry-After), not a fault.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.util.concurrency import await_only, in_greenlet

_HELD = "opscraft_write_gate_held"
# First words of the statements that take SQLite's write lock.
WRITE_VERBS = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER"})


class WriteQueueTimeout(Exception):
    """A write waited longer than the gate's timeout for its turn: the database is overloaded."""


def is_write(statement: str) -> bool:
    """True when `statement` (SQL text) starts with a verb that takes SQLite's write lock."""
    head = statement.lstrip()[:8].split(None, 1)
    return bool(head) and head[0].upper() in WRITE_VERBS


class WriteGate:
    """One writing connection at a time on the engine it is installed on, in arrival order.

    `timeout`: seconds a writer may wait for its turn before `WriteQueueTimeout`. The turn is
    handed from one writer straight to the next in the queue, so no newcomer can overtake.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._held = False
        self._queue: deque[asyncio.Future[None]] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None

    def install(self, engine: AsyncEngine) -> None:
        """Gate every write made through `engine` (call once, before it is used)."""
        event.listen(engine.sync_engine, "before_cursor_execute", self._before_execute)
        event.listen(engine.sync_engine, "checkin", self._returned)
        event.listen(engine.sync_engine, "invalidate", self._invalidated)

    @property
    def held(self) -> bool:
        """True while some connection holds the gate."""
        return self._held

    @property
    def waiting(self) -> int:
        """How many writers wait for their turn."""
        return sum(not f.done() for f in self._queue)

    def _before_execute(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if _HELD in conn.info or not is_write(statement) or not in_greenlet():
            return
        await_only(self._acquire())
        conn.info[_HELD] = True

    async def _acquire(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._loop_thread = threading.get_ident()
        if not self._held:
            self._held = True
            return
        turn = self._loop.create_future()
        self._queue.append(turn)
        try:
            async with asyncio.timeout(self.timeout):
                await turn
        except BaseException as exc:
            if turn.done() and not turn.cancelled():  # handed over just now: pass it on
                self._release()
            if isinstance(exc, TimeoutError):
                raise WriteQueueTimeout(
                    f"waited {self.timeout:g} s for a turn to write to the database: overloaded"
                ) from None
            raise

    def _returned(self, _dbapi_connection: Any, record: Any) -> None:
        if record is not None and record.info.pop(_HELD, False):
            self._release()

    def _invalidated(self, _dbapi_connection: Any, record: Any, _exception: Any) -> None:
        self._returned(None, record)

    def _release(self) -> None:
        if threading.get_ident() != self._loop_thread and self._loop is not None:
            if not self._loop.is_closed():  # a connection finalised off the loop (garbage collected)
                self._loop.call_soon_threadsafe(self._release)
            return
        while self._queue:
            turn = self._queue.popleft()
            if not turn.done():
                turn.set_result(None)  # the gate stays held: it is the next writer's now
                return
        self._held = False
