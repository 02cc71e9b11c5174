"""Read-then-write decisions that concurrent requests must take in turn, on both databases.

PostgreSQL: `SELECT ... FOR UPDATE` locks the rows read, so a second request waits for the first
one's commit. SQLite ignores `FOR UPDATE`, and pysqlite begins a transaction only at the first
write: two requests could both read, decide on the same old row, and both write. There the
caller first takes the database's one write turn (`db.write_gate`, and SQLite's own write lock,
which a write statement takes even when it matches no row), so its reads see every committed
change and no other writer comes in between until its commit or rollback.
"""

from __future__ import annotations

from typing import Any, TypeVar

from sqlmodel import SQLModel, col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

T = TypeVar("T", bound=SQLModel)


async def take_write_turn(session: AsyncSession, table: type[SQLModel], *where: Any) -> None:
    """On SQLite, take the write turn before reading the rows of `table` (a model with an `id`
    column) matching `where` (SQLAlchemy conditions) to decide on them: a no-op UPDATE of those
    rows. Nothing on PostgreSQL, where the caller reads them `FOR UPDATE` (with
    `populate_existing`, so rows the session already holds are read again after the wait)."""
    if session.bind is not None and session.bind.dialect.name == "sqlite":
        ident = col(table.id)  # type: ignore[attr-defined]
        touch = update(table).where(*where).values({ident: ident})
        await session.exec(touch.execution_options(synchronize_session=False))


async def read_held(session: AsyncSession, table: type[T], ident: int) -> T | None:
    """The row of `table` (a model with an `id` column) with id `ident`, or None, held until the
    transaction ends: no other transaction deletes or changes it meanwhile, while others may
    hold it too (rows that refer to it, saved at once). PostgreSQL reads it `FOR SHARE` (again
    after a wait, `populate_existing`); SQLite takes the write turn first (`take_write_turn`).
    Without it, a schedule, webhook or "then run" link saved while its script was being deleted
    was written after the deletion paused or disabled the ones it found: a link left enabled
    into a deleted script fired an error on every run of its source."""
    ident_column = col(table.id)  # type: ignore[attr-defined]
    await take_write_turn(session, table, ident_column == ident)
    held = select(table).where(ident_column == ident).with_for_update(read=True)
    return (await session.exec(held.execution_options(populate_existing=True))).first()
