"""The history's queries at scale, on SQLite and PostgreSQL: each filter's page query uses its
index (EXPLAIN names it), the total is counted up to a cap, and the dashboard's counts from the
tally are exact."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import event, func
from sqlmodel import select

from opscraft import runtime
from opscraft.db.models import Execution
from opscraft.db.models.executions import ExecutionStatus
from opscraft.db.types import utcnow
from opscraft.services import execution_counts, executions, retention
from opscraft.services.actor import Actor
from tests.conftest import LoggedIn
from tests.history import seeding


@contextmanager
def captured() -> Iterator[list[tuple[str, Any]]]:
    """The SQL statements (with their parameters) run on the runtime's engine meanwhile."""
    engine = runtime.current().db.engine.sync_engine
    seen: list[tuple[str, Any]] = []

    def remember(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", remember)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", remember)


async def _plan(statement: str, parameters: Any) -> str:
    """The query plan of `statement`; on PostgreSQL with sequential scans priced out, so the plan
    says which index the query can use whatever the (tiny) test table's statistics."""
    async with runtime.current().db.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.exec_driver_sql("SET enable_seqscan = off")
            rows = await conn.exec_driver_sql("EXPLAIN " + statement, parameters)
        else:
            rows = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        plan = "\n".join(" ".join(str(v) for v in row) for row in rows.all())
        await conn.rollback()
    return plan


async def _plans_of(call: Callable[[], Awaitable[Any]], marker: str) -> list[str]:
    with captured() as seen:
        await call()
    plans = [await _plan(sql, params) for sql, params in seen if marker in sql]
    assert plans, f"no statement containing {marker!r} ran"
    return plans


@pytest.fixture
async def history(admin: LoggedIn) -> dict[str, int]:
    script_id = await seeding.script()
    now = utcnow()
    for i in range(30):
        await seeding.execution(
            script_id,
            now - timedelta(hours=i),
            status=ExecutionStatus.failed if i % 3 else ExecutionStatus.success,
            user_id=admin.id,
            trigger="schedule" if i % 2 else "api",
        )
    await seeding.fresh_statistics()
    return {"script_id": script_id, "user_id": admin.id}


@pytest.mark.parametrize(
    ("filters", "index"),
    [
        ({}, "ix_executions_queued_at"),
        ({"status": "failed"}, "ix_executions_status_queued"),
        ({"script_id": "script"}, "ix_executions_script_queued"),
        ({"user_id": "user"}, "ix_executions_user_queued"),
        ({"trigger": "schedule"}, "ix_executions_trigger_queued"),
        # Every seeded run is of one script: a planner may rightly prefer the status index here.
        (
            {"script_id": "script", "status": "failed"},
            "ix_executions_script_status_queued|ix_executions_status_queued",
        ),
    ],
)
async def test_each_history_filter_pages_through_its_index(
    admin: LoggedIn, history: dict[str, int], filters: dict[str, Any], index: str
) -> None:
    actor = await _actor(admin)
    resolved = {
        k: history.get(f"{v}_id", v) if k in ("script_id", "user_id") else v for k, v in filters.items()
    }
    async with runtime.current().db.session() as s:
        plans = await _plans_of(
            lambda: executions.list_executions(s, actor, **resolved, limit=25),
            "ORDER BY executions.queued_at DESC",
        )
    assert any(name in plans[0] for name in index.split("|")), plans[0]


async def test_dashboard_and_retention_queries_use_their_indexes(
    admin: LoggedIn, history: dict[str, int]
) -> None:
    actor = await _actor(admin)
    async with runtime.current().db.session() as s:
        daily = await _plans_of(lambda: executions.dashboard_stats(s, actor), "GROUP BY date")
    assert "ix_executions_finished_status" in daily[0], daily[0]
    kept = await _plans_of(lambda: retention._kept(runtime.current().db, 10), "output_removed_at IS NULL")
    assert "ix_executions_output_kept" in kept[0], kept[0]
    async with runtime.current().db.session() as s:
        users = await _plans_of(lambda: executions.triggering_users(s, actor), "users.username")
    assert "ix_executions_user_queued" in users[0], users[0]
    async with runtime.current().db.session() as s:
        counts = await _plans_of(lambda: execution_counts.status_counts(s), "executions.id >")
    assert "ix_executions_status_queued" not in counts[0], f"a pass over every run: {counts[0]}"


async def test_total_is_counted_up_to_the_cap(
    client: httpx.AsyncClient, viewer: LoggedIn, history: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    page = (await client.get("/api/v1/executions?limit=5", headers=viewer.headers)).json()
    assert (page["total"], page["total_capped"]) == (30, False)
    monkeypatch.setattr(execution_counts, "COUNT_CAP", 10)
    page = (await client.get("/api/v1/executions?limit=5", headers=viewer.headers)).json()
    assert (page["total"], page["total_capped"], len(page["items"])) == (10, True, 5)
    deep = (await client.get("/api/v1/executions?limit=5&skip=20", headers=viewer.headers)).json()
    assert (deep["total"], deep["total_capped"]) == (25, True), "a deep page counts just past itself"
    filtered = (await client.get("/api/v1/executions?status=success", headers=viewer.headers)).json()
    assert (filtered["total"], filtered["total_capped"]) == (10, False)
    by_trigger = (await client.get("/api/v1/executions?trigger=schedule", headers=viewer.headers)).json()
    assert {e["trigger"] for e in by_trigger["items"]} == {"schedule"}
    assert (by_trigger["total"], by_trigger["total_capped"]) == (15, False), "counted up to the page's end"
    r = await client.get("/api/v1/executions?trigger=cron", headers=viewer.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "trigger"


async def test_dashboard_counts_from_the_tally_stay_exact(
    client: httpx.AsyncClient, viewer: LoggedIn, history: dict[str, int]
) -> None:
    async def exact() -> dict[str, int]:
        async with runtime.current().db.session() as s:
            rows = await s.exec(select(Execution.status, func.count()).group_by(Execution.status))
            return {str(k): int(v) for k, v in rows.all()}

    async def shown() -> dict[str, int]:
        async with runtime.current().db.session() as s:
            counts = await execution_counts.status_counts(s)
            return {k: v for k, v in counts.items() if v}

    assert await shown() == await exact() == {"success": 10, "failed": 20}
    upto = await execution_counts.refresh_tally(runtime.current().db)
    assert upto > 0, "the seeded runs are older than SETTLE_SECONDS and all finished"
    await seeding.execution(history["script_id"], None)  # running, after the watermark
    await seeding.execution(history["script_id"], utcnow(), status=ExecutionStatus.timed_out)
    assert await shown() == await exact() == {"success": 10, "failed": 20, "running": 1, "timed_out": 1}
    await retention.run_once(runtime.current().db)  # nothing to do: settings are off
    dashboard = await client.get("/api/v1/executions?status=failed&limit=1", headers=viewer.headers)
    assert dashboard.json()["total"] == 20


async def _actor(user: LoggedIn) -> Actor:
    from opscraft.db.models import User

    async with runtime.current().db.session() as s:
        return Actor(await s.get(User, user.id))
