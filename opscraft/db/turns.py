"""Read-then-write decisions that concurrent requests must take in turn, on both databases.

PostgreSQL: `SELECT ... FOR UPDATE` locks the rows read, so a second request waits for the first
one's commit. SQLite ignores `FOR UPDATE`, and pysqlite begins a transaction only at the first
write: two requests could both read, decide on the same old row, and both write. There the
caller first takes the database's one write turn (`db.write_gate`, and SQLite's own write lock,
which a write statement takes even when it matches no row), so its reads see every committed
change and no other writer comes in between until its commit or rollback.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import SQLModel, col, update
from sqlmodel.ext.asyncio.session import AsyncSession


async def take_write_turn(session: AsyncSession, table: type[SQLModel], *where: Any) -> None:
    """On SQLite, take the write turn before reading the rows of `table` (a model with an `id`
    column) matching `where` (SQLAlchemy conditions) to decide on them: a no-op UPDATE of those
    rows. Nothing on PostgreSQL, where the caller reads them `FOR UPDATE` (with
    `populate_existing`, so rows the session already holds are read again after the wait)."""
    if session.bind is not None and session.bind.dialect.name == "sqlite":
        ident = col(table.id)  # type: ignore[attr-defined]
        touch = update(table).where(*where).values({ident: ident})
        await session.exec(touch.execution_options(synchronize_session=False))
