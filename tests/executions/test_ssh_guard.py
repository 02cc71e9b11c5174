"""A host address known only at run (a secret read with `lookup('env', ...)`) that starts with
`-` never reaches ssh as an option: Ansible's ssh connection of every run refuses it
(`execution.ssh_guard`). Real runs, in the test image's Ansible and this machine's."""

from __future__ import annotations

import httpx
import pytest

from opscraft.execution.ssh_guard import REFUSAL
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, output, start, wait_for

RUNNERS = pytest.mark.parametrize("runner_name", ["docker", "local"], indirect=True)
PLAYBOOK = "- hosts: all\n  gather_facts: false\n  tasks:\n    - ping:\n"
INVENTORY = "[web]\nweb1 ansible_host=\"{{ lookup('env', 'EVIL_HOST') }}\"\n"
EVIL = "-oProxyCommand=echo opscraft-proxy-ran"


@RUNNERS
async def test_a_secret_host_address_starting_with_a_dash_is_refused_before_ssh(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str
) -> None:
    """The inventory saves (its address is a template, no option); the run's ssh connection
    refuses the address it turns into, saying why, and ssh never runs its ProxyCommand."""
    r = await client.post(
        "/api/v1/secrets", json={"name": "EVIL_HOST", "value": EVIL}, headers=operator.headers
    )
    assert r.status_code == 201, r.text
    secret_id = r.json()["id"]
    script_id = await make_script(
        client, operator, PLAYBOOK, script_type="ansible", inventory=INVENTORY, network_enabled=True
    )
    r = await client.post(f"/api/v1/scripts/{script_id}/secrets/{secret_id}", headers=operator.headers)
    assert r.status_code == 201, r.text
    execution = await start(client, operator, script_id, runner_name)
    final = await wait_for(client, operator, execution["id"], timeout=180)
    text = await output(client, operator, execution["id"])
    assert final["status"] == "failed", (final, text)
    assert REFUSAL in text, text
    assert "opscraft-proxy-ran" not in text and "hostname contains invalid characters" not in text, text
