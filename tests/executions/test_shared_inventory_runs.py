"""Real Ansible runs (local runner) with a shared inventory, on SQLite and PostgreSQL: the run reads
the inventory's content when it starts and records its id and SHA-256, so a later edit changes
the next run, not the record of the last one. Over SSH: tests/executions/test_ansible_ssh.py."""

from __future__ import annotations

import hashlib
import time
from typing import Any

import httpx
import pytest
from sqlmodel import col, update

from opscraft import runtime
from opscraft.db.models import Inventory, ScriptVersion
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, output, start, wait_for

PLAYBOOK = """- hosts: targets
  gather_facts: false
  tasks:
    - debug:
        msg: "tier={{ tier }} host={{ inventory_hostname }}"
"""


def _inventory(tier: str) -> str:
    return (
        "[targets]\nbox1 ansible_connection=local\n\n"
        f"[targets:vars]\ntier={tier}\nansible_python_interpreter=/usr/bin/python3\n"
    )


async def shared_inventory_script(
    client: httpx.AsyncClient, operator: LoggedIn, content: str
) -> tuple[dict[str, Any], int]:
    """A new shared inventory of `content` and an Ansible script (`PLAYBOOK`) that uses it."""
    body = {"name": f"shared-{time.monotonic_ns()}", "content": content}
    r = await client.post("/api/v1/inventories", json=body, headers=operator.headers)
    assert r.status_code == 201, r.text
    inventory = r.json()
    fields = {"script_type": "ansible", "inventory_id": inventory["id"]}
    return inventory, await make_script(client, operator, PLAYBOOK, **fields)


@pytest.mark.parametrize("runner_name", ["local"], indirect=True)
async def test_a_run_uses_the_shared_inventory_as_of_its_start(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str
) -> None:
    first = _inventory("blue")
    inventory, script_id = await shared_inventory_script(client, operator, first)

    started = await start(client, operator, script_id, runner_name, parameters={})
    final = await wait_for(client, operator, started["id"], timeout=180)
    text = await output(client, operator, started["id"])
    assert final["status"] == "success", text
    assert "tier=blue host=box1" in text, text
    assert final["inventory_id"] == inventory["id"]
    assert final["inventory_sha256"] == hashlib.sha256(first.encode()).hexdigest()

    second = _inventory("green")
    body = {"name": inventory["name"], "content": second}
    r = await client.put(f"/api/v1/inventories/{inventory['id']}", json=body, headers=operator.headers)
    assert r.status_code == 200, r.text
    started = await start(client, operator, script_id, runner_name, parameters={})
    again = await wait_for(client, operator, started["id"], timeout=180)
    text = await output(client, operator, started["id"])
    assert again["status"] == "success" and "tier=green host=box1" in text, text
    assert again["inventory_sha256"] == hashlib.sha256(second.encode()).hexdigest()
    # The first run's record still names what it used.
    r = await client.get(f"/api/v1/executions/{final['id']}", headers=operator.headers)
    assert r.json()["inventory_sha256"] == hashlib.sha256(first.encode()).hexdigest()


@pytest.mark.parametrize("runner_name", ["local"], indirect=True)
async def test_a_queued_run_whose_inventory_was_deleted_fails_naming_it(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn, runner_name: str
) -> None:
    """The run waits (for an approval here) with version 1, which uses the shared inventory; the
    script moves to its own inventory (version 2), so the shared one can be deleted; once
    approved, the run fails at its start with a message naming the inventory, and the worker
    goes on: the next run succeeds."""
    name = f"gone-{time.monotonic_ns()}"
    r = await client.post(
        "/api/v1/inventories", json={"name": name, "content": _inventory("blue")}, headers=operator.headers
    )
    assert r.status_code == 201, r.text
    inventory_id = r.json()["id"]
    script_id = await make_script(
        client, operator, PLAYBOOK, script_type="ansible", inventory_id=inventory_id
    )
    r = await client.put(f"/api/v1/scripts/{script_id}/approval", json={"required": 1}, headers=admin.headers)
    assert r.status_code == 200, r.text
    held = await start(client, operator, script_id, runner_name, parameters={})
    assert held["status"] == "awaiting_approval"

    # While a live script uses it, the inventory stays (409 naming the script).
    r = await client.delete(f"/api/v1/inventories/{inventory_id}", headers=operator.headers)
    assert r.status_code == 409 and r.json()["errors"][0]["scripts"], r.text
    body = {"inventory_id": None, "inventory": _inventory("red")}
    r = await client.put(f"/api/v1/scripts/{script_id}", json=body, headers=operator.headers)
    assert r.status_code == 200 and r.json()["current_version"] == 2, r.text
    r = await client.delete(f"/api/v1/inventories/{inventory_id}", headers=operator.headers)
    assert r.status_code == 204, r.text

    r = await client.post(f"/api/v1/executions/{held['id']}/approve", json={}, headers=admin.headers)
    assert r.status_code == 200, r.text
    final = await wait_for(client, operator, held["id"], timeout=120)
    assert final["status"] == "error", final
    assert final["error_message"] == (
        f"the shared inventory {name} (id {inventory_id}) that this run's script version uses was "
        "deleted after the run was queued: choose another inventory for the script and run it again"
    )

    # The worker is unharmed: the next run (version 2, its own inventory) runs.
    started = await start(client, operator, script_id, runner_name, parameters={})
    r = await client.post(f"/api/v1/executions/{started['id']}/approve", json={}, headers=admin.headers)
    assert r.status_code == 200, r.text
    again = await wait_for(client, operator, started["id"], timeout=180)
    text = await output(client, operator, started["id"])
    assert again["status"] == "success" and "tier=red host=box1" in text, text


@pytest.mark.parametrize("runner_name", ["local"], indirect=True)
async def test_a_limit_names_any_host_the_inventory_may_hold(
    client: httpx.AsyncClient, viewer: LoggedIn, operator: LoggedIn, runner_name: str
) -> None:
    """Ansible takes host names in any script (the inventory check accepts `主机-1`): `--limit`
    must reach them too; white space (a trailing newline too), quotes and template syntax stay
    refused."""
    content = _inventory("blue") + "\n[targets]\n主机-1 ansible_connection=local\n"
    script_id = await make_script(client, operator, PLAYBOOK, script_type="ansible", inventory=content)

    started = await start(client, viewer, script_id, runner_name, run_options={"limit": "主机-*,!box1"})
    final = await wait_for(client, viewer, started["id"], timeout=180)
    text = await output(client, viewer, started["id"])
    assert final["status"] == "success", text
    assert "host=主机-1" in text and "host=box1" not in text, text
    for limit in ("主机 1", "{{ x }}", "'a'", "a\u202eb", "a\u200bb", "box1\n"):
        r = await client.post(
            "/api/v1/executions",
            json={"script_id": script_id, "run_options": {"limit": limit}, "runner": runner_name},
            headers=viewer.headers,
        )
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "run_options.limit", r.text


async def _stored_before_the_rule(statement: Any) -> None:
    """`statement` run as a row saved before today's save rules would read (a manual edit)."""
    async with runtime.current().db.session() as session:
        await session.exec(statement)
        await session.commit()


@pytest.mark.parametrize("runner_name", ["local"], indirect=True)
async def test_a_stored_text_with_a_line_break_the_page_does_not_show_is_refused_at_the_run(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str
) -> None:
    """Saves refuse an inventory holding U+2028 and the like (Ansible reads a line break the page
    does not show: `box1<U+2028>box2` targets box2 unseen) and convert one in a playbook; a text
    stored before those rules ran as stored. A run of it now fails at its start naming the line
    and the character, for the script's own inventory, a shared inventory and the playbook; no
    task ran. The same texts with line breaks run."""
    seen = _inventory("blue")
    own = await make_script(client, operator, PLAYBOOK, script_type="ansible", inventory=seen)
    inventory, shared = await shared_inventory_script(client, operator, seen)
    playbook = await make_script(client, operator, PLAYBOOK, script_type="ansible", inventory=seen)
    hidden = seen.replace("box1 ", "box1\u2028box2 ")
    settings = {"inventory": hidden}
    await _stored_before_the_rule(
        update(ScriptVersion).where(col(ScriptVersion.script_id) == own).values(run_settings=settings)
    )
    await _stored_before_the_rule(
        update(Inventory).where(col(Inventory.id) == inventory["id"]).values(content=hidden)
    )
    tasks = PLAYBOOK.rstrip("\n") + "\u0085    - debug:\u0085        msg: hidden-task-ran\n"
    await _stored_before_the_rule(
        update(ScriptVersion).where(col(ScriptVersion.script_id) == playbook).values(content=tasks)
    )
    cases = {
        own: "the script's inventory cannot be used: line 2 holds U+2028 (LINE SEPARATOR), which",
        shared: f"the shared inventory (id {inventory['id']}) cannot be used: line 2 holds U+2028",
        playbook: "the playbook cannot run: line 5 holds U+0085 (NEXT LINE), which Ansible reads",
    }
    for script_id, said in cases.items():
        started = await start(client, operator, script_id, runner_name, parameters={})
        final = await wait_for(client, operator, started["id"], timeout=120)
        assert final["status"] == "error", final
        assert final["error_message"].startswith(said), final
        text = await output(client, operator, started["id"])
        assert "host=" not in text and "hidden-task-ran" not in text, text


@pytest.mark.parametrize("runner_name", ["local"], indirect=True)
async def test_a_stored_text_writing_a_key_twice_is_refused_at_the_run_naming_the_key(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str
) -> None:
    """Saves refuse a playbook or YAML inventory writing a key twice in one mapping (Ansible uses
    the last value and only warns; the page shows the first: `yaml_keys`); a text stored before
    that rule ran so. A run of it now fails at its start naming the key and both lines and to
    save it again, for the playbook, the script's own inventory and a shared one; no task ran."""
    seen = (
        "all:\n  children:\n    targets:\n      hosts:\n        box1:\n          ansible_connection: local\n"
    )
    doubled = seen + "      hosts:\n        box2:\n          ansible_connection: local\n"
    own = await make_script(client, operator, PLAYBOOK, script_type="ansible", inventory=seen)
    inventory, shared = await shared_inventory_script(client, operator, seen)
    playbook = await make_script(client, operator, PLAYBOOK, script_type="ansible", inventory=seen)
    await _stored_before_the_rule(
        update(ScriptVersion)
        .where(col(ScriptVersion.script_id) == own)
        .values(run_settings={"inventory": doubled})
    )
    await _stored_before_the_rule(
        update(Inventory).where(col(Inventory.id) == inventory["id"]).values(content=doubled)
    )
    twice = PLAYBOOK.replace("  gather_facts: false\n", "  gather_facts: false\n  hosts: all\n")
    await _stored_before_the_rule(
        update(ScriptVersion).where(col(ScriptVersion.script_id) == playbook).values(content=twice)
    )
    key = "line 7: the key 'hosts' is written twice in one mapping (first at line 4)"
    cases = {
        own: f"the script's inventory cannot be used: {key}",
        shared: f"the shared inventory cannot be used: {key}",
        playbook: "the playbook cannot be used: line 3: the key 'hosts' is written twice in one mapping "
        "(first at line 1)",
    }
    for script_id, said in cases.items():
        started = await start(client, operator, script_id, runner_name, parameters={})
        final = await wait_for(client, operator, started["id"], timeout=120)
        assert final["status"] == "error", final
        assert final["error_message"].startswith(said), final
        assert final["error_message"].endswith("fix it and save it again"), final
        text = await output(client, operator, started["id"])
        assert "host=" not in text, text


async def test_a_rollback_to_a_version_whose_stored_inventory_is_refused_today_is_a_conflict(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """Version 1's inventory was stored before the save refused a hidden line break: a rollback
    copied it into version 3 unchecked (a host targeted unseen became current again). A 409
    naming the `inventory` field and the line; nothing written."""
    script_id = await make_script(
        client, operator, PLAYBOOK, script_type="ansible", inventory=_inventory("a")
    )
    body = {"inventory": _inventory("b")}
    r = await client.put(f"/api/v1/scripts/{script_id}", json=body, headers=operator.headers)
    assert r.status_code == 200 and r.json()["current_version"] == 2, r.text
    hidden = {"inventory": _inventory("a").replace("box1 ", "box1\x0bbox2 ")}
    first = (col(ScriptVersion.script_id) == script_id) & (col(ScriptVersion.number) == 1)
    await _stored_before_the_rule(update(ScriptVersion).where(first).values(run_settings=hidden))
    r = await client.post(f"/api/v1/scripts/{script_id}/rollback/1", json={}, headers=operator.headers)
    assert r.status_code == 409, r.text
    assert r.json()["errors"][0]["field"] == "inventory", r.text
    assert (
        "version 1's inventory is refused today: line 2 holds U+000B (LINE TABULATION)" in r.json()["detail"]
    )
    r = await client.get(f"/api/v1/scripts/{script_id}", headers=operator.headers)
    assert r.json()["current_version"] == 2 and r.json()["inventory"] == _inventory("b"), r.text


@pytest.mark.parametrize("runner_name", ["local"], indirect=True)
async def test_an_inventory_the_runs_ansible_cannot_parse_whole_fails_the_run_before_any_task(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str
) -> None:
    """A YAML inventory whose second host Ansible's yaml plugin refuses (`box2[prod]`, read as a
    host range) used to give only warnings in a run ("Unable to parse ... as an inventory
    source"): the play went on with what the plugin read before it stopped, box1, and box2 was
    left out unseen. The save refuses the text with the server's Ansible, but a run's Ansible
    may read it otherwise (none on the server, another version in the image, a text stored
    before a rule): stored so, for the script's own inventory and a shared one, the run fails
    before any task, naming the inventory."""
    seen = _inventory("blue")
    own = await make_script(client, operator, PLAYBOOK, script_type="ansible", inventory=seen)
    inventory, shared = await shared_inventory_script(client, operator, seen)
    partial = (
        "all:\n  children:\n    targets:\n      vars:\n        tier: blue\n"
        "        ansible_python_interpreter: /usr/bin/python3\n      hosts:\n"
        "        box1:\n          ansible_connection: local\n        box2[prod]:\n"
        "          ansible_connection: local\n"
    )
    settings = {"inventory": partial}
    await _stored_before_the_rule(
        update(ScriptVersion).where(col(ScriptVersion.script_id) == own).values(run_settings=settings)
    )
    await _stored_before_the_rule(
        update(Inventory).where(col(Inventory.id) == inventory["id"]).values(content=partial)
    )
    for script_id in (own, shared):
        started = await start(client, operator, script_id, runner_name, parameters={})
        final = await wait_for(client, operator, started["id"], timeout=120)
        text = await output(client, operator, started["id"])
        assert final["status"] == "failed", (final, text)
        assert "host=" not in text, text
        assert "Completely failed to parse inventory source" in final["error_message"], final
        assert "save it again, which checks it and names the line at fault" in final["error_message"], final
