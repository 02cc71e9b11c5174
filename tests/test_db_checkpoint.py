"""SQLite's WAL checkpoints off the committing connections (db/checkpoint.py, issue 15).

A commit on the runs' path (the group commit's thread, the finisher's) no longer checkpoints at
SQLite's 1,000 pages: the process's checkpointer thread does, and the WAL stays bounded under a
steady load, with several processes on the file, and is left checkpointed on shutdown."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, text

from opscraft.db import checkpoint
from opscraft.db.engine import Database, create_engine, create_sqlite_sync_engine
from tests.waiting import wait_until

ROW = "x" * 3000  # one row a page or so: 1,500 commits take the WAL well past 1,000 pages


def _url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _wal_bytes(path: Path) -> int:
    try:
        return os.path.getsize(f"{path}-wal")
    except FileNotFoundError:
        return 0


def _write(engine: Engine, commits: int) -> None:
    for _ in range(commits):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": ROW})


def _made(path: Path) -> Engine:
    engine = create_sqlite_sync_engine(_url(path), pool_size=1)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)"))
    return engine


def _rows(path: Path) -> int:
    with create_sqlite_sync_engine(_url(path), pool_size=1).connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM t")).scalar_one())


@contextmanager
def sqlite_reader(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain connection on the file (autocommit: each read its own transaction)."""
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        yield conn
    finally:
        conn.close()


def _checkpointer_threads() -> int:
    return sum(thread.name == "opscraft-checkpoint" for thread in threading.enumerate())


async def test_a_commit_never_checkpoints_in_the_committing_connection(tmp_path: Path) -> None:
    """1,500 commits through each kind of engine, with no checkpointer: the database file is not
    written (main: the commit past 1,000 pages copied the WAL into it, on its own thread)."""
    sync_path, async_path = tmp_path / "sync.db", tmp_path / "async.db"
    sync_engine = _made(sync_path)
    before = _digest(sync_path)
    _write(sync_engine, 1500)
    assert _digest(sync_path) == before, "a synchronous engine's commit checkpointed"
    sync_engine.dispose()
    assert _rows(sync_path) == 1500  # closing the last connection folded the WAL in

    _made(async_path).dispose()
    async_engine = create_engine(_url(async_path))
    try:
        before = _digest(async_path)
        for _ in range(1500):
            async with async_engine.begin() as conn:
                await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": ROW})
        assert _digest(async_path) == before, "the async engine's commit checkpointed"
    finally:
        await async_engine.dispose()
    assert _rows(async_path) == 1500


async def test_the_checkpointer_copies_the_wal_in_once_commits_stop(tmp_path: Path) -> None:
    """A few commits, then none: the thread copies them into the database file and keeps the
    WAL file's blocks for the next commits; a WAL grown past `WAL_KEEP_BYTES` is truncated
    (main: the commits stayed in the WAL until 1,000 pages or the last connection's close)."""
    path = tmp_path / "quiet.db"
    engine = _made(path)
    db = Database(_url(path))
    assert db.checkpointer is not None
    try:
        transactions = db.checkpointer.transactions
        before = _digest(path)
        async with db.engine.begin() as conn:  # the requests' engine counts its transactions too
            await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
        _write(engine, 49)
        assert db.checkpointer.transactions == transactions + 50
        kept = _wal_bytes(path)
        wait_until(lambda: _digest(path) != before, "the commits copied into the database file")
        assert _wal_bytes(path) == kept, "a WAL of the usual length is kept"

        more = checkpoint.WAL_KEEP_BYTES // 3000
        _write(engine, more)
        assert _wal_bytes(path) > checkpoint.WAL_KEEP_BYTES
        wait_until(lambda: _wal_bytes(path) == 0, "the WAL past its usual length truncated")
        with sqlite_reader(path) as conn:
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (50 + more,)
    finally:
        engine.dispose()
        await db.dispose()


async def test_the_wal_stays_bounded_under_a_steady_load(tmp_path: Path) -> None:
    """Two writers (the runs' two writing threads) and a reader for 12,000 commits, ~50 MiB
    written: the WAL never passes the backstop, and the checkpointer did the checkpoints."""
    path = tmp_path / "steady.db"
    writers = [_made(path), _made(path)]
    db = Database(_url(path))
    assert db.checkpointer is not None
    largest = 0
    stop = threading.Event()

    def read() -> None:
        with sqlite_reader(path) as conn:
            while not stop.is_set():
                conn.execute("SELECT max(id) FROM t").fetchone()

    def watch() -> None:
        nonlocal largest
        while not stop.is_set():
            largest = max(largest, _wal_bytes(path))

    others = [threading.Thread(target=read), threading.Thread(target=watch)]
    try:
        for thread in others:
            thread.start()
        _run_all([lambda engine=engine: _write(engine, 6000) for engine in writers])  # type: ignore[misc]
    finally:
        stop.set()
        for thread in others:
            thread.join()
        for engine in writers:
            engine.dispose()
        await db.dispose()
    page = 4096 + 24  # a WAL frame: its page and header
    assert largest <= (checkpoint.WAL_BACKSTOP_PAGES + 1000) * page, largest
    assert db.checkpointer is None
    assert _rows(path) == 12000


def _run_all(jobs: list[Callable[[], None]]) -> None:
    threads = [threading.Thread(target=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


async def test_dispose_leaves_the_wal_checkpointed_and_the_thread_stopped(tmp_path: Path) -> None:
    """Another connection keeps the file open (so no last close folds the WAL in): disposing the
    last `Database` of the process still leaves the WAL empty, and its thread gone; two
    `Database`s on one file share one thread (main: the WAL kept the commits)."""
    path = tmp_path / "shutdown.db"
    _made(path).dispose()
    threads = _checkpointer_threads()
    with sqlite_reader(path) as reader:
        reader.execute("SELECT count(*) FROM t").fetchone()  # it has the WAL open
        first, second = Database(_url(path)), Database(_url(path))
        assert first.checkpointer is second.checkpointer
        assert _checkpointer_threads() == threads + 1
        engine = create_sqlite_sync_engine(_url(path), pool_size=1)
        _write(engine, 20)
        engine.dispose()
        await first.dispose()
        assert _wal_bytes(path) > 0, "the WAL is checkpointed by the last holder, not the first"
        await second.dispose()
        assert _wal_bytes(path) == 0
        assert _checkpointer_threads() == threads


WRITER = """
import asyncio, sys
from sqlalchemy import text
from opscraft.db.engine import Database, create_sqlite_sync_engine

async def main(url):
    db = Database(url)
    engine = create_sqlite_sync_engine(url, pool_size=1)
    for _ in range(3000):
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": "y" * 3000})
    engine.dispose()
    await db.dispose()

asyncio.run(main(sys.argv[1]))
"""


async def test_two_processes_on_one_file_each_with_its_checkpointer(tmp_path: Path) -> None:
    """This process and another write 3,000 commits each at once, each with its checkpointer:
    every row is there, the file is sound, and the WAL is left empty."""
    path = tmp_path / "shared.db"
    engine = _made(path)
    db = Database(_url(path))
    other = subprocess.Popen([sys.executable, "-c", WRITER, _url(path)], cwd=Path(__file__).parent.parent)
    try:
        _write(engine, 3000)
        assert other.wait(timeout=120) == 0
    finally:
        if other.poll() is None:
            other.kill()
        engine.dispose()
        await db.dispose()
    with sqlite_reader(path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (6000,)
    assert _wal_bytes(path) == 0
