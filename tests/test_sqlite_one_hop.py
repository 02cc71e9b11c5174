"""SQLite statements as one call on aiosqlite's thread (db/sqlite_one_hop.py, issue 15): the same
results, row counts, ids and errors as SQLAlchemy's own aiosqlite adapter, in one hop each, and
no hop for the commit or rollback of a connection that only read."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import exc, text
from sqlalchemy.ext.asyncio import AsyncEngine

from opscraft.db import sqlite_one_hop
from opscraft.db.engine import create_engine


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'one-hop.db'}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL)"))
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every call queued to an aiosqlite connection's thread, as it is queued."""
    calls: list[Any] = []
    queue_call = aiosqlite.Connection._execute

    async def counted(self: aiosqlite.Connection, fn: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(fn)
        return await queue_call(self, fn, *args, **kwargs)

    monkeypatch.setattr(aiosqlite.Connection, "_execute", counted)
    return calls


def test_the_engine_uses_the_one_hop_adapter(engine: AsyncEngine) -> None:
    assert isinstance(engine.dialect.dbapi, sqlite_one_hop.OneHopDBAPI)
    # The private aiosqlite interface the adapter relies on.
    assert callable(aiosqlite.Connection._execute)
    assert isinstance(aiosqlite.Connection._conn, property)


async def test_results_counts_ids_and_errors_are_the_drivers(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        inserted = await conn.execute(text("INSERT INTO t (name) VALUES ('a')"))
        assert inserted.lastrowid == 1
        many = await conn.execute(text("INSERT INTO t (name) VALUES (:name)"), [{"name": "b"}, {"name": "c"}])
        assert many.rowcount == 2
        updated = await conn.execute(text("UPDATE t SET name = name || '!' WHERE id > 1"))
        assert updated.rowcount == 2
        returned = await conn.execute(text("UPDATE t SET name = 'z' WHERE id = 1 RETURNING id, name"))
        assert returned.all() == [(1, "z")]
        rows = await conn.execute(text("SELECT id, name FROM t ORDER BY id"))
        assert list(rows.keys()) == ["id", "name"]
        assert rows.all() == [(1, "z"), (2, "b!"), (3, "c!")]
        assert (await conn.execute(text("SELECT name FROM t WHERE id = 99"))).first() is None
    async with engine.connect() as conn:
        with pytest.raises(exc.IntegrityError):
            await conn.execute(text("INSERT INTO t (name) VALUES ('z')"))
        await conn.rollback()
        with pytest.raises(exc.OperationalError, match="no such table"):
            await conn.execute(text("SELECT * FROM missing"))


async def test_a_statement_is_one_hop_and_a_read_only_end_is_none(
    engine: AsyncEngine, hops: list[Any]
) -> None:
    async with engine.connect() as conn:  # a connection from the pool: no hop to connect
        await conn.execute(text("SELECT 1"))
        hops.clear()
        assert (await conn.execute(text("SELECT id FROM t"))).all() == []
        assert len(hops) == 1, "a SELECT: cursor, execute, fetch and close in one call"
        hops.clear()
        await conn.rollback()
        await conn.commit()
        assert hops == [], "nothing to end: no transaction was opened by a read"
        hops.clear()
        await conn.execute(text("INSERT INTO t (name) VALUES ('w')"))
        assert len(hops) == 1
        hops.clear()
        await conn.commit()
        assert len(hops) == 1, "a write's transaction is committed"
    async with engine.connect() as conn:
        assert (await conn.execute(text("SELECT name FROM t"))).scalars().all() == ["w"]


async def test_a_read_inside_reads_here_makes_no_hop_and_reads_the_same(
    engine: AsyncEngine, hops: list[Any]
) -> None:
    """Inside `reads_here()` a SELECT on a WAL database runs on the event loop's thread (no call
    queued to aiosqlite's), with the same rows, columns and errors; it reads the connection's
    own uncommitted writes; writes, and reads outside it, still take their one hop."""
    async with engine.connect() as conn:
        await conn.execute(text("INSERT INTO t (name) VALUES ('a'), ('b')"))
        await conn.commit()
        hops.clear()
        with sqlite_one_hop.reads_here():
            rows = await conn.execute(text("SELECT id, name FROM t ORDER BY id"))
            assert list(rows.keys()) == ["id", "name"]
            assert rows.all() == [(1, "a"), (2, "b")]
            assert (await conn.execute(text("select name from t where id = :id"), {"id": 2})).scalar() == "b"
            with pytest.raises(exc.OperationalError, match="no such table"):
                await conn.execute(text("SELECT * FROM missing"))
            assert hops == [], "reads on the calling thread"
            await conn.execute(text("INSERT INTO t (name) VALUES ('c')"))
            assert len(hops) == 1, "a write still goes to SQLite's thread"
            assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 3, "its own write"
            assert len(hops) == 1
        await conn.commit()
        hops.clear()
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar() == 3
        assert len(hops) == 1, "outside it, a read takes its hop"


async def test_reads_here_does_not_wait_for_a_writer_and_sees_only_committed_rows(
    engine: AsyncEngine, hops: list[Any]
) -> None:
    """While another connection holds the write lock with uncommitted rows, a read inside
    `reads_here()` neither waits (WAL: a reader never takes the writer's lock, so the event loop
    cannot sleep in SQLite's busy handler) nor sees those rows."""
    async with engine.connect() as writer, engine.connect() as reader:
        await writer.execute(text("INSERT INTO t (name) VALUES ('held')"))  # write lock held
        with sqlite_one_hop.reads_here():
            hops.clear()
            assert (await reader.execute(text("SELECT count(*) FROM t"))).scalar() == 0
            assert hops == []
        await writer.commit()
        with sqlite_one_hop.reads_here():
            assert (await reader.execute(text("SELECT name FROM t"))).scalars().all() == ["held"]


async def test_reads_here_keeps_the_hop_for_a_database_not_in_wal_mode(hops: list[Any]) -> None:
    """An in-memory database cannot be in WAL mode (its journal is in memory): there a reader
    could wait for a lock, so its reads keep their hop even inside `reads_here()`."""
    engine = create_engine("sqlite+aiosqlite:///:memory:")
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            hops.clear()
            with sqlite_one_hop.reads_here():
                assert (await conn.execute(text("SELECT 2"))).scalar() == 2
            assert len(hops) == 1
    finally:
        await engine.dispose()
