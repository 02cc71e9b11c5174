"""Two processes refreshing the dashboard's tally at the same moment (every worker and web process
runs the history upkeep, and `docker compose up` starts them together): neither fails."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import delete, select

from opscraft import runtime
from opscraft.db.models import ExecutionTally
from opscraft.db.models.executions import ExecutionStatus
from opscraft.db.types import utcnow
from opscraft.services import execution_counts
from tests.history import seeding
from tests.waiting import until

pytestmark = pytest.mark.usefixtures("rt")

_WAITING_ON_A_LOCK = text(
    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
    "AND wait_event_type = 'Lock' AND query LIKE '%execution_tallies%'"
)


@pytest.mark.parametrize("backend", [pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True)
async def test_a_refresh_racing_another_process_keeps_the_other_tally() -> None:
    db = runtime.current().db
    script_id = await seeding.script()
    for i in range(3):
        await seeding.execution(script_id, utcnow() - timedelta(hours=i + 1), status=ExecutionStatus.failed)
    upto = await execution_counts.refresh_tally(db)  # a stored tally, which both replace
    async with db.session() as s:
        stored = {t.status: (t.count, t.upto_id) for t in (await s.exec(select(ExecutionTally))).all()}
    assert stored["failed"][0] > 0 and {u for _, u in stored.values()} == {upto}
    theirs = utcnow() - timedelta(minutes=1)  # tells the other process's rows from a new refresh's
    async with db.session() as other:  # another process, between its delete and its commit
        await other.exec(delete(ExecutionTally))
        for status, (count, watermark) in stored.items():
            other.add(ExecutionTally(status=status, count=count, upto_id=watermark, computed_at=theirs))
        await other.flush()
        racing = asyncio.create_task(execution_counts.refresh_tally(db))

        async def blocked() -> bool:
            async with db.engine.connect() as conn:
                return bool((await conn.execute(_WAITING_ON_A_LOCK)).scalar())

        await until(blocked, "the refresh to wait for the other process's uncommitted tally")
        await other.commit()
    assert await racing == upto, "the other process's tally is as fresh: this refresh ends without an error"
    async with db.session() as s:
        tally = (await s.exec(select(ExecutionTally))).all()
    rows = {t.status: (t.count, t.upto_id, t.computed_at) for t in tally}
    assert rows == {status: (count, watermark, theirs) for status, (count, watermark) in stored.items()}
