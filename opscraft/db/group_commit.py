"""Group commit: concurrent inserts share one transaction (issue 15's burst of submissions).

A submission writes two rows (the execution and its audit event) and commits. Under a burst
(1,000 submissions over 32 connections) each of those was a transaction of its own: on SQLite a
turn of the write gate (`db.write_gate`), an INSERT, a second INSERT and a COMMIT, each a hop to
the connection's thread and back through a busy event loop, one transaction after the other; on
PostgreSQL a WAL flush per commit. `GroupInsert` makes it one transaction per *group*: the
inserts that arrive while a transaction is being written wait for it to end, and then go
together, as one multi-row INSERT per table (SQLAlchemy's "insertmanyvalues", ids returned in
the members' order) and one COMMIT. No member waits on purpose: a lone insert is written at once.

Rules each member keeps, as if it had committed alone:
- its rows are durable (committed) before `insert` returns; its parent row and dependent rows
  (its audit event) are in the same transaction, so neither exists without the other;
- a member that fails (a constraint, a failed check, text the database cannot store) fails
  alone: when a group's transaction fails, it is rolled back whole and every member is written
  again in a transaction of its own, so each gets its own outcome;
- "the database is busy" (`engine.is_busy`: no turn to write in time) is the whole group's
  outcome, as it would have been each member's: no member is retried into a longer wait;
- `after_commit(id)` runs right after the commit, in the committer, even if the caller was
  cancelled meanwhile (an execution row committed is always handed to the queue). On SQLite it
  runs on the group's thread, right after its COMMIT: the run reaches the queue without waiting
  for the busy event loop to take the group's result back (`after_commit` must be thread-safe,
  as the job queue's enqueue is).
- `take(conn, members)` (optional, shared by the members that pass it) runs in the group's
  transaction after its INSERTs: it may write more for some members (the in-process worker
  claims the new runs it can start at once, `execution.executor.Executor.take`) and returns,
  per member id it took, an action run after the COMMIT in place of that member's
  `after_commit`. A transaction that fails drops those actions with the rest.

Source of the technique: "group commit" (Gawlick, Kinkade, IMS Fast Path 1985; PostgreSQL's
`commit_delay`), here without any delay: the group is whatever queued during the previous write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache, partial
from typing import Any

from sqlalchemy import Connection, Engine, Insert, Table, insert
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel

log = logging.getLogger(__name__)

# Rows of one table per multi-row INSERT: well within SQLite's 32,766 bound parameters and
# PostgreSQL's 65,535 for tables of up to ~60 columns.
MAX_GROUP = 500

# The committer's asyncio task name (what it writes is counted apart from the requests' own work).
TASK_NAME = "opscraft-group-commit"

Dependents = Callable[[int], Sequence[SQLModel]]
"""`dependents(parent_id)`: the rows to insert with a parent, once its id is known."""

Take = Callable[[Connection, list[tuple[SQLModel, int]]], dict[int, Callable[[], None]]]
"""`take(conn, [(row, id), ...])`, in the group's transaction: {id: its action after COMMIT}."""


def _no_dependents(_parent_id: int) -> Sequence[SQLModel]:
    return ()


@dataclass(eq=False)
class _Member:
    row: SQLModel
    dependents: Dependents
    after_commit: Callable[[int], None] | None
    done: asyncio.Future[int]
    take: Take | None = None
    handed: bool = False  # after_commit (or what `take` returned) has run


def _table(row: SQLModel) -> Table:
    return row.__table__  # type: ignore[attr-defined, no-any-return]


@cache
def _columns(table: Table) -> tuple[tuple[str, bool], ...]:
    """(name, whether part of the primary key) of each of `table`'s columns."""
    return tuple((column.name, column.primary_key) for column in table.columns)


# Statements are built once per table (issue 15: building one costs more than running it).
@cache
def _insert_returning_ids(table: Table, sqlite: bool) -> Insert:
    # SQLAlchemy can only keep RETURNING in the rows' order on SQLite by sending them one
    # statement each. SQLite gives a new row a rowid one above the table's largest ("ROWID
    # and the INTEGER PRIMARY KEY", sqlite.org/autoinc.html), and one INSERT adds its rows
    # in VALUES order under the write lock: the ids, ascending, are the rows' in order.
    return insert(table).returning(table.c.id, sort_by_parameter_order=not sqlite)


@cache
def _insert(table: Table) -> Insert:
    return insert(table)


def _values(row: SQLModel) -> dict[str, Any]:
    """The row's column values for a Core INSERT; an unset primary key is left to the database."""
    values = {}
    for name, primary in _columns(_table(row)):
        value = getattr(row, name)
        if not (primary and value is None):
            values[name] = value
    return values


class GroupInsert:
    """Inserts of one database, committed in groups (see the module docstring).

    `engine`: the async engine; with `sqlite_engine` (a synchronous engine on the same SQLite
    file), each group's transaction runs on a thread of its own instead, from BEGIN to COMMIT
    without a hop through the event loop: SQLite's write lock is held for the statements' time
    only, not across a busy loop's rounds, so the workers' claims and finishes (the same lock,
    `execution.store`) are not starved while a burst of submissions is written.
    `checks`: callables run on every row (parent and dependents) before it is written; one that
    raises fails that member only (`services.storable` installs its unstorable-text check).
    `is_busy(exc)`: whether an error is the database being too busy (the group's outcome).
    `groups` and `members` count committed transactions and the members in them.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        is_busy: Callable[[BaseException], bool],
        sqlite_engine: Engine | None = None,
    ) -> None:
        self._engine = engine
        self._sqlite = sqlite_engine
        self._thread = ThreadPoolExecutor(1, TASK_NAME) if sqlite_engine is not None else None
        self._is_busy = is_busy
        self.checks: list[Callable[[SQLModel], None]] = []
        self._pending: list[_Member] = []
        self._committer: asyncio.Task[None] | None = None
        self.groups = 0
        self.members = 0

    def close(self) -> None:
        """Release the SQLite thread and its connection (after the last insert)."""
        if self._thread is not None:
            self._thread.shutdown()
        if self._sqlite is not None:
            self._sqlite.dispose()

    async def insert(
        self,
        row: SQLModel,
        dependents: Dependents = _no_dependents,
        after_commit: Callable[[int], None] | None = None,
        take: Take | None = None,
    ) -> int:
        """Insert `row` (a table model whose primary key `id` is unset) and `dependents(id)`,
        commit, set `row.id` and return it; then `after_commit(id)` has run, or the action
        `take` returned for it (see the module docstring).

        Raises what writing this member alone would raise (`IntegrityError`, a check's error),
        or the group's busy error (`WriteQueueTimeout`, a pool timeout, SQLite's lock)."""
        for check in self.checks:
            check(row)
        member = _Member(row, dependents, after_commit, asyncio.get_running_loop().create_future(), take)
        self._pending.append(member)
        if self._committer is None:
            self._committer = asyncio.get_running_loop().create_task(self._commit_all(), name=TASK_NAME)
        return await member.done

    async def _commit_all(self) -> None:
        """Write what is pending, group after group, until nothing is."""
        batch: list[_Member] = []
        try:
            while self._pending:
                batch, self._pending = self._pending[:MAX_GROUP], self._pending[MAX_GROUP:]
                batch = [m for m in batch if not m.done.cancelled()]  # gone before its turn: no row
                if batch:
                    await self._write(batch)
        except BaseException as exc:  # cancelled (shutdown) or a bug: nobody may wait forever
            for member in [*batch, *self._pending]:
                if not member.done.done():
                    member.done.set_exception(
                        exc if isinstance(exc, Exception) else RuntimeError("group commit stopped")
                    )
            self._pending = []
            raise
        finally:
            self._committer = None

    async def _write(self, batch: list[_Member]) -> None:
        try:
            ids, taken = await self._transaction(batch)
        except Exception as exc:
            if len(batch) == 1 or self._is_busy(exc):
                for member in batch:
                    if not member.done.done():
                        member.done.set_exception(exc)
                return
            log.debug("a group of %d inserts failed (%s); writing each alone", len(batch), exc)
            for member in batch:
                await self._write([member])
            return
        self.groups += 1
        self.members += len(batch)
        for member, new_id in zip(batch, ids, strict=True):
            member.row.id = new_id  # type: ignore[attr-defined]
            _hand_over(member, new_id, taken.get(new_id))
            if not member.done.done():
                member.done.set_result(new_id)

    async def _transaction(self, batch: list[_Member]) -> tuple[list[int], dict[int, Callable[[], None]]]:
        """One transaction for `batch` (see `_write_group`): on the SQLite thread, or on the
        async engine's connection (PostgreSQL)."""
        if self._thread is not None:
            return await asyncio.get_running_loop().run_in_executor(self._thread, self._on_thread, batch)
        async with self._engine.begin() as conn:
            return await conn.run_sync(_write_group, batch, self.checks)

    def _on_thread(self, batch: list[_Member]) -> tuple[list[int], dict[int, Callable[[], None]]]:
        assert self._sqlite is not None
        with self._sqlite.begin() as conn:
            ids, taken = _write_group(conn, batch, self.checks)
        for member, new_id in zip(batch, ids, strict=True):  # committed
            _hand_over(member, new_id, taken.get(new_id))
        return ids, taken


def _hand_over(member: _Member, new_id: int, taken: Callable[[], None] | None) -> None:
    """Run a committed member's action once: what `take` returned for it, else its
    `after_commit` (a failure is logged: the row stays)."""
    action = taken or (partial(member.after_commit, new_id) if member.after_commit else None)
    if action is None or member.handed:
        return
    member.handed = True
    try:
        action()
    except Exception:
        log.exception("after-commit action of row %s failed", new_id)


def _write_group(
    conn: Connection, batch: list[_Member], checks: list[Callable[[SQLModel], None]]
) -> tuple[list[int], dict[int, Callable[[], None]]]:
    """In the caller's transaction: the parents per table (ids returned in the members' order),
    then every member's dependents per table, then each `take` over its members; returns the
    members' ids and what the takes returned."""
    by_table: dict[Table, list[int]] = {}
    for index, member in enumerate(batch):
        by_table.setdefault(_table(member.row), []).append(index)
    ids = [0] * len(batch)
    sqlite = conn.dialect.name == "sqlite"
    for table, indexes in by_table.items():
        statement = _insert_returning_ids(table, sqlite)
        returned = conn.execute(statement, [_values(batch[i].row) for i in indexes]).scalars().all()
        for index, new_id in zip(indexes, sorted(returned) if sqlite else returned, strict=True):
            ids[index] = int(new_id)
    dependents: dict[Table, list[dict[str, Any]]] = {}
    for member, new_id in zip(batch, ids, strict=True):
        for row in member.dependents(new_id):
            for check in checks:
                check(row)
            dependents.setdefault(_table(row), []).append(_values(row))
    for table, rows in dependents.items():
        conn.execute(_insert(table), rows)
    takes: dict[Take, list[tuple[SQLModel, int]]] = {}
    for member, new_id in zip(batch, ids, strict=True):
        if member.take is not None:
            takes.setdefault(member.take, []).append((member.row, new_id))
    taken: dict[int, Callable[[], None]] = {}
    for take, members in takes.items():
        taken.update(take(conn, members))
    return ids, taken
