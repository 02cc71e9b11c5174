"""Who may choose an Ansible run's run options (services/run_option_rights.py), on SQLite and
PostgreSQL: a script's `viewers_choose_run_options`, its audit and versions, a viewer's run, a
re-run, and a trigger's run. Runs are held for approval, so none of them runs a playbook."""

from __future__ import annotations

import time
from typing import Any

import httpx

from opscraft import runtime
from opscraft.db.models import User
from opscraft.services import executions
from opscraft.services.actor import Actor
from tests.conftest import LoggedIn

PLAYBOOK = "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=hi\n"
OPTIONS = {"limit": "web1", "tags": ["never", "wipe"], "check": True}
SETTING = "viewers_choose_run_options"


async def _held_script(client: httpx.AsyncClient, operator: LoggedIn, **fields: Any) -> dict[str, Any]:
    """An active Ansible script whose runs wait for an approval (so they never start)."""
    body = {"name": f"p-{time.monotonic_ns()}", "script_type": "ansible", "content": PLAYBOOK, **fields}
    r = await client.post("/api/v1/scripts", json={**body, "status": "active"}, headers=operator.headers)
    assert r.status_code == 201, r.text
    policy = {"required": 1, "expires_after_hours": 24}
    r2 = await client.put(f"/api/v1/scripts/{r.json()['id']}/approval", json=policy, headers=operator.headers)
    assert r2.is_success, r2.text
    return r.json()


async def _run(
    client: httpx.AsyncClient, who: LoggedIn, script_id: int, options: dict[str, Any] | None
) -> httpx.Response:
    body = {"script_id": script_id, "run_options": options}
    return await client.post("/api/v1/executions", json=body, headers=who.headers)


async def _switch(client: httpx.AsyncClient, operator: LoggedIn, script_id: int, allowed: bool) -> None:
    r = await client.put(f"/api/v1/scripts/{script_id}", json={SETTING: allowed}, headers=operator.headers)
    assert r.status_code == 200 and r.json()[SETTING] is allowed, r.text


async def _runs_of(client: httpx.AsyncClient, who: LoggedIn, script_id: int) -> int:
    r = await client.get("/api/v1/executions", params={"script_id": script_id}, headers=who.headers)
    assert r.status_code == 200, r.text
    return int(r.json()["total"])


async def test_viewers_choose_as_before_until_an_operator_switches_it_off_which_is_versioned_and_audited(
    client: httpx.AsyncClient, viewer: LoggedIn, operator: LoggedIn, admin: LoggedIn
) -> None:
    script = await _held_script(client, operator)
    sid = script["id"]
    assert script[SETTING] is True  # the default: as before the setting
    r = await _run(client, viewer, sid, OPTIONS)
    assert r.status_code == 202, r.text
    assert r.json()["run_options"] == OPTIONS and r.json()["status"] == "awaiting_approval"

    r = await client.put(f"/api/v1/scripts/{sid}", json={SETTING: False}, headers=viewer.headers)
    assert r.status_code == 403, r.text  # viewers cannot open it again themselves
    await _switch(client, operator, sid, False)
    r = await client.get(f"/api/v1/scripts/{sid}", headers=viewer.headers)
    assert r.json()[SETTING] is False and r.json()["current_version"] == 2
    r = await client.get(f"/api/v1/scripts/{sid}/versions/2", headers=operator.headers)
    assert r.json()["run_settings"][SETTING] is False
    r = await client.get(f"/api/v1/scripts/{sid}/versions/1", headers=operator.headers)
    assert r.json()["run_settings"][SETTING] is True
    r = await client.get(
        "/api/v1/audit",
        params={"target_type": "script", "target_id": str(sid), "action": "script.update"},
        headers=admin.headers,
    )
    (entry,) = r.json()["items"]
    assert entry["details"] == {"fields": [SETTING], "version": 2}, entry

    r = await client.put(f"/api/v1/scripts/{sid}", json={SETTING: None}, headers=operator.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == SETTING, r.text


async def test_switched_off_a_viewer_s_run_with_any_option_is_a_403_naming_run_options(
    client: httpx.AsyncClient, viewer: LoggedIn, operator: LoggedIn, admin: LoggedIn
) -> None:
    script = await _held_script(client, operator, **{SETTING: False})
    sid, name = script["id"], script["name"]
    for options in ({"tags": ["never"]}, {"limit": "db1"}, {"check": True}, {"diff": True}, OPTIONS):
        r = await _run(client, viewer, sid, options)
        assert r.status_code == 403, r.text
        assert r.json()["errors"] == [
            {
                "field": "run_options",
                "message": "only those who may edit this script (operators and admins) may choose "
                f"its run options ({SETTING} is off)",
            }
        ]
        assert r.json()["detail"] == (
            "run_options: your role (viewer) may not choose the run options of script "
            f"{name!r}: that needs operator or admin ({SETTING} is off: only those who may edit the "
            "script choose them); start the run without them, or ask an operator"
        )
    assert await _runs_of(client, admin, sid) == 0  # nothing stored
    # Without options (or with every option unset) the viewer's run starts, as before.
    for options in (None, {}, {"check": False, "diff": False, "tags": [], "limit": ""}):
        r = await _run(client, viewer, sid, options)
        assert r.status_code == 202 and r.json()["run_options"] is None, r.text
    for editor in (operator, admin):  # unaffected: they could edit the playbook itself
        r = await _run(client, editor, sid, OPTIONS)
        assert r.status_code == 202 and r.json()["run_options"] == OPTIONS, r.text
    # Invalid options are still a 422 for whoever sends them: the shape is checked first.
    r = await _run(client, viewer, sid, {"limit": "-i /etc/passwd"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "run_options.limit", r.text


async def test_a_viewer_repeats_options_someone_else_chose_but_not_their_own(
    client: httpx.AsyncClient, viewer: LoggedIn, operator: LoggedIn
) -> None:
    sid = (await _held_script(client, operator))["id"]
    own = (await _run(client, viewer, sid, OPTIONS)).json()["id"]  # chosen while allowed
    chosen = (await _run(client, operator, sid, OPTIONS)).json()["id"]
    await _switch(client, operator, sid, False)

    r = await client.post(f"/api/v1/executions/{own}/rerun", headers=viewer.headers)
    assert r.status_code == 403 and r.json()["errors"][0]["field"] == "run_options", r.text
    r = await client.post(f"/api/v1/executions/{chosen}/rerun", headers=viewer.headers)
    assert r.status_code == 202 and r.json()["run_options"] == OPTIONS, r.text
    again = r.json()["id"]  # the viewer's re-run of it: the options are still the operator's
    r = await client.post(f"/api/v1/executions/{again}/rerun", headers=viewer.headers)
    assert r.status_code == 202 and r.json()["rerun_of"] == again, r.text
    r = await client.post(f"/api/v1/executions/{own}/rerun", headers=operator.headers)
    assert r.status_code == 202, r.text  # an editor repeats anyone's
    await _switch(client, operator, sid, True)
    r = await client.post(f"/api/v1/executions/{own}/rerun", headers=viewer.headers)
    assert r.status_code == 202, r.text


async def test_a_trigger_s_stored_options_start_on_behalf_of_a_viewer(
    client: httpx.AsyncClient, viewer: LoggedIn, operator: LoggedIn
) -> None:
    """A schedule's options were chosen by whoever saved it (an editor); its runs start on behalf
    of its owner, who may be a viewer now: not refused."""
    sid = (await _held_script(client, operator, **{SETTING: False}))["id"]
    async with runtime.current().db.session() as session:
        owner = await session.get_one(User, viewer.id)
        actor = Actor.on_behalf_of(owner, "schedule:1")
        run = await executions.create(
            session, actor, sid, {}, trigger=executions.Trigger.schedule, run_options=OPTIONS
        )
    assert run.run_options == OPTIONS and run.triggered_by == viewer.id


async def test_diff_on_a_script_with_secrets_is_chosen_only_by_its_editors(
    client: httpx.AsyncClient, viewer: LoggedIn, operator: LoggedIn, admin: LoggedIn
) -> None:
    """Ansible's `--diff` prints each file a task writes before and after: a value decrypted from
    Ansible Vault, or the previous value of an attached secret still in a host's file, which
    masking cannot know. With a secret attached, a viewer's diff is a 403 naming
    `run_options.diff`, also with the setting on and in a re-run of an operator's diff run; the
    other options, and diff on a script without secrets, stay the viewer's to choose."""
    sid = (await _held_script(client, operator))["id"]
    r = await _run(client, viewer, sid, {"diff": True})
    assert r.status_code == 202, r.text  # no secret attached: as before
    operators_diff = (await _run(client, operator, sid, {"diff": True, "limit": "web1"})).json()["id"]
    body = {"name": f"VAULT_{time.monotonic_ns()}", "value": "vault-pass-1"}
    secret = await client.post("/api/v1/secrets", json=body, headers=operator.headers)
    assert secret.status_code == 201, secret.text
    r = await client.post(f"/api/v1/scripts/{sid}/secrets/{secret.json()['id']}", headers=operator.headers)
    assert r.is_success, r.text
    before = await _runs_of(client, admin, sid)
    for request in (
        _run(client, viewer, sid, {"diff": True}),
        _run(client, viewer, sid, {"diff": True, "check": True}),
        client.post(f"/api/v1/executions/{operators_diff}/rerun", headers=viewer.headers),
    ):
        r = await request
        assert r.status_code == 403, r.text
        assert r.json()["errors"][0]["field"] == "run_options.diff", r.text
        assert "may not choose diff for script" in r.json()["detail"], r.text
        assert "decrypted from Ansible Vault" in r.json()["errors"][0]["message"], r.text
    assert await _runs_of(client, admin, sid) == before  # nothing stored
    r = await _run(client, viewer, sid, {"check": True, "limit": "web1"})
    assert r.status_code == 202 and r.json()["run_options"] == {"check": True, "limit": "web1"}, r.text
    for editor in (operator, admin):
        r = await _run(client, editor, sid, {"diff": True})
        assert r.status_code == 202 and r.json()["run_options"] == {"diff": True}, r.text
