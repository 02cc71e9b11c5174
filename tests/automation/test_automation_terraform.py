"""Schedules, webhooks and "then run" links name the Terraform action and workspace of the runs
they start, judged by the rules of a manual run (services/executions.automation_terraform), with
the real Terraform (tests/run's binary on PATH) keeping its state in OpsCraft's state backend
(served by uvicorn on a loopback port, as in tests/executions/test_terraform_state.py)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from opscraft import runtime
from opscraft.db.models import AuditEvent, Execution
from opscraft.db.types import utcnow
from opscraft.services import schedules
from tests.automation.test_chains import add_link, wait_chained
from tests.automation.test_schedules import due_now, fires, local_runner
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, output, start, wait_for
from tests.executions.test_terraform_state import MAIN_TF, PORT, served, terraform_on_path

__all__ = ["served", "terraform_on_path"]

STATE_BACKEND = f"http://127.0.0.1:{PORT}"
# Each automation's routes: where it is created, given the script it starts (and the source of a link).
KINDS = ("schedule", "webhook", "chain")


@pytest.fixture
def engine_settings() -> dict[str, Any]:
    return {"OPSCRAFT_STATE_BACKEND_URL": STATE_BACKEND}


@pytest.fixture(autouse=True)
def local_runs_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker sees no Docker engine (a socket that does not exist): the runs automation
    starts (naming no runner) take the local runner, which runs the real Terraform on PATH."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")


async def create(
    client: httpx.AsyncClient, who: LoggedIn, kind: str, script_id: int, source_id: int, **body: Any
) -> httpx.Response:
    """POST one `kind` that starts `script_id` (a link leaves `source_id`)."""
    if kind == "chain":
        return await add_link(client, who, source_id, script_id, **body)
    path = f"/api/v1/scripts/{script_id}/{kind}s"
    payload = {
        "name": f"{kind}-{utcnow().timestamp()}",
        **({"cron": "0 0 1 1 *"} if kind == "schedule" else {}),
    }
    return await client.post(path, json=payload | body, headers=who.headers)


def item_path(kind: str, row: dict[str, Any]) -> str:
    owner = row["script_id"]
    return f"/api/v1/scripts/{owner}/{'chains' if kind == 'chain' else kind + 's'}/{row['id']}"


def refused(r: httpx.Response, field: str, words: str) -> None:
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert [e["field"] for e in errors] == [field], r.text
    assert words in errors[0]["message"], r.text


async def audited(action: str, target_id: int) -> dict[str, Any]:
    async with runtime.current().db.session() as session:
        rows = await session.exec(
            select(AuditEvent)
            .where(col(AuditEvent.action) == action, col(AuditEvent.target_id) == str(target_id))
            .order_by(col(AuditEvent.id).desc())
        )
        return dict(rows.first().details)  # type: ignore[union-attr]


async def versions(client: httpx.AsyncClient, who: LoggedIn, script_id: int, workspace: str) -> list[int]:
    r = await client.get(
        f"/api/v1/scripts/{script_id}/terraform/states/{workspace}/versions", headers=who.headers
    )
    assert r.status_code == 200, r.text
    return [v["execution_id"] for v in r.json()["versions"]]


@pytest.mark.parametrize("kind", KINDS)
async def test_each_automation_is_refused_as_a_manual_run_naming_the_field(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, kind: str
) -> None:
    """The workspace name pattern, Terraform only, `default` only without the state backend:
    the refusals of `POST /api/v1/executions`, on create and on update, nothing stored."""
    terraform = await make_script(client, operator, MAIN_TF, script_type="terraform")
    bash = await make_script(client, operator, "echo hi\n")
    source = await make_script(client, operator, "echo source\n")
    cases = [
        (terraform, {"terraform_workspace": "../prod"}, "terraform_workspace", "1-64 ASCII letters"),
        (terraform, {"terraform_workspace": "prod\n"}, "terraform_workspace", "1-64 ASCII letters"),
        (terraform, {"terraform_action": "destroy"}, "terraform_action", "never destroys"),
        (terraform, {"terraform_action": "apply_plan"}, "terraform_action", "'plan' or 'apply'"),
        (bash, {"terraform_workspace": "prod"}, "terraform_workspace", "only for terraform scripts"),
        (bash, {"terraform_action": "apply"}, "terraform_action", "only for terraform scripts"),
    ]
    for script_id, body, field, words in cases:
        refused(await create(client, operator, kind, script_id, source, **body), field, words)
    r = await create(
        client, operator, kind, bash, source, terraform_action="destroy", terraform_workspace="x y"
    )
    assert [e["field"] for e in r.json()["errors"]] == ["terraform_action", "terraform_workspace"], r.text

    # Another than `default` needs OpsCraft's state backend, as for a manual run.
    runtime.current().settings.state_backend_url = None
    try:
        r = await create(client, operator, kind, terraform, source, terraform_workspace="prod")
        refused(r, "terraform_workspace", "state backend")
        r = await create(client, operator, kind, terraform, source, terraform_workspace="default")
        assert r.status_code == 201, r.text
    finally:
        runtime.current().settings.state_backend_url = STATE_BACKEND
    row = r.json()
    assert (row["terraform_action"], row["terraform_workspace"]) == ("plan", "default"), row
    r = await client.put(item_path(kind, row), json={"terraform_workspace": "-x"}, headers=operator.headers)
    refused(r, "terraform_workspace", "1-64 ASCII letters")
    r = await client.put(item_path(kind, row), json={"terraform_action": "destroy"}, headers=operator.headers)
    refused(r, "terraform_action", "never destroys")
    r = await client.get(item_path(kind, row), headers=operator.headers)
    assert (r.json()["terraform_action"], r.json()["terraform_workspace"]) == ("plan", "default"), r.text
    # Another script type stores none; plan in default named for it is no choice.
    r = await create(
        client, operator, kind, bash, source, terraform_action="plan", terraform_workspace="default"
    )
    assert r.status_code == 201, r.text
    assert (r.json()["terraform_action"], r.json()["terraform_workspace"]) == (None, None), r.text


async def test_a_schedule_applies_in_prod_and_a_webhook_plans_against_that_state(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, served: None, no_automation_loops: None
) -> None:
    """The real Terraform: a schedule's apply writes prod's state (not default's), a webhook's
    plan reads staging's; the runs, the audit of each change and each run say so."""
    await local_runner(client, admin)
    script_id = await make_script(
        client, operator, MAIN_TF, script_type="terraform", parameters={"greeting": "hello"}
    )
    r = await create(
        client, operator, "schedule", script_id, 0, terraform_action="apply", terraform_workspace="prod"
    )
    assert r.status_code == 201, r.text
    schedule = r.json()
    assert (schedule["terraform_action"], schedule["terraform_workspace"]) == ("apply", "prod")
    facts = await audited("schedule.create", schedule["id"])
    assert (facts["terraform_action"], facts["terraform_workspace"]) == ("apply", "prod"), facts

    await due_now(schedule["id"])
    assert await schedules.tick(runtime.current().db) == 1
    [fire] = await fires(schedule["id"])
    assert fire.outcome == "started", fire.message
    run = await wait_for(client, operator, fire.execution_id, timeout=180)
    assert run["status"] == "success", await output(client, operator, run["id"])
    assert (run["terraform_action"], run["terraform_workspace"], run["trigger"]) == (
        "apply",
        "prod",
        "schedule",
    )
    assert await versions(client, operator, script_id, "prod") == [run["id"]]
    r = await client.get(f"/api/v1/scripts/{script_id}/terraform/states", headers=operator.headers)
    assert [state["workspace"] for state in r.json()["items"]] == ["prod"], "default has none"
    created = await audited("execution.create", run["id"])
    assert (created["terraform_action"], created["terraform_workspace"]) == ("apply", "prod"), created

    r = await create(client, operator, "webhook", script_id, 0, terraform_workspace="staging")
    assert r.status_code == 201, r.text
    hook = r.json()
    assert (hook["terraform_action"], hook["terraform_workspace"]) == ("plan", "staging")
    r = await client.put(
        item_path("webhook", hook), json={"terraform_workspace": "prod"}, headers=operator.headers
    )
    assert r.status_code == 200 and r.json()["terraform_workspace"] == "prod", r.text
    facts = await audited("webhook.update", hook["id"])
    assert (facts["terraform_action"], facts["terraform_workspace"]) == ("plan", "prod"), facts
    called = await client.post(hook["url_path"], json={})
    assert called.status_code == 202, called.text
    run = await wait_for(client, operator, called.json()["execution_id"], timeout=180)
    text = await output(client, operator, run["id"])
    assert (run["status"], run["terraform_action"], run["terraform_workspace"]) == ("success", "plan", "prod")
    assert "No changes" in text, "planned against prod's state, which the schedule's apply wrote"
    assert await versions(client, operator, script_id, "prod") == [fire.execution_id], "a plan writes none"


async def test_a_chain_step_applies_in_its_workspace_after_approval(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, served: None
) -> None:
    """A link's apply is held for approval like a manual apply of a script requiring approvals,
    then runs in the link's workspace."""
    await local_runner(client, admin)
    source = await make_script(client, operator, "echo source\n")
    target = await make_script(client, operator, MAIN_TF, script_type="terraform")
    r = await add_link(client, operator, source, target, terraform_action="apply", terraform_workspace="dev")
    assert r.status_code == 201, r.text
    link = r.json()
    facts = await audited("chain_link.create", link["id"])
    assert (facts["terraform_action"], facts["terraform_workspace"]) == ("apply", "dev"), facts
    r = await client.put(f"/api/v1/scripts/{target}/approval", json={"required": 1}, headers=admin.headers)
    assert r.status_code == 200, r.text
    first = await start(client, operator, source, "local")
    assert (await wait_for(client, operator, first["id"]))["status"] == "success"
    (step,) = await wait_chained(client, operator, first["id"])
    assert step["status"] == "started", step
    held = await wait_for(client, operator, step["execution_id"], {"awaiting_approval"})
    assert (held["terraform_action"], held["terraform_workspace"]) == ("apply", "dev"), held
    r = await client.post(
        f"/api/v1/executions/{held['id']}/approve", json={"comment": "ok"}, headers=admin.headers
    )
    assert r.status_code == 200, r.text
    run = await wait_for(client, operator, held["id"], timeout=180)
    assert run["status"] == "success", await output(client, operator, run["id"])
    assert await versions(client, operator, target, "dev") == [run["id"]]


async def retype_and_fire(
    client: httpx.AsyncClient, who: LoggedIn, script_id: int, named: dict[str, Any], plain: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """Make `script_id` a bash script and fire its schedules `named` (whose stored choice it now
    refuses: an `error` fire, no run) and `plain`: (the named one's `last_message`, the plain
    one's finished run)."""
    r = await client.put(
        f"/api/v1/scripts/{script_id}",
        json={"script_type": "bash", "content": "echo now-bash\n", "acknowledge_risks": True},
        headers=who.headers,
    )
    assert r.status_code == 200, r.text
    await due_now(named["id"])
    await due_now(plain["id"])
    assert await schedules.tick(runtime.current().db) == 2
    shown = (await client.get(item_path("schedule", named), headers=who.headers)).json()
    assert shown["last_outcome"] == "error" and shown["last_execution_id"] is None, shown
    [fire] = await fires(plain["id"])
    return shown["last_message"], await wait_for(client, who, fire.execution_id)


async def test_a_script_no_longer_terraform_refuses_a_named_choice_and_keeps_the_default(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, no_automation_loops: None
) -> None:
    """The script becomes a bash script: a schedule naming `apply` in `prod` fires `error`
    saying why (no run, no 500) until someone edits it, a webhook naming them answers 422 naming
    the field (audited, no run); a schedule left at plan in default starts its bash runs as before."""
    await local_runner(client, admin)
    script_id = await make_script(client, operator, MAIN_TF, script_type="terraform")
    named = (
        await create(
            client, operator, "schedule", script_id, 0, terraform_action="apply", terraform_workspace="prod"
        )
    ).json()
    plain = (await create(client, operator, "schedule", script_id, 0)).json()
    hook = (await create(client, operator, "webhook", script_id, 0, terraform_workspace="staging")).json()
    message, run = await retype_and_fire(client, operator, script_id, named, plain)
    assert "terraform_action applies only to terraform scripts" in message, message
    assert f"schedule:{named['id']} names this Terraform choice" in message, message
    assert (run["status"], run["terraform_action"], run["terraform_workspace"]) == ("success", None, None), (
        run
    )

    called = await client.post(hook["url_path"], json={})
    refused(called, "terraform_workspace", "only for terraform scripts")
    db = runtime.current().db
    async with db.session() as session:
        runs = (await session.exec(select(Execution.id).where(col(Execution.script_id) == script_id))).all()
    assert list(runs) == [run["id"]], "the refused fire and call started nothing"

    # Editing the schedule names the stale choice until it is put back to plan in default.
    r = await client.put(item_path("schedule", named), json={"cron": "5 0 1 1 *"}, headers=operator.headers)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["terraform_action", "terraform_workspace"], r.text
    r = await client.put(
        item_path("schedule", named),
        json={"terraform_action": "plan", "terraform_workspace": "default"},
        headers=operator.headers,
    )
    assert r.status_code == 200 and (r.json()["terraform_action"], r.json()["terraform_workspace"]) == (
        None,
        None,
    )
    next_fire = datetime.fromisoformat(r.json()["next_fire_times"][0])
    assert await schedules.tick(db, now=next_fire + timedelta(seconds=1)) == 2, "both fire next year"
    shown = (await client.get(item_path("schedule", named), headers=operator.headers)).json()
    assert shown["last_outcome"] == "started", shown
    await wait_for(client, operator, shown["last_execution_id"])
