"""The SQLite file engine's connection pool (db/engine.py, issue 15): a burst's connections are
opened once and kept, not opened and closed per request beyond the first five (each opening was
a new aiosqlite thread started from the event loop, the connection and its pragmas), and at most
`SQLITE_POOL_SIZE` are open at once, as before (5 kept plus 10 overflow)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from sqlalchemy import event, exc, text
from sqlalchemy.ext.asyncio import AsyncEngine

from opscraft.db.engine import SQLITE_POOL_SIZE, create_engine, is_busy


async def _hold_all(engine: AsyncEngine, count: int) -> None:
    """`count` connections checked out at once, each running a statement, then all returned."""
    all_in = asyncio.Barrier(count)

    async def one() -> None:
        async with engine.connect() as conn:
            assert (await conn.execute(text("SELECT 1"))).scalar_one() == 1
            await all_in.wait()

    await asyncio.gather(*(one() for _ in range(count)))


async def test_a_burst_of_connections_is_opened_once_and_kept(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}")
    opened: list[object] = []
    event.listen(engine.sync_engine, "connect", lambda dbapi_conn, _record: opened.append(dbapi_conn))
    try:
        for _ in range(3):
            await _hold_all(engine, SQLITE_POOL_SIZE)
        # main before the change: 15 in the first burst, then 10 reopened in each later one.
        assert len(opened) == SQLITE_POOL_SIZE
        assert engine.pool.checkedin() == SQLITE_POOL_SIZE
    finally:
        await engine.dispose()


async def test_no_more_connections_than_the_pool_size_are_open_at_once(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}", pool_timeout=0.5)
    try:
        async with AsyncExitStack() as held:
            for _ in range(SQLITE_POOL_SIZE):
                conn = await held.enter_async_context(engine.connect())
                await conn.execute(text("SELECT 1"))
            with pytest.raises(exc.TimeoutError) as raised:
                async with engine.connect() as conn:
                    await conn.execute(text("SELECT 1"))
            assert is_busy(raised.value)  # answered 503 "busy, send it again" by the API
        await _hold_all(engine, SQLITE_POOL_SIZE)  # every connection was returned and is usable
    finally:
        await engine.dispose()
