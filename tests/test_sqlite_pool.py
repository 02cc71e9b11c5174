"""The async engine keeps its SQLite connections (db/engine.py, `SQLITE_POOL_SIZE`, issue 15): a
burst of concurrent sessions opens each connection once, not one per session beyond SQLAlchemy's
default five (each a thread, the pragmas and the fold function), and still no more than
`SQLITE_POOL_SIZE` at once: one more waits for a connection to come back."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncSession

from opscraft.db.engine import SQLITE_POOL_SIZE, create_engine


async def test_a_burst_reuses_every_connection_and_the_bound_holds(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}")
    opened: list[object] = []
    event.listen(engine.sync_engine, "connect", lambda conn, _record: opened.append(conn))
    gate = asyncio.Event()
    in_use = 0
    most = 0

    async def one() -> None:
        nonlocal in_use, most
        async with AsyncSession(engine) as session:
            assert (await session.execute(text("SELECT 1"))).scalar_one() == 1
            in_use += 1
            most = max(most, in_use)
            await gate.wait()
            in_use -= 1

    try:
        for _ in range(3):  # three bursts, each holding more sessions at once than the pool
            gate.clear()
            burst = [asyncio.create_task(one()) for _ in range(SQLITE_POOL_SIZE + 3)]
            while in_use < SQLITE_POOL_SIZE:
                await asyncio.sleep(0.01)
            assert in_use == SQLITE_POOL_SIZE, "more connections than the pool holds"
            gate.set()
            await asyncio.gather(*burst)
        assert most == SQLITE_POOL_SIZE
        assert len(opened) == SQLITE_POOL_SIZE, "each connection opened once, kept between bursts"
        # The pragmas hold on every kept connection.
        async with engine.connect() as conn:
            assert (await conn.execute(text("PRAGMA foreign_keys"))).scalar_one() == 1
            assert (await conn.execute(text("PRAGMA journal_mode"))).scalar_one() == "wal"
    finally:
        await engine.dispose()
