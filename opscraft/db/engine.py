"""The async engine and session factory for SQLite (aiosqlite) and PostgreSQL (asyncpg)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, Executable, Row, event
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine.interfaces import DBAPIConnection, ExceptionContext
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.util import await_only as await_
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db import checkpoint, fold, sqlite_one_hop, types
from opscraft.db import text as storable
from opscraft.db.group_commit import GroupInsert
from opscraft.db.write_gate import WriteGate, WriteQueueTimeout

SQLITE_BUSY_TIMEOUT_MS = 10_000
# How long a write through the async engine may wait for its turn (db/write_gate.py) before the
# request is answered 503 as overload: the same bound as the connection pool's checkout timeout.
WRITE_QUEUE_TIMEOUT_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 10
# Connections a SQLite file engine keeps open, all of them kept (no overflow): the 15 at most
# of SQLAlchemy's default (5 kept plus 10 opened and closed again), without a burst's connections
# being reopened, each a new aiosqlite thread started from the event loop (docs/benchmarks.md).
SQLITE_POOL_SIZE = 15
PING_TIMEOUT_SECONDS = 5


def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # checkpoints run on a thread of their own (db/checkpoint.py), not in the committing one
    cursor.execute(f"PRAGMA wal_autocheckpoint={checkpoint.WAL_BACKSTOP_PAGES}")
    cursor.close()
    fold.register(dbapi_conn)
    types.register(dbapi_conn)


def sqlite_file(url: str) -> str | None:
    """The path of the SQLite file a database URL names; None for another database or an
    in-memory one."""
    if not url.startswith("sqlite"):
        return None
    path = url.split(":///", 1)[-1]
    return path if path and path != ":memory:" else None


def create_sqlite_sync_engine(url: str, **kwargs: Any) -> Engine:
    """A synchronous engine (stdlib sqlite3) on the same SQLite file, with the same pragmas and
    its transactions counted for the file's checkpointer (`db.checkpoint`): for threads that
    have no event loop (the execution engine's workers)."""
    engine = create_sync_engine(
        url.replace("sqlite+aiosqlite://", "sqlite://", 1),
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        json_deserializer=storable.json_loads,
        **kwargs,
    )
    event.listen(engine, "connect", _sqlite_pragmas)
    if path := sqlite_file(url):
        checkpoint.count_transactions(engine, path)
    return engine


def create_engine(url: str, *, command_timeout: float | None = None, **kwargs: Any) -> AsyncEngine:
    """An engine with the pragmas (SQLite) or pool settings (PostgreSQL) OpsCraft relies on.

    `command_timeout` (seconds, PostgreSQL only; None: wait for ever): a statement, BEGIN or
    COMMIT the server does not answer within it (frozen, swapped out, a network path dropping
    packets without a reset) raises `sqlalchemy.exc.OperationalError` with
    `connection_invalidated` set, and its connection is discarded (`_unanswered`): the request is
    answered 503 "the database is unreachable" (`db.unreachable.is_unreachable`) instead of
    holding a pooled connection and its client for ever. Migrations do not run under it
    (`db.migrate.upgrade`: one may rightly take minutes).

    JSON columns load through `db.text.json_loads`, so an old row holding an escaped lone
    surrogate still reads as text every response can encode. On SQLite, the engine's writers take
    turns in arrival order (`db.write_gate`) instead of racing in SQLite's busy handler, and each
    statement is one call on aiosqlite's thread (`db.sqlite_one_hop`); a file's connections are
    opened once and kept (`SQLITE_POOL_SIZE`), and count their transactions for the file's
    checkpointer (`db.checkpoint`: no checkpoint in a committing connection).

    A statement's error never repeats its bound values (`hide_parameters`): SQLAlchemy would
    append them to the message, and so to the traceback an unhandled error logs (password
    hashes, sealed secrets, token ids, a run's output).
    """
    kwargs.setdefault("json_deserializer", storable.json_loads)
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("module", sqlite_one_hop.dbapi())
        if path and "poolclass" not in kwargs:
            kwargs.setdefault("pool_size", SQLITE_POOL_SIZE)
            kwargs.setdefault("max_overflow", 0)
        engine = create_async_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        if path:
            checkpoint.count_transactions(engine.sync_engine, path)
        WriteGate(WRITE_QUEUE_TIMEOUT_SECONDS).install(engine)
        return engine
    engine = create_async_engine(
        url,
        pool_size=10,
        max_overflow=20,
        connect_args={"timeout": CONNECT_TIMEOUT_SECONDS, "command_timeout": command_timeout},
        **kwargs,
    )
    event.listen(engine.sync_engine.pool, "checkout", functools.partial(_checked_out, command_timeout))
    if command_timeout is not None:
        event.listen(engine.sync_engine, "handle_error", functools.partial(_unanswered, command_timeout))
    return engine


def _unanswered(seconds: float, context: ExceptionContext) -> OperationalError | None:
    """SQLAlchemy `handle_error` hook: a statement asyncpg gave up on after `seconds`
    (`command_timeout`: it raises a bare `TimeoutError`, which SQLAlchemy neither wraps nor counts
    as a disconnect) becomes a disconnect. The connection is invalidated (its protocol state is
    unknown: a reply may still come) and the caller gets an `OperationalError` marked
    `connection_invalidated`, which `db.unreachable.is_unreachable` reads as an outage."""
    if context.connection is None or not isinstance(context.original_exception, TimeoutError):
        return None
    context.is_disconnect = True
    return _no_answer(seconds, context.statement, context.parameters)


def _no_answer(seconds: float, statement: str | None, parameters: Any) -> OperationalError:
    """The error of a statement PostgreSQL left unanswered for `seconds`, its connection discarded."""
    unanswered = TimeoutError(f"PostgreSQL did not answer within {seconds:g} s")
    return OperationalError(statement, parameters, unanswered, connection_invalidated=True)


def _checked_out(
    seconds: float | None,
    dbapi_conn: DBAPIConnection,
    record: ConnectionPoolEntry,
    _proxy: PoolProxiedConnection,
) -> None:
    """Hand out only a live PostgreSQL connection, without a round trip more than its use costs.

    The connection's transaction is begun here (the BEGIN SQLAlchemy's asyncpg adapter would send
    before the first statement anyway) and that BEGIN is the check: a connection the server
    closed (`pg_terminate_backend`, a restart, a PgBouncer-like idle timeout) fails it, and
    `DisconnectionError` makes the pool discard the connection and check out a new one
    (SQLAlchemy "Disconnect Handling - Pessimistic", custom checkout event), so the request,
    page or background loop never sees the error. Nothing of the caller's has been sent on it
    yet, so this repeats no read or write. Before, only a connection asyncpg already knew closed
    was replaced: one the server killed a moment before the checkout (its FATAL message or end
    of stream not read yet) failed the first statement, answered 503 "the database is
    unreachable". SQLAlchemy's `pool_pre_ping` costs three round trips more on every checkout
    (BEGIN, an empty query, ROLLBACK: issue 15, docs/benchmarks.md).

    A BEGIN unanswered within `seconds` (`command_timeout`: the database frozen, or a network
    path dropping packets silently) raises `OperationalError` marked `connection_invalidated`,
    as a statement's would (`_unanswered`): the pool discards the connection and the caller
    answers 503 at once, not after a new connection's `CONNECT_TIMEOUT_SECONDS` too."""
    driver = record.driver_connection
    if driver is None or driver.is_closed():
        raise DisconnectionError("the server closed this pooled connection")
    if getattr(dbapi_conn, "_transaction", None) is not None:
        return  # begun already (not the pool's usual reset on return): nothing to check
    try:
        await_(dbapi_conn._start_transaction())  # type: ignore[attr-defined]
    except Exception as exc:
        if isinstance(exc, TimeoutError) and seconds is not None:
            raise _no_answer(seconds, "BEGIN", None) from exc
        raise DisconnectionError("a pooled connection failed its BEGIN: the server closed it") from exc


def is_busy(exc: BaseException) -> bool:
    """True for the database being too busy to answer in time, not broken: no pooled connection
    free within the pool's timeout, no turn to write within `WRITE_QUEUE_TIMEOUT_SECONDS`, or
    SQLite's write lock still held after its busy timeout. Such a request may be retried as it
    is (HTTP 503 with Retry-After)."""
    if isinstance(exc, PoolTimeoutError | WriteQueueTimeout):
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


class Database:
    """One engine plus its session factory; owned by the event loop that created it.

    `group` commits concurrent inserts together (`db.group_commit`: the burst of submissions). On
    a SQLite file, the file's WAL is checkpointed by this process's thread for it
    (`db.checkpoint.hold`) until `dispose`."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        """`engine_kwargs` go to `create_engine` (e.g. `command_timeout`)."""
        self.url = url
        self.engine = create_engine(url, **engine_kwargs)
        path = sqlite_file(url)  # a file: another connection sees the same database
        sync = create_sqlite_sync_engine(url, pool_size=1) if path else None
        self.group = GroupInsert(self.engine, is_busy, sync)
        self.checkpointer = checkpoint.hold(path) if path else None
        self._sessions = async_sessionmaker(self.engine, class_=AsyncSession, expire_on_commit=False)

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A session that rolls back on error, so a failed request never leaves a half-written row.

        Closed at the end as `async with AsyncSession` closes it (in a task of its own, shielded
        from the caller's cancellation) while it holds a transaction, hence a connection. One
        that holds none (never used: a request authenticated from the user cache; or committed,
        rolled back or closed already: a submission) has nothing to give back, and is closed at
        once without a greenlet and a task: 110-125 us less per request (issue 15,
        docs/benchmarks.md, session 28)."""
        session = self._sessions()
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        finally:
            if session.in_transaction():
                await asyncio.shield(asyncio.create_task(session.close()))
            else:
                session.sync_session.close()  # no connection: no I/O, nothing to await

    async def read_row(
        self, statement: Executable, parameters: Mapping[str, Any] | None = None
    ) -> Row[Any] | None:
        """The row of `statement` (a read that always returns one, such as a `SELECT` of
        aggregates) with its bind `parameters`, run on a connection of its own, or None when the
        database does not answer it within PING_TIMEOUT_SECONDS or fails it: the health check's
        liveness and counts in one round trip (`api.health`)."""

        async def _read() -> Row[Any] | None:
            async with self.engine.connect() as conn:
                return (await conn.execute(statement, parameters)).first()

        try:
            async with asyncio.timeout(PING_TIMEOUT_SECONDS):
                return await _read()
        except Exception:
            return None

    async def dispose(self) -> None:
        """Close the database's task group, dispose the engine's connection pool and give back
        the file's checkpointer (the last one's thread checkpoints the WAL before it stops)."""
        self.group.close()
        await self.engine.dispose()
        if self.checkpointer is not None:
            checkpoint.release(self.checkpointer)
            self.checkpointer = None
