"""`GET /api/v1/health`: its liveness and counts in one statement, the live workers judged
against the bound of the moment it is asked (issue 15: a health check cost 3-4.5 ms of server
CPU, three database round trips each built anew; docs/benchmarks.md, session 49)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import event, text

from opscraft import runtime
from opscraft.db import clock
from opscraft.db.models import RegisteredWorker


async def _health(client: httpx.AsyncClient) -> dict[str, object]:
    r = await client.get("/api/v1/health")
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_health_reads_the_database_once(client: httpx.AsyncClient, rt: runtime.Runtime) -> None:
    """One statement per health check: it shows the database answers and reads both counts (it
    was `SELECT 1` then the two counts, each its own round trip)."""
    await _health(client)
    statements: list[str] = []
    request_task = asyncio.current_task()  # the in-process client runs the app in this task

    def seen(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if asyncio.current_task() is request_task:  # not a background round's (schedules, counts)
            statements.append(statement)

    event.listen(rt.db.engine.sync_engine, "before_cursor_execute", seen)
    try:
        body = await _health(client)
    finally:
        event.remove(rt.db.engine.sync_engine, "before_cursor_execute", seen)
    assert (body["database"], body["workers"], body["queue"]) == ("connected", 1, 0)
    assert len(statements) == 1, statements


async def test_health_judges_workers_by_the_time_it_is_asked(
    client: httpx.AsyncClient, rt: runtime.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The statement is built once, its bound given per check: a worker heartbeating now counts,
    one silent longer than OPSCRAFT_WORKER_LOST_SECONDS or stopped does not, and once the clock
    has moved past every heartbeat none counts (a bound kept from the first check would still
    count them)."""
    lost = timedelta(seconds=rt.settings.worker_lost_seconds)
    now = clock.now()
    rows = [
        {"id": "fresh", "heartbeat_at": now, "stopped_at": None},
        {"id": "silent", "heartbeat_at": now - lost - timedelta(seconds=5), "stopped_at": None},
        {"id": "stopped", "heartbeat_at": now, "stopped_at": now},
    ]
    async with rt.db.session() as session:
        for row in rows:
            values = {"host_name": "h", "pid": 1, "runners": ["local"], "slots": 1, "started_at": now}
            session.add(RegisteredWorker(**values, **row))
        await session.commit()
    assert (await _health(client))["workers"] == 2  # this process's worker and `fresh`
    later = now + lost + timedelta(seconds=5)
    monkeypatch.setattr(clock, "now", lambda: later)
    assert (await _health(client))["workers"] == 0


@pytest.mark.parametrize("backend", ["sqlite"])
async def test_health_reads_a_heartbeat_that_is_no_time_as_lost(
    client: httpx.AsyncClient, rt: runtime.Runtime
) -> None:
    """A heartbeat stored as text that is no time (SQLite keeps what it is given) reads as the
    epoch (`UTCDateTime`): that worker is not alive, as the Workers list says."""
    async with rt.db.engine.begin() as conn:
        await conn.execute(
            text(
                "INSERT INTO workers (id, host_name, pid, runners, slots, started_at, heartbeat_at, lost)"
                " VALUES ('odd', 'h', 1, '[]', 1, 'yesterday', 'yesterday', 0)"
            )
        )
    assert (await _health(client))["workers"] == 1  # this process's worker only
