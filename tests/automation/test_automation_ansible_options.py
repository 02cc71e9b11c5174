"""Schedules, webhooks and "then run" links carry the Ansible run options of the runs they start
(`limit`, `tags`, `skip_tags`, `check`, `diff`), judged by the rules of a manual run
(services/executions.automation_run_options), stored normalized, audited, passed to the run (the
real ansible-playbook on the local runner, hosts with `ansible_connection=local`) and refused at
fire time, naming the trigger, once the script is no Ansible script any more."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlmodel import col, select

from opscraft import runtime
from opscraft.db.models import Execution
from opscraft.services import schedules
from tests.automation.test_automation_terraform import audited, create, item_path, refused, retype_and_fire
from tests.automation.test_chains import add_link, wait_chained
from tests.automation.test_schedules import due_now, fires, local_runner
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, output, start, wait_for

KINDS = ("schedule", "webhook", "chain")
INVENTORY = "[web]\nweb1 ansible_connection=local\nweb2 ansible_connection=local\n"
PLAYBOOK = """\
- hosts: web
  gather_facts: false
  tasks:
    - name: say where
      debug:
        msg: "ran on {{ inventory_hostname }}"
      tags: [deploy]
    - name: not selected
      debug:
        msg: "untagged on {{ inventory_hostname }}"
      tags: [other]
"""


@pytest.fixture(autouse=True)
def local_runs_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker sees no Docker engine: the runs automation starts take the local runner, which
    runs the real ansible-playbook on PATH."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")


async def playbook(client: httpx.AsyncClient, who: LoggedIn) -> int:
    return await make_script(client, who, PLAYBOOK, script_type="ansible", inventory=INVENTORY)


@pytest.mark.parametrize("kind", KINDS)
async def test_each_bad_option_is_a_422_naming_it_and_nothing_is_stored(
    client: httpx.AsyncClient, operator: LoggedIn, kind: str
) -> None:
    """The refusals of `POST /api/v1/executions` for each option, on create and on update; for
    another script type each option set is refused by name; the normalized form is stored."""
    ansible = await playbook(client, operator)
    bash = await make_script(client, operator, "echo hi\n")
    source = await make_script(client, operator, "echo source\n")
    cases = [
        (ansible, {"limit": "-i /etc/passwd"}, "run_options.limit", "must not start with '-' or '@'"),
        (ansible, {"limit": "@hosts.txt"}, "run_options.limit", "must not start with '-' or '@'"),
        (ansible, {"limit": "web db"}, "run_options.limit", "host pattern"),
        (ansible, {"limit": "web:!fe80::1"}, "run_options.limit", "IPv6"),
        (ansible, {"tags": ["bad tag"]}, "run_options.tags", "each tag"),
        (ansible, {"skip_tags": ["{{x}}"]}, "run_options.skip_tags", "each tag"),
        (ansible, {"tags": ["t" * 65]}, "run_options.tags", "each tag must be 1-64"),
        (ansible, {"check": "yes"}, "run_options.check", ""),
        (ansible, {"diff": 1}, "run_options.diff", ""),
        (ansible, {"forks": 5}, "run_options.forks", ""),
        (bash, {"limit": "web"}, "run_options.limit", "only for ansible scripts"),
        (bash, {"check": True}, "run_options.check", "only for ansible scripts"),
    ]
    for script_id, options, field, words in cases:
        r = await create(client, operator, kind, script_id, source, run_options=options)
        refused(r, field, words)
    r = await create(client, operator, kind, bash, source, run_options={"limit": "web", "tags": ["a"]})
    assert [e["field"] for e in r.json()["errors"]] == ["run_options.limit", "run_options.tags"], r.text
    # Unset options are no choice, for any type.
    r = await create(client, operator, kind, bash, source, run_options={"check": False, "tags": []})
    assert r.status_code == 201 and r.json()["run_options"] is None, r.text

    r = await create(
        client,
        operator,
        kind,
        ansible,
        source,
        run_options={"limit": "web1", "tags": ["deploy", "deploy"], "check": True, "diff": False},
    )
    assert r.status_code == 201, r.text
    row = r.json()
    stored = {"limit": "web1", "tags": ["deploy"], "check": True}
    assert row["run_options"] == stored, row
    r = await client.put(
        item_path(kind, row), json={"run_options": {"limit": "@x"}}, headers=operator.headers
    )
    refused(r, "run_options.limit", "must not start")
    r = await client.get(item_path(kind, row), headers=operator.headers)
    assert r.json()["run_options"] == stored, "the refused update changed nothing"
    r = await client.put(item_path(kind, row), json={"run_options": {"diff": True}}, headers=operator.headers)
    assert r.status_code == 200 and r.json()["run_options"] == {"diff": True}, r.text
    r = await client.put(item_path(kind, row), json={"run_options": None}, headers=operator.headers)
    assert r.status_code == 200 and r.json()["run_options"] is None, r.text


@pytest.mark.parametrize("kind", KINDS)
async def test_the_options_are_audited_on_create_and_update(
    client: httpx.AsyncClient, operator: LoggedIn, kind: str
) -> None:
    ansible = await playbook(client, operator)
    source = await make_script(client, operator, "echo source\n")
    r = await create(
        client, operator, kind, ansible, source, run_options={"limit": "web2", "skip_tags": ["a", "b"]}
    )
    assert r.status_code == 201, r.text
    row = r.json()
    action = "chain_link" if kind == "chain" else kind
    facts = await audited(f"{action}.create", row["id"])
    assert facts["run_options"] == {"limit": "web2", "skip_tags": ["a", "b"]}, facts
    r = await client.put(
        item_path(kind, row), json={"run_options": {"check": True}}, headers=operator.headers
    )
    assert r.status_code == 200, r.text
    facts = await audited(f"{action}.update", row["id"])
    assert facts["run_options"] == {"check": True}, facts


async def test_a_schedule_and_a_webhook_run_ansible_with_their_options(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, no_automation_loops: None
) -> None:
    """A schedule limited to web1 runs the real playbook on web1 only; a webhook with tags runs
    only the tagged task and its call's body cannot set options (it reaches parameters only)."""
    await local_runner(client, admin)
    script_id = await playbook(client, operator)
    r = await create(client, operator, "schedule", script_id, 0, run_options={"limit": "web1"})
    assert r.status_code == 201, r.text
    schedule = r.json()
    await due_now(schedule["id"])
    assert await schedules.tick(runtime.current().db) == 1
    [fire] = await fires(schedule["id"])
    assert fire.outcome == "started", fire.message
    run = await wait_for(client, operator, fire.execution_id, timeout=120)
    text = await output(client, operator, run["id"])
    assert (run["status"], run["trigger"], run["run_options"]) == (
        "success",
        "schedule",
        {"limit": "web1"},
    ), text
    assert "ran on web1" in text and "web2" not in text, text
    created = await audited("execution.create", run["id"])
    assert created["run_options"] == {"limit": "web1"}, created

    r = await create(client, operator, "webhook", script_id, 0, run_options={"tags": ["deploy"]})
    assert r.status_code == 201, r.text
    hook = r.json()
    called = await client.post(hook["url_path"], json={"run_options": {"limit": "web2"}, "limit": "web2"})
    assert called.status_code == 202, called.text
    run = await wait_for(client, operator, called.json()["execution_id"], timeout=120)
    text = await output(client, operator, run["id"])
    assert (run["status"], run["trigger"], run["run_options"]) == ("success", "webhook", {"tags": ["deploy"]})
    assert "ran on web1" in text and "ran on web2" in text and "untagged" not in text, text


async def test_a_chain_step_runs_with_the_links_options(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn
) -> None:
    await local_runner(client, admin)
    source = await make_script(client, operator, "echo source\n")
    target = await playbook(client, operator)
    r = await add_link(client, operator, source, target, run_options={"limit": "web2", "check": True})
    assert r.status_code == 201, r.text
    first = await start(client, operator, source, "local")
    assert (await wait_for(client, operator, first["id"]))["status"] == "success"
    (step,) = await wait_chained(client, operator, first["id"])
    assert step["status"] == "started", step
    run = await wait_for(client, operator, step["execution_id"], timeout=120)
    text = await output(client, operator, run["id"])
    assert (run["status"], run["run_options"]) == ("success", {"limit": "web2", "check": True}), text
    assert "ran on web2" in text and "web1" not in text, text


async def test_a_script_no_longer_ansible_refuses_the_options_naming_the_trigger(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, no_automation_loops: None
) -> None:
    """The script becomes a bash script: a schedule with options fires `error` saying which
    schedule names them (no run), a webhook with options answers 422 naming the field (no run); a
    schedule without options starts its bash runs as before; clearing the options mends it."""
    await local_runner(client, admin)
    script_id = await playbook(client, operator)
    named = (await create(client, operator, "schedule", script_id, 0, run_options={"limit": "web1"})).json()
    plain = (await create(client, operator, "schedule", script_id, 0)).json()
    hook = (await create(client, operator, "webhook", script_id, 0, run_options={"check": True})).json()
    message, run = await retype_and_fire(client, operator, script_id, named, plain)
    assert "run_options apply only to ansible scripts" in message, message
    assert f"schedule:{named['id']} names these Ansible run options" in message, message
    assert (run["status"], run["run_options"]) == ("success", None), run

    called = await client.post(hook["url_path"], json={})
    refused(called, "run_options", "only for ansible scripts")
    assert f"webhook:{hook['id']} names these Ansible run options" in called.json()["detail"], called.text
    db = runtime.current().db
    async with db.session() as session:
        runs = (await session.exec(select(Execution.id).where(col(Execution.script_id) == script_id))).all()
    assert list(runs) == [run["id"]], "the refused fire and call started nothing"

    # Editing the schedule names the stale options until they are cleared.
    r = await client.put(item_path("schedule", named), json={"cron": "5 0 1 1 *"}, headers=operator.headers)
    refused(r, "run_options.limit", "only for ansible scripts")
    body: dict[str, Any] = {"run_options": {"limit": None, "check": False}}
    r = await client.put(item_path("schedule", named), json=body, headers=operator.headers)
    assert r.status_code == 200 and r.json()["run_options"] is None, r.text
