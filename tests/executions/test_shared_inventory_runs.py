"""Real Ansible runs (local runner) with a shared inventory, on SQLite and PostgreSQL: the run reads
the inventory's content when it starts and records its id and SHA-256, so a later edit changes
the next run, not the record of the last one. Over SSH: tests/executions/test_ansible_ssh.py."""

from __future__ import annotations

import hashlib
import time

import httpx
import pytest

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


@pytest.mark.parametrize("runner_name", ["local"], indirect=True)
async def test_a_run_uses_the_shared_inventory_as_of_its_start(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str
) -> None:
    first = _inventory("blue")
    r = await client.post(
        "/api/v1/inventories",
        json={"name": f"shared-{time.monotonic_ns()}", "content": first},
        headers=operator.headers,
    )
    assert r.status_code == 201, r.text
    inventory = r.json()
    script_id = await make_script(
        client, operator, PLAYBOOK, script_type="ansible", inventory_id=inventory["id"]
    )

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
