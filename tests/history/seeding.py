"""Rows for the history tests: executions with stored output, written straight to the database."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError

from opscraft import runtime
from opscraft.db.models import Execution, ExecutionLog, Script
from opscraft.db.models.executions import ExecutionStatus
from opscraft.db.models.scripts import ScriptType


async def script() -> int:
    async with runtime.current().db.session() as s:
        row = Script(name="history", script_type=ScriptType.bash, content="true")
        s.add(row)
        await s.commit()
        assert row.id is not None
        return row.id


async def execution(
    script_id: int,
    finished_at: datetime | None,
    *,
    status: ExecutionStatus = ExecutionStatus.success,
    chunks: int = 2,
    chunk_bytes: int = 10,
    user_id: int | None = None,
    trigger: str = "api",
) -> int:
    """An execution queued and finished at `finished_at` (running when None) with `chunks` of
    output (stored, and what the script wrote: as a run under its output cap)."""
    async with runtime.current().db.session() as s:
        row = Execution(
            script_id=script_id,
            script_version=1,
            script_name="history",
            script_type="bash",
            status=status if finished_at else ExecutionStatus.running,
            output_bytes=chunks * chunk_bytes,
            output_stored_bytes=chunks * chunk_bytes,
            triggered_by=user_id,
            trigger=trigger,
            **({"queued_at": finished_at, "started_at": finished_at} if finished_at else {}),
            finished_at=finished_at,
        )
        s.add(row)
        await s.flush()
        assert row.id is not None
        for seq in range(1, chunks + 1):
            s.add(ExecutionLog(execution_id=row.id, seq=seq, stream="stdout", content="x" * chunk_bytes))
        await s.commit()
        return row.id


async def fresh_statistics() -> None:
    """Planner statistics and sizes as a fresh `executions` table has them, before a test reads
    a query plan. PostgreSQL: `VACUUM FULL` of the table (its indexes rebuilt: the rows earlier
    tests' emptying deleted, `conftest.empty_postgres`, left their indexes pages that made
    another index look cheaper), then `ANALYZE`, outside a transaction; SQLite: `ANALYZE`."""
    engine = runtime.current().db.engine
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await auto.exec_driver_sql("VACUUM FULL executions")
            await auto.exec_driver_sql("ANALYZE")
        else:
            await conn.exec_driver_sql("ANALYZE")
            await conn.commit()


async def stored_on_sqlite(statement: Any) -> bool:
    """Run `statement`, a write of a value only SQLite holds (text that is no time, a status none
    of the enum's), as a manual edit would: True once committed on SQLite; on PostgreSQL, whose
    types refuse the value (checked: DBAPIError), False."""
    async with runtime.current().db.session() as session:
        if session.bind.dialect.name == "postgresql":
            with pytest.raises(DBAPIError):
                await session.exec(statement)
            return False
        await session.exec(statement)
        await session.commit()
    return True
