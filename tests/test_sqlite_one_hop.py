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
