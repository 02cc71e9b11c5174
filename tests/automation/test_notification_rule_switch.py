"""`PUT /api/v1/notifications/rules/{id}`: a rule is switched off and on again (it was delete and
add), or changed, with the checks of a new rule (422 naming the field, 409 for a second rule
sending the same), audited; on SQLite and PostgreSQL."""

from __future__ import annotations

import httpx
from sqlmodel import col, select

from opscraft import runtime
from opscraft.db.models import AuditEvent
from opscraft.services import bodies, notifications
from tests.automation.test_notifications import channel, finished_run, script
from tests.conftest import LoggedIn

RULES = "/api/v1/notifications/rules"


async def _updates(rule_id: int) -> list[dict[str, object]]:
    """The details of the rule's `notification_rule.update` audit events, oldest first."""
    async with runtime.current().db.session() as s:
        rows = await s.exec(
            select(AuditEvent)
            .where(AuditEvent.action == "notification_rule.update", AuditEvent.target_id == str(rule_id))
            .order_by(col(AuditEvent.id))
        )
        return [dict(e.details) for e in rows.all()]


async def _queued(script_id: int) -> int:
    """How many deliveries a new failed run of `script_id` queues."""
    run = await finished_run(script_id, "failed")
    async with runtime.current().db.session() as session:
        return await notifications.enqueue_for_execution(session, run)


async def test_a_rule_is_switched_off_and_on_again(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, backend: str, no_automation_loops: None
) -> None:
    hook = await channel(client, admin, name="hook", kind="webhook", config={"url": "http://127.0.0.1:9/h"})
    deploy = await script(client, admin)
    body = {"channel_id": hook["id"], "events": ["failure"], "script_id": deploy}
    r = await client.post(RULES, json=body, headers=admin.headers)
    assert r.status_code == 201, r.text
    rule_id = r.json()["id"]
    url = f"{RULES}/{rule_id}"

    # RBAC as for creating a rule: admins only.
    assert (await client.put(url, json={"enabled": False}, headers=operator.headers)).status_code == 403

    off = await client.put(url, json={"enabled": False}, headers=admin.headers)
    assert off.status_code == 200, off.text
    assert {k: off.json()[k] for k in ("enabled", "events", "script_id", "channel_id")} == {
        "enabled": False,
        "events": ["failure"],
        "script_id": deploy,
        "channel_id": hook["id"],
    }
    assert await _queued(deploy) == 0, "a disabled rule queues nothing"
    on = await client.put(url, json={"enabled": True}, headers=admin.headers)
    assert on.status_code == 200 and on.json()["enabled"] is True, on.text
    assert await _queued(deploy) == 1

    # A body that changes nothing writes nothing and is not audited.
    assert (await client.put(url, json={}, headers=admin.headers)).status_code == 200
    again = {"channel_id": hook["id"], "script_id": deploy, "events": ["failure"], "enabled": True}
    assert (await client.put(url, json=again, headers=admin.headers)).status_code == 200
    assert [d["enabled"] for d in await _updates(rule_id)] == [False, True]
    listed = (await client.get(RULES, headers=admin.headers)).json()["items"]
    assert [(x["id"], x["enabled"]) for x in listed] == [(rule_id, True)]


async def test_a_changed_rule_is_checked_as_a_new_one(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str
) -> None:
    hook = await channel(client, admin, name="hook", kind="webhook", config={"url": "http://127.0.0.1:9/h"})
    first = await client.post(
        RULES, json={"channel_id": hook["id"], "events": ["failure"]}, headers=admin.headers
    )
    second = await client.post(
        RULES, json={"channel_id": hook["id"], "events": ["success"]}, headers=admin.headers
    )
    assert first.status_code == second.status_code == 201, (first.text, second.text)
    url = f"{RULES}/{second.json()['id']}"

    # Its events made the same as the first rule's: the create's 409, naming `events`.
    taken = await client.put(url, json={"events": ["failure"]}, headers=admin.headers)
    assert taken.status_code == 409, taken.text
    assert taken.json()["errors"][0]["field"] == "events"
    assert taken.json()["detail"].startswith(f"notification rule {first.json()['id']} already sends")
    # Its own events again, in another order: no clash with itself.
    both = await client.put(url, json={"events": ["recovery", "success", "success"]}, headers=admin.headers)
    assert both.status_code == 200 and both.json()["events"] == ["success", "recovery"], both.text

    for change, field in (
        ({"channel_id": 999_999}, "channel_id"),
        ({"script_id": 999_999}, "script_id"),
        ({"events": ["nope"]}, "events"),
        ({"events": []}, "events"),
        ({"enabled": None}, "enabled"),
        ({"enabled": "false"}, "enabled"),
        ({"created_at": "2030-01-01T00:00:00Z"}, "created_at"),
    ):
        r = await client.put(url, json=change, headers=admin.headers)
        assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == [field], (change, r.text)
    r = await client.put(url, json={"enabled": None}, headers=admin.headers)
    assert r.json()["errors"][0]["message"] == bodies.NULL_BOOL_MESSAGE
    stored = (await client.get(RULES, headers=admin.headers)).json()["items"][1]
    assert (stored["events"], stored["enabled"]) == (["success", "recovery"], True)

    missing = await client.put(f"{RULES}/999999", json={"enabled": False}, headers=admin.headers)
    assert missing.status_code == 404, missing.text


async def test_a_rule_whose_script_was_deleted_can_still_be_switched_off(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str, no_automation_loops: None
) -> None:
    """The PUT checked the kept script again: a rule of a deleted script answered 422 "no script
    with id N" to `{"enabled": false}`, so it could not be switched off (only deleted). A rule
    moved to a deleted script is still refused."""
    hook = await channel(client, admin, name="hook", kind="webhook", config={"url": "http://127.0.0.1:9/h"})
    gone, kept = await script(client, admin, "gone"), await script(client, admin, "kept")
    body = {"channel_id": hook["id"], "events": ["failure"], "script_id": kept}
    r = await client.post(RULES, json=body, headers=admin.headers)
    assert r.status_code == 201, r.text
    url = f"{RULES}/{r.json()['id']}"
    r = await client.post(RULES, json={**body, "script_id": gone}, headers=admin.headers)
    assert r.status_code == 201, r.text
    orphan = f"{RULES}/{r.json()['id']}"
    assert (await client.delete(f"/api/v1/scripts/{gone}", headers=admin.headers)).status_code == 204

    off = await client.put(orphan, json={"enabled": False}, headers=admin.headers)
    assert off.status_code == 200 and off.json()["enabled"] is False, off.text
    moved = await client.put(url, json={"script_id": gone}, headers=admin.headers)
    assert moved.status_code == 422, moved.text
    assert moved.json()["errors"] == [{"field": "script_id", "message": f"no script with id {gone}"}]
