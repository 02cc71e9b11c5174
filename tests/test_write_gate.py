"""SQLite writers of one async engine take turns in arrival order (opscraft/db/write_gate.py).

A real SQLite file behind the real engine factory: a writer waits for the one before it to
commit (in order, however many wait), readers never wait, and a writer that waits past the
gate's timeout gets an overload error (HTTP 503 with Retry-After), not a fault.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db import engine as db_engine
from opscraft.db.engine import Database, is_busy
from opscraft.db.write_gate import WriteGate, WriteQueueTimeout, is_write


async def _database(tmp_path: Path) -> Database:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'gate.db'}")
    async with db.engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (n INTEGER)"))
    return db


async def test_writers_wait_their_turn_in_arrival_order_and_readers_do_not_wait(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'gate.db'}")
    gate = WriteGate(timeout=60)
    gate.install(engine)
    sessions = async_sessionmaker(engine, class_=AsyncSession)
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (n INTEGER)"))
    done: list[int] = []

    async def write(n: int) -> None:
        async with sessions() as session:
            await session.exec(text("INSERT INTO t VALUES (:n)"), params={"n": n})
            done.append(n)
            await session.commit()

    try:
        async with sessions() as first:
            await first.exec(text("INSERT INTO t VALUES (0)"))
            assert gate.held
            writers = []
            for n in range(1, 6):  # arrival order 1..5: each queued before the next starts
                writers.append(asyncio.create_task(write(n)))
                while gate.waiting < n:
                    await asyncio.sleep(0.01)
            async with sessions() as reader:  # a read does not queue behind the writers
                assert (await reader.exec(text("SELECT count(*) FROM t"))).scalar() == 0
            assert done == [], "no writer may start while the first one holds the gate"
            await first.commit()
        await asyncio.wait_for(asyncio.gather(*writers), 60)
        assert done == [1, 2, 3, 4, 5]
        assert not gate.held and gate.waiting == 0
        async with sessions() as session:
            assert (await session.exec(text("SELECT count(*) FROM t"))).scalar() == 6
    finally:
        await engine.dispose()


async def test_a_rolled_back_or_failed_writer_gives_its_turn_back(tmp_path: Path) -> None:
    db = await _database(tmp_path)
    try:
        with pytest.raises(RuntimeError):
            async with db.session() as session:
                await session.exec(text("INSERT INTO t VALUES (1)"))
                raise RuntimeError("the request failed half-way")
        async with db.session() as session:
            await asyncio.wait_for(session.exec(text("INSERT INTO t VALUES (2)")), 5)
            await session.commit()
        async with db.session() as session:
            assert (await session.exec(text("SELECT n FROM t"))).scalars().all() == [2]
    finally:
        await db.dispose()


async def test_a_writer_waiting_past_the_timeout_is_told_the_database_is_busy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_engine, "WRITE_QUEUE_TIMEOUT_SECONDS", 0.3)
    db = await _database(tmp_path)
    try:
        async with db.session() as first:
            await first.exec(text("INSERT INTO t VALUES (1)"))
            async with db.session() as second:
                with pytest.raises(WriteQueueTimeout) as raised:
                    await second.exec(text("INSERT INTO t VALUES (2)"))
            assert is_busy(raised.value)
            await first.commit()
        async with db.session() as session:
            assert (await session.exec(text("SELECT n FROM t"))).scalars().all() == [1]
    finally:
        await db.dispose()


@pytest.mark.parametrize(
    ("statement", "writes"),
    [
        ("INSERT INTO t VALUES (1)", True),
        ("  update t SET n = 2", True),
        ("DELETE FROM t", True),
        ("REPLACE INTO t VALUES (1)", True),
        ("CREATE INDEX ix ON t (n)", True),
        ("SELECT * FROM t", False),
        ("PRAGMA foreign_keys=ON", False),
        ("", False),
    ],
)
def test_which_statements_take_the_write_lock(statement: str, writes: bool) -> None:
    assert is_write(statement) is writes


async def test_a_burst_of_writers_longer_than_the_busy_timeout_queues_instead_of_failing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The field fault, scaled down: 30 writers that each hold the write lock for 50 ms across
    event-loop turns (as a request does between its INSERT and its COMMIT) need 1.5 s in all,
    three times SQLite's busy timeout (here 0.5 s, standing for 10 s on a saturated machine).
    In SQLite's busy handler the late ones failed with "database is locked" (HTTP 503); queued
    at the gate, every one commits."""
    monkeypatch.setattr(db_engine, "SQLITE_BUSY_TIMEOUT_MS", 500)
    db = await _database(tmp_path)

    async def write(n: int) -> None:
        async with db.session() as session:
            await session.exec(text("INSERT INTO t VALUES (:n)"), params={"n": n})
            await asyncio.sleep(0.05)  # the write's own duration (its transaction held open)
            await session.commit()

    try:
        await asyncio.wait_for(asyncio.gather(*(write(n) for n in range(30))), 60)
        async with db.session() as session:
            assert (await session.exec(text("SELECT count(*) FROM t"))).scalar() == 30
    finally:
        await db.dispose()
