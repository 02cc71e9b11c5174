"""SQLite's WAL checkpoints on a thread of their own, off the runs' path (issue 15).

In WAL mode a commit appends its pages to the `-wal` file; a *checkpoint* copies them back into
the database file, with an `fdatasync` of the WAL and one of the database file. SQLite's default
(`wal_autocheckpoint`, 1,000 pages) runs that checkpoint inside the commit that takes the WAL past
the mark, in the committing connection: here the group commit's thread (a submission) or the
finisher's (a run's end). Measured in session 51 (docs/benchmarks.md, "Session 51: sequential
runs"): 13 syncs in 120 sequential runs, 196 ms of them, single syncs of 17-67 ms on a busy disk,
each on one run's path.

Here, every connection OpsCraft opens on a SQLite file (`db.engine`) checkpoints only past
`WAL_BACKSTOP_PAGES` (a bound on the WAL should no checkpointer run), and its engine counts its
transactions (`count_transactions`); each process with a `Database` on the file holds a
`Checkpointer` thread (`hold`, one per file and process however many `Database`s share it) that
runs `PRAGMA wal_checkpoint(PASSIVE)` on a connection of its own every
`TRANSACTIONS_PER_CHECKPOINT` transactions of this process, and once more when the WAL file has
not been written for `QUIET_SECONDS` (the database file current; a WAL file past
`WAL_KEEP_BYTES` truncated then, by `wal_checkpoint(TRUNCATE)`). PASSIVE waits for no reader
or writer ("Checkpoint as many frames as possible without waiting",
sqlite.org/c3ref/wal_checkpoint_v2.html); the TRUNCATE is run with no busy timeout, so
a reader or writer met then makes it a PASSIVE one, and nobody waits on it for long. A WAL that
readers kept from starting again (`WAL_RESTART_PAGES` still in it after a PASSIVE) gets a
RESTART, which holds writers back for up to `RESTART_WAIT_MS`: the bound under a steady load
(tests/test_db_checkpoint.py). The thread releases the GIL for the whole checkpoint (the stdlib
driver's statements do).

Several processes on one file (the web process and `opscraft worker`s on SQLite): SQLite lets one
checkpoint run at a time (the others answer "busy" and are retried at their next mark); a
checkpoint copies every process's frames, so each process's thread bounds the WAL by its own
transactions and the others' checkpointers by theirs; a WAL left by another process (one
killed) is checkpointed once quiet. On the last release (`Database.dispose`) the
thread stops after one last TRUNCATE (the WAL left empty when no one else is on the file).
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, event

log = logging.getLogger(__name__)

# A connection's own checkpoint runs only past this many WAL pages (40 MiB at 4 KiB pages):
# never while a `Checkpointer` keeps up (`TRANSACTIONS_PER_CHECKPOINT`), a bound when none runs
# (a process with engines but no `Database`, a checkpointer that failed).
WAL_BACKSTOP_PAGES = 10_000
# Transactions of this process between two checkpoints: a commit on the runs' path (the
# submission's group, the run's end) writes 1-3 pages, so about SQLite's own 1,000 pages.
TRANSACTIONS_PER_CHECKPOINT = 500
# How often the thread looks at the count and the WAL file (seconds).
POLL_SECONDS = 0.25
# The WAL file unwritten for this long (seconds, by any process): it is checkpointed whole, and
# truncated when longer than WAL_KEEP_BYTES (a burst's). One of the usual length is kept: the
# next commits write over its blocks, where a truncated one has the runs' commits grow the file
# again (ext4 allocates and journals the new size on the committing thread).
QUIET_SECONDS = 2.0
WAL_KEEP_BYTES = 8 * 1024 * 1024
# A WAL still this long after a PASSIVE checkpoint (readers kept it from being started again
# from its beginning: "checkpoint starvation", sqlite.org/wal.html): a RESTART, which holds new
# writers back while it waits up to RESTART_WAIT_MS for the readers, so the next commit starts
# the WAL again.
WAL_RESTART_PAGES = 4_000
RESTART_WAIT_MS = 200


def _wal_state(path: str) -> tuple[int, int] | None:
    """The size and modification time (ns) of the file's WAL, None when it has none: any
    process's write changes them; a read does not."""
    try:
        stat = os.stat(f"{path}-wal")
    except OSError:
        return None
    return stat.st_size, stat.st_mtime_ns


@dataclass(eq=False)
class Checkpointer:
    """The checkpoints of one SQLite file in this process (see the module docstring).

    `transactions` counts this process's connections to the file given back to their pools
    (`count_transactions` adds to it, from any thread: a lost increment only moves a checkpoint
    by one); the thread starts with the first `hold` and stops with the last `release`."""

    path: str
    transactions: int = 0
    holders: int = 0
    _stop: threading.Event | None = None
    _thread: threading.Thread | None = None

    def returned(self, *_args: object) -> None:
        """The pool's `checkin` event: one more transaction on the file (no wake-up, no lock)."""
        self.transactions += 1

    def _run(self, stop: threading.Event) -> None:
        connection: list[sqlite3.Connection] = []  # opened at the first checkpoint
        done = self.transactions  # at the last checkpoint
        wal, quiet = _wal_state(self.path), 0.0  # the WAL at the last look; seconds unchanged
        settled = None  # the WAL when it was last checkpointed for being quiet
        while not stop.wait(POLL_SECONDS):
            now, looked = self.transactions, _wal_state(self.path)
            quiet, wal = (quiet + POLL_SECONDS if looked == wal else 0.0), looked
            if now - done >= TRANSACTIONS_PER_CHECKPOINT:
                done = now
                passive = self._checkpoint(connection, "PASSIVE")
                if passive is not None and passive[1] >= WAL_RESTART_PAGES:
                    self._checkpoint(connection, "RESTART")
            elif wal is not None and wal[0] > 0 and quiet >= QUIET_SECONDS and wal != settled:
                done, settled = now, wal
                self._checkpoint(connection, "TRUNCATE" if wal[0] > WAL_KEEP_BYTES else "PASSIVE")
        if (wal := _wal_state(self.path)) is not None and wal[0] > 0:
            self._checkpoint(connection, "TRUNCATE")
        for conn in connection:
            conn.close()

    def _checkpoint(self, connection: list[sqlite3.Connection], mode: str) -> tuple[int, int, int] | None:
        """Run `PRAGMA wal_checkpoint(mode)` on the thread's connection (opened into
        `connection` the first time, never creating the file) and return its row: (1 if it
        could not finish for a reader or writer else 0, pages in the WAL, pages of it copied).
        A RESTART waits up to `RESTART_WAIT_MS` for the readers and writer, the other modes not
        at all.

        An error (the file removed, a disk error) is logged and None returned: the WAL is left
        to the next checkpoint or the connections' backstop; it never reaches a run."""
        try:
            if not connection:
                uri = f"{Path(self.path).as_uri()}?mode=rw"
                connection.append(sqlite3.connect(uri, uri=True, timeout=0, isolation_level=None))
            conn = connection[0]
            if mode == "RESTART":
                conn.execute(f"PRAGMA busy_timeout={RESTART_WAIT_MS}")
            try:
                row = conn.execute(f"PRAGMA wal_checkpoint({mode})").fetchone()
            finally:
                if mode == "RESTART":
                    conn.execute("PRAGMA busy_timeout=0")
        except sqlite3.Error as exc:
            log.warning("checkpoint of %s failed: %s", self.path, exc)
            return None
        return row[0], row[1], row[2]


_checkpointers: dict[str, Checkpointer] = {}
_lock = threading.Lock()


def _of(path: str) -> Checkpointer:
    with _lock:
        return _checkpointers.setdefault(os.path.abspath(path), Checkpointer(os.path.abspath(path)))


def count_transactions(engine: Engine, path: str) -> None:
    """Count `engine`'s connections given back to its pool (its transactions) for the
    checkpointer of the SQLite file at `path`. A pool event: an engine's `commit` event would
    cost ~30 us of CPU on every transaction of the engine (SQLAlchemy's path with events)."""
    event.listen(engine, "checkin", _of(path).returned)


def hold(path: str) -> Checkpointer:
    """Start (or share) the checkpointer thread of the SQLite file at `path`; `release` it once."""
    checkpointer = _of(path)
    with _lock:
        checkpointer.holders += 1
        if checkpointer.holders == 1:
            checkpointer._stop = threading.Event()
            checkpointer._thread = threading.Thread(
                target=checkpointer._run, args=(checkpointer._stop,), name="opscraft-checkpoint", daemon=True
            )
            checkpointer._thread.start()
    return checkpointer


def release(checkpointer: Checkpointer) -> None:
    """Give back one `hold`; the last one stops the thread after a last checkpoint, and waits for it."""
    with _lock:
        checkpointer.holders -= 1
        if checkpointer.holders or checkpointer._thread is None or checkpointer._stop is None:
            return
        thread, checkpointer._thread = checkpointer._thread, None
        checkpointer._stop.set()
    thread.join()
