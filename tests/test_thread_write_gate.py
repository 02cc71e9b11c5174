"""This process's synchronous SQLite engines write in turns, in arrival order
(opscraft/db/thread_write_gate.py).

Real SQLite files behind the real engine factory (`create_sqlite_sync_engine`, which the
execution engine's store and the group commit of submissions use): a writer on any of them waits
for the one before it to commit, in arrival order, without SQLite's polling busy handler; readers
never wait; a failed or rolled-back writer gives its turn back; a writer that waits past the
timeout gets SQLite's "database is locked", which counts as the database being busy. (The gate is
SQLite's: PostgreSQL has row locks and no single write lock, and is not gated.)
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from opscraft.db import thread_write_gate
from opscraft.db.engine import create_sqlite_sync_engine, is_busy

WAIT_SECONDS = 30


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[tuple[Engine, Engine, thread_write_gate.ThreadWriteGate]]:
    """Two engines on one new file (as the store's and the group commit's are), and its gate."""
    path = tmp_path / "gate.db"
    url = f"sqlite+aiosqlite:///{path}"
    first = create_sqlite_sync_engine(url, pool_size=4)
    second = create_sqlite_sync_engine(url, pool_size=4)
    with first.begin() as conn:
        conn.execute(text("CREATE TABLE t (n INTEGER)"))
    gate = thread_write_gate.for_file(os.path.abspath(path), WAIT_SECONDS)
    assert not gate.held, "the table's creation gave its turn back"
    yield first, second, gate
    first.dispose()
    second.dispose()


def test_writers_of_two_engines_take_turns_in_arrival_order_and_readers_do_not_wait(
    engines: tuple[Engine, Engine, thread_write_gate.ThreadWriteGate],
) -> None:
    first, second, gate = engines
    done: list[int] = []
    errors: list[BaseException] = []

    def write(engine: Engine, n: int) -> None:
        try:
            with engine.begin() as conn:
                conn.execute(text("INSERT INTO t VALUES (:n)"), {"n": n})
                done.append(n)
        except BaseException as exc:  # reported by the test's thread
            errors.append(exc)

    writers = []
    with first.begin() as holder:
        holder.execute(text("INSERT INTO t VALUES (0)"))
        assert gate.held
        for n in range(1, 6):  # arrival order 1..5, alternating engines: each queued before the next
            writer = threading.Thread(target=write, args=(second if n % 2 else first, n))
            writer.start()
            writers.append(writer)
            wait_until(lambda n=n: gate.waiting == n, f"writer {n} to queue")  # type: ignore[misc]
        with second.connect() as reader:  # a read does not queue behind the writers
            assert reader.execute(text("SELECT count(*) FROM t")).scalar() == 0
        assert done == [], "no writer may start while the first one holds its turn"
    for writer in writers:
        writer.join(WAIT_SECONDS)
    assert errors == []
    assert done == [1, 2, 3, 4, 5], "turns are given in arrival order"
    assert not gate.held and gate.waiting == 0
    with first.connect() as reader:
        assert reader.execute(text("SELECT count(*) FROM t")).scalar() == 6


def test_a_rolled_back_or_failed_writer_gives_its_turn_back(
    engines: tuple[Engine, Engine, thread_write_gate.ThreadWriteGate],
) -> None:
    first, second, gate = engines
    with pytest.raises(OperationalError), first.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (1)"))
        conn.execute(text("INSERT INTO missing VALUES (1)"))
    assert not gate.held
    with second.connect() as conn:
        conn.execute(text("INSERT INTO t VALUES (2)"))
        assert gate.held
        conn.rollback()
    assert not gate.held
    with second.begin() as conn:  # the turn is free: this write does not wait
        conn.execute(text("INSERT INTO t VALUES (3)"))
    with first.connect() as reader:
        assert reader.execute(text("SELECT n FROM t")).scalars().all() == [3]


def test_a_writer_waiting_past_the_timeout_is_told_the_database_is_busy(
    engines: tuple[Engine, Engine, thread_write_gate.ThreadWriteGate],
) -> None:
    first, second, gate = engines
    gate.timeout = 0.2
    with first.begin() as holder:
        holder.execute(text("INSERT INTO t VALUES (1)"))
        started = time.monotonic()
        with pytest.raises(OperationalError) as raised, second.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (2)"))
        assert time.monotonic() - started < 5, "the gate's timeout, not SQLite's 10 s busy timeout"
        assert is_busy(raised.value), "what SQLite says when its busy timeout runs out"
        assert gate.waiting == 0, "the writer that gave up left the queue"
    assert not gate.held
    with second.begin() as conn:
        conn.execute(text("INSERT INTO t VALUES (3)"))
    with first.connect() as reader:
        assert reader.execute(text("SELECT n FROM t ORDER BY n")).scalars().all() == [1, 3]


def test_one_gate_per_file() -> None:
    a = thread_write_gate.for_file("/nonexistent/one.db", 1)
    assert thread_write_gate.for_file("/nonexistent/one.db", 5) is a
    assert thread_write_gate.for_file("/nonexistent/two.db", 1) is not a
