"""One schedule that cannot be fired never stops the others' round.

Field report (session 52): `_claim_batch` computed every due schedule's next fire time in one
loop, so a row whose stored values raised there (a next fire time of year 1, from a restored
backup or a hand edit: `OverflowError` converting it to the schedule's zone) failed the
scheduler's round for every schedule, every round. Such a row is paused instead, its reason on
the schedule (`paused_reason`) and in the audit (`schedule.paused`), and every other schedule
fires. A schedule left enabled on a deleted script (deleted by a version that did not pause its
schedules, or by hand) is paused with the words a delete pauses it with, instead of firing
`error` at every fire time. Each on SQLite and PostgreSQL (the `backend` behind `client`).
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
from sqlmodel import col, select, update

from opscraft import runtime
from opscraft.db.models import AuditEvent, Schedule, Script
from opscraft.db.types import utcnow
from opscraft.services import schedules
from tests.automation.test_schedules import add, due_now, fires, local_runner, script
from tests.conftest import LoggedIn


async def paused_events(schedule_id: int) -> list[str]:
    """The reasons of the `schedule.paused` audit events of `schedule_id`."""
    async with runtime.current().db.session() as session:
        events = await session.exec(
            select(AuditEvent).where(
                col(AuditEvent.action) == "schedule.paused", col(AuditEvent.target_id) == str(schedule_id)
            )
        )
        return [str(e.details["reason"]) for e in events.all()]


async def test_a_schedule_whose_fire_time_cannot_be_computed_is_paused_and_the_others_fire(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    await local_runner(client, admin)
    sid = await script(client, admin)
    broken = (await add(client, admin, sid, name="year-one", timezone="Asia/Tokyo")).json()["id"]
    kept = (await add(client, admin, sid, name="kept")).json()["id"]
    await due_now(kept)
    async with runtime.current().db.session() as session:
        await session.exec(
            update(Schedule)
            .where(col(Schedule.id) == broken)
            .values(next_fire_at=datetime(1, 1, 1, tzinfo=UTC))
        )
        await session.commit()
    db = runtime.current().db
    assert await schedules.tick(db) == 1, "the kept schedule fires"
    assert [f.outcome for f in await fires(kept)] == ["started"]
    assert await fires(broken) == []
    shown = (await client.get(f"/api/v1/scripts/{sid}/schedules/{broken}", headers=admin.headers)).json()
    assert shown["enabled"] is False, shown
    assert shown["paused_reason"].startswith("paused: its next fire time cannot be computed"), shown
    assert shown["paused_reason"].endswith("(save it to resume)"), shown
    assert len(await paused_events(broken)) == 1
    assert await schedules.tick(db) == 0, "paused: nothing more"
    r = await client.put(
        f"/api/v1/scripts/{sid}/schedules/{broken}", json={"name": "year-one"}, headers=admin.headers
    )
    assert r.status_code == 200 and r.json()["enabled"] and r.json()["paused_reason"] is None, r.text


async def test_a_schedule_left_enabled_on_a_deleted_script_is_paused_and_the_others_fire(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    await local_runner(client, admin)
    gone, sid = await script(client, admin), await script(client, admin)
    orphan = (await add(client, admin, gone)).json()["id"]
    kept = (await add(client, admin, sid)).json()["id"]
    await due_now(orphan)
    await due_now(kept)
    async with runtime.current().db.session() as session:  # deleted without pausing its schedules
        await session.exec(update(Script).where(col(Script.id) == gone).values(deleted_at=utcnow()))
        await session.commit()
    db = runtime.current().db
    assert await schedules.tick(db) == 1
    assert [f.outcome for f in await fires(kept)] == ["started"]
    assert await fires(orphan) == []
    async with db.session() as session:
        row = await session.get(Schedule, orphan)
        assert row is not None and not row.enabled and row.next_fire_at is None
        assert row.paused_reason == "paused: its script was deleted"
    assert await paused_events(orphan) == ["its script was deleted"]


async def test_a_schedule_of_an_archived_script_says_why_and_the_others_fire(
    client: httpx.AsyncClient, admin: LoggedIn, no_automation_loops: None
) -> None:
    """A script made `deprecated` under its schedule: each fire is `error` with the refusal's
    words on the schedule (the owner may make it active again: the schedule is not paused)."""
    await local_runner(client, admin)
    archived, sid = await script(client, admin), await script(client, admin)
    held = (await add(client, admin, archived)).json()["id"]
    kept = (await add(client, admin, sid)).json()["id"]
    r = await client.put(f"/api/v1/scripts/{archived}", json={"status": "deprecated"}, headers=admin.headers)
    assert r.status_code == 200, r.text
    await due_now(held)
    await due_now(kept)
    assert await schedules.tick(runtime.current().db) == 2
    assert [f.outcome for f in await fires(kept)] == ["started"]
    assert [f.outcome for f in await fires(held)] == ["error"]
    shown = (await client.get(f"/api/v1/scripts/{archived}/schedules/{held}", headers=admin.headers)).json()
    assert shown["enabled"] and shown["last_outcome"] == "error", shown
    assert "is deprecated: only active scripts can be executed" in shown["last_message"], shown
