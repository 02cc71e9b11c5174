"""Process CPU per SQLite statement through the async engine: SQLAlchemy's own aiosqlite adapter
(three or four calls on the connection's thread per statement) against `db.sqlite_one_hop` (one).

On one warm connection to a scratch file database (`db.engine.create_engine`: WAL, the same
pragmas and write gate for both): `--n`
SELECTs of 5 rows, then `--n / 4` INSERTs each followed by its commit; the two adapters
alternate for `--rounds` rounds. CPU is `time.process_time` (every thread of this process: the
event loop's and the connection's), per statement.

Usage: .venv/bin/python -m bench.bench_sqlite_hops [--n 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from typing import Any

from sqlalchemy import text
from sqlalchemy.dialects.sqlite.aiosqlite import SQLiteDialect_aiosqlite

from opscraft.db import sqlite_one_hop
from opscraft.db.engine import create_engine


async def measure(engine_kwargs: dict[str, Any], n: int) -> tuple[float, float]:
    """(µs per SELECT, µs per INSERT + commit) with an engine built from `engine_kwargs`."""
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/bench.db"
        engine = create_engine(url, **engine_kwargs)  # the same pragmas and write gate for both
        async with engine.begin() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"))
            for _ in range(50):
                await conn.execute(text("INSERT INTO t (v) VALUES ('x')"))
        async with engine.connect() as conn:
            t0 = time.process_time()
            for _ in range(n):
                (await conn.execute(text("SELECT id, v FROM t WHERE id < 6"))).all()
            t1 = time.process_time()
            for _ in range(n // 4):
                await conn.execute(text("INSERT INTO t (v) VALUES ('y')"))
                await conn.commit()
            t2 = time.process_time()
        await engine.dispose()
    return (t1 - t0) / n * 1e6, (t2 - t1) / (n // 4) * 1e6


async def main(n: int, rounds: int) -> None:
    adapters = {
        "SQLAlchemy's adapter": {"module": SQLiteDialect_aiosqlite.import_dbapi()},
        "one hop": {"module": sqlite_one_hop.dbapi()},  # db.engine's default
    }
    for _ in range(rounds):
        for name, kwargs in adapters.items():
            select_us, insert_us = await measure(kwargs, n)
            print(f"{name:>20}: SELECT {select_us:5.0f} µs, INSERT + commit {insert_us:5.0f} µs, process CPU")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.rounds))
