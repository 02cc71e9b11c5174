"""Rows whose time columns hold text or a number that is no time (SQLite holds any: an older
version's value, a manual edit's `yesterday`) list and read, the time shown as the epoch with
`stored_problem` saying what was stored (db/stored_shapes.py `Moment`, every `UTCDateTime`
column). PostgreSQL's `timestamp` refuses such a value when it is written."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from opscraft import runtime
from opscraft.services import schedules
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, start, wait_for

NO_TIMES = ["yesterday", "2026-13-45", 1700000000]


async def _store(backend: str, statement: str, value: Any) -> bool:
    """Run `statement` with `:v` bound to `value`, as a manual edit would: True when stored (SQLite);
    on PostgreSQL, whose timestamp type refuses it (checked), False."""
    async with runtime.current().db.session() as session:
        if backend == "postgresql":
            with pytest.raises(DBAPIError):
                await session.exec(text(statement), params={"v": value})  # type: ignore[call-overload]
            return False
        await session.exec(text(statement), params={"v": value})  # type: ignore[call-overload]
        await session.commit()
    return True


@pytest.mark.parametrize("stored", NO_TIMES)
async def test_a_run_and_a_script_whose_times_are_no_times_list_and_read_saying_so(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn, backend: str, stored: Any
) -> None:
    """`UPDATE executions SET queued_at = 'yesterday'` made the history, the run's page and the
    API a 500 (SQLite's DATETIME reader raised), as any time column of any row did. They read
    with the time as the epoch and `stored_problem` saying what was stored."""
    script_id = await make_script(client, admin, "echo hi\n")
    run = await start(client, admin, script_id, "local")
    await wait_for(client, admin, run["id"])
    if not await _store(backend, "UPDATE executions SET queued_at = :v, finished_at = :v", stored):
        return
    await _store(backend, "UPDATE scripts SET updated_at = :v", stored)
    for url in ["/api/v1/executions", f"/api/v1/executions/{run['id']}"]:
        r = await client.get(url, headers=admin.headers)
        assert r.status_code == 200, (url, r.text)
        shown = r.json()["items"][0] if "items" in r.json() else r.json()
        assert shown["queued_at"] == "1970-01-01T00:00:00Z", shown
        assert f"queued_at: stored as {stored!r}, not a time" in shown["stored_problem"], shown
        assert f"finished_at: stored as {stored!r}, not a time" in shown["stored_problem"], shown
    for url in ["/api/v1/scripts", f"/api/v1/scripts/{script_id}"]:
        r = await client.get(url, headers=viewer.headers)
        assert r.status_code == 200, (url, r.text)
        shown = r.json()["items"][0] if "items" in r.json() else r.json()
        assert shown["updated_at"] == "1970-01-01T00:00:00Z", shown
        said = f'updated_at: stored as {stored!r}, not a time, read as "1970-01-01T00:00:00Z"'
        assert said in shown["stored_problem"], shown


async def test_a_schedule_whose_next_fire_is_no_time_is_due_and_paused_saying_why(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str, no_automation_loops: None
) -> None:
    """`next_fire_at = 'yesterday'` sorted after every time: the schedule was never due, so it
    never fired and nothing said why. It reads as 1970, so it is due, and the scheduler pauses
    it saying what was stored (as for any stored value it cannot read); a save resumes it."""
    script_id = await make_script(client, admin, "echo hi\n")
    path = f"/api/v1/scripts/{script_id}/schedules"
    r = await client.post(path, json={"name": "n", "cron": "0 3 * * *"}, headers=admin.headers)
    assert r.status_code == 201, r.text
    own = f"{path}/{r.json()['id']}"
    if not await _store(backend, "UPDATE schedules SET next_fire_at = :v", "yesterday"):
        return
    assert await schedules.tick(runtime.current().db) == 0
    shown = (await client.get(own, headers=admin.headers)).json()
    assert shown["enabled"] is False, shown
    assert shown["paused_reason"].startswith("paused: next_fire_at: stored as 'yesterday', not a time"), shown
    r = await client.put(own, json={"cron": "0 4 * * *"}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["enabled"] is True and r.json()["paused_reason"] is None, r.text
