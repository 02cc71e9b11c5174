"""SQLite through aiosqlite with one thread hop per statement (issue 15's lean request path).

aiosqlite runs every call on the connection's own thread: the caller queues it, the thread runs
it, then wakes the event loop (`call_soon_threadsafe`, a write to the loop's self-pipe) to resume
the caller. SQLAlchemy's adapter (`sqlalchemy.dialects.sqlite.aiosqlite`) makes four such calls
per SELECT (open a cursor, execute, fetch all rows, close the cursor) and three per INSERT,
UPDATE or DELETE: each is two thread wake-ups and one round of the event loop. With
`OneHopCursor` the cursor is opened, the statement executed, its rows fetched and the cursor
closed in a single call on the connection's thread, so a statement costs one hop whatever its
kind. Results, errors, `rowcount` and `lastrowid` are the same as before: they are read from the
same `sqlite3` cursor, after its rows were fetched, as the adapter did. Server-side (streaming)
cursors keep SQLAlchemy's own adapter. A commit or rollback with no transaction open (a session
that only read) makes no hop at all (`OneHopConnection`).

It relies on aiosqlite's `Connection._execute(function, *args)` (run `function` on the
connection's thread) and `Connection._conn` (the `sqlite3.Connection`), the same private
interface SQLAlchemy's adapter uses for its isolation-level setter; `tests/test_sqlite_one_hop.py`
pins that it exists.
"""

from __future__ import annotations

import collections
import sqlite3
from typing import Any

from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util.concurrency import await_

# (description, rows, rowcount, lastrowid) of one executed statement.
_Outcome = tuple[Any, list[Any], int, int | None]


def _run(connection: sqlite3.Connection, operation: str, parameters: Any, many: bool) -> _Outcome:
    """On the connection's thread: execute `operation` (once, or for each of `parameters` when
    `many`) on a new cursor, fetch every row it returns, close it.

    Text that is not UTF-8 (OpsCraft writes none: damaged pages, in a row or in the schema that
    SQLite's own error message quotes) raises sqlite3.DatabaseError, as SQLite's other damage
    does, not the UnicodeDecodeError of Python's decoding: a damaged file was a traceback at
    start instead of `opscraft: cannot open the SQLite database: ...`."""
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    except UnicodeDecodeError as exc:
        raise sqlite3.DatabaseError(
            f"database disk image is malformed (text that is not UTF-8: {exc.reason})"
        ) from exc
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered DBAPI cursor whose `execute` and `executemany` are one call on the aiosqlite
    connection's thread (rows fetched there); it holds no `sqlite3` cursor between calls."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = {}  # type: ignore[assignment]
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        """The DBAPI `description` of the last statement (PEP 249), read from its sqlite3 cursor."""
        return self._description

    @property
    def rowcount(self) -> int:
        """Rows changed by the last statement (PEP 249 `rowcount`)."""
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        """Row id of the last row inserted (sqlite3's `lastrowid`)."""
        return self._lastrowid  # type: ignore[return-value]

    @property
    def arraysize(self) -> int:
        """PEP 249 `arraysize`: rows fetched at a time by `fetchmany` without a size (always 1)."""
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass  # rows are always fetched in full on the connection's thread

    async def _async_soft_close(self) -> None:
        pass  # nothing is open between calls

    def close(self) -> None:
        """Drop the buffered rows; there is no sqlite3 cursor to close."""
        self._rows.clear()

    def _call(self, operation: Any, parameters: Any, many: bool) -> None:
        try:
            outcome: _Outcome = await_(
                self._connection._execute(_run, self._connection._conn, operation, parameters, many)
            )
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)

    def execute(self, operation: Any, parameters: Any = None) -> None:
        """Run one statement on the connection's thread in a single hop and buffer its rows (PEP 249
        `execute`).
        """
        self._call(operation, parameters, False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> None:
        """Run a statement once per parameter set on the connection's thread in a single hop (PEP 249
        `executemany`).
        """
        self._call(operation, seq_of_parameters, True)

    def nextset(self) -> None:
        """Not supported by sqlite3: raises NotImplementedError."""
        raise NotImplementedError("sqlite3 has no further result sets")

    def setinputsizes(self, *inputsizes: Any) -> None:
        """PEP 249 no-op: sqlite3 takes no input sizes."""
        pass


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    """SQLAlchemy's aiosqlite connection adapter, with `OneHopCursor` for buffered cursors, whose
    commit and rollback make no hop when no transaction is open.

    `sqlite3` opens a transaction only before a writing statement, so a connection that only
    read has none: its commit and rollback (the pool's reset when every session ends) would be
    a hop to run a no-op (`sqlite3.Connection.commit` and `rollback` themselves do nothing
    without an open transaction). `in_transaction` reads SQLite's autocommit flag without
    running anything; nothing else runs on the connection meanwhile (its user is the caller).
    """

    __slots__ = ()
    _cursor_cls = OneHopCursor

    def _in_transaction(self) -> bool:
        connection = self._connection._connection
        return connection is not None and connection.in_transaction

    def commit(self) -> None:
        """Commit, without a thread hop when no transaction is open."""
        if self._in_transaction():
            super().commit()

    def rollback(self) -> None:
        """Roll back, without a thread hop when no transaction is open."""
        if self._in_transaction():
            super().rollback()


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """SQLAlchemy's aiosqlite DBAPI shim, handing out `OneHopConnection`s: pass `dbapi()` as
    `module=` to `create_async_engine` for a `sqlite+aiosqlite` URL."""

    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        """Connect like the aiosqlite DBAPI shim, wrapped in a OneHopConnection."""
        adapted = super().connect(*arg, **kw)
        return OneHopConnection(self, adapted._connection)


def dbapi() -> OneHopDBAPI:
    """The DBAPI module to give a `sqlite+aiosqlite` engine (`create_async_engine(url, module=...)`)."""
    import aiosqlite

    return OneHopDBAPI(aiosqlite, sqlite3)
