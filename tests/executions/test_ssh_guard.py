"""A host address or command known only at run (a secret read with `lookup('env', ...)`) that
starts with `-` never reaches ssh as an option, whatever name chooses Ansible's ssh connection:
the connection of every run refuses it (`execution.ssh_guard`). Real runs, in the test image's
Ansible and this machine's; the hosts are never reached (the refusal comes before ssh)."""

from __future__ import annotations

import httpx
import pytest

from opscraft.execution import ansible_recap
from opscraft.execution.ansible_recap import HostCounts
from opscraft.execution.ssh_guard import REFUSAL
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, output, start, wait_for

RUNNERS = pytest.mark.parametrize("runner_name", ["docker", "local"], indirect=True)
PLAYBOOK = "- hosts: all\n  gather_facts: false\n  tasks:\n    - ping:\n"
INVENTORY = "[web]\nweb1 ansible_host=\"{{ lookup('env', 'EVIL_HOST') }}\"\n"
EVIL = "-oProxyCommand=echo opscraft-proxy-ran"
# A ProxyCommand that leaves a file in the run's work directory (ssh's working directory) when
# ssh reads the value as an option: the last tasks report whether it exists.
PROXY_MARKER = "opscraft-proxy-ran"
TOUCHING = f"-oProxyCommand=touch {PROXY_MARKER}"
EVIL_ADDRESS = "ansible_host=\"{{ lookup('env', 'EVIL_HOST') }}\""
# Each host's name says how it reaches ssh. The play's keyword names the plugin by its full name,
# which does not search the playbook's adjacent plugins; a host's `ansible_connection` wins over it.
NAMED_INVENTORY = f"""[named]
short {EVIL_ADDRESS} ansible_connection=ssh
legacy {EVIL_ADDRESS} ansible_connection=ansible.legacy.ssh
full {EVIL_ADDRESS} ansible_connection=ansible.builtin.ssh
smart {EVIL_ADDRESS} ansible_connection=smart
play_keyword {EVIL_ADDRESS}
old_variable ansible_ssh_host="{{{{ lookup('env', 'EVIL_HOST') }}}}"
[other]
command ansible_host=127.0.0.1 ansible_port=1 ansible_connection=ansible.builtin.ssh
user ansible_host=127.0.0.1 ansible_port=1 ansible_user="{{{{ lookup('env', 'EVIL_HOST') }}}}"
port ansible_host=127.0.0.1 ansible_port="{{{{ lookup('env', 'EVIL_HOST') }}}}"
here ansible_connection=local
"""
# `raw` runs its text as written: a one-word command (`id`) is what ssh would take for the host
# when the address before it is read as an option, so the ProxyCommand would run.
NAMED_PLAYBOOK = f"""- hosts: all
  connection: ansible.builtin.ssh
  gather_facts: false
  tasks:
    - raw: "{{{{ lookup('env', 'EVIL_HOST') if inventory_hostname == 'command' else 'id' }}}}"
    - raw: id
      delegate_to: "{{{{ lookup('env', 'EVIL_HOST') }}}}"
      ignore_unreachable: true
      when: inventory_hostname == 'here'
    - stat:
        path: "{{{{ playbook_dir }}}}/{PROXY_MARKER}"
      register: proxy
    - debug:
        msg: "proxy ran: {{{{ proxy.stat.exists }}}}"
"""


async def _run_with_secret(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str, value: str, playbook: str, inventory: str
) -> tuple[dict, str]:
    """Run `playbook` on `inventory` with the secret EVIL_HOST = `value` attached: (final run, output)."""
    secret = {"name": "EVIL_HOST", "value": value}
    r = await client.post("/api/v1/secrets", json=secret, headers=operator.headers)
    assert r.status_code == 201, r.text
    secret_id = r.json()["id"]
    script_id = await make_script(
        client, operator, playbook, script_type="ansible", inventory=inventory, network_enabled=True
    )
    r = await client.post(f"/api/v1/scripts/{script_id}/secrets/{secret_id}", headers=operator.headers)
    assert r.status_code == 201, r.text
    execution = await start(client, operator, script_id, runner_name)
    final = await wait_for(client, operator, execution["id"], timeout=180)
    return final, await output(client, operator, execution["id"])


def _line(text: str, start: str) -> str:
    """The first line of `text` holding `start` (Ansible's `fatal: [host]: ...` line)."""
    found = [line for line in text.splitlines() if start in line]
    assert found, (start, text)
    return found[0]


@RUNNERS
async def test_a_secret_host_address_starting_with_a_dash_is_refused_before_ssh(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str
) -> None:
    """The inventory saves (its address is a template, no option); the run's ssh connection
    refuses the address it turns into, saying why, and ssh never runs its ProxyCommand."""
    final, text = await _run_with_secret(client, operator, runner_name, EVIL, PLAYBOOK, INVENTORY)
    assert final["status"] == "failed", (final, text)
    assert REFUSAL in text, text
    assert "opscraft-proxy-ran" not in text and "hostname contains invalid characters" not in text, text


@RUNNERS
async def test_no_name_of_the_ssh_connection_and_no_command_after_the_host_reaches_ssh_as_an_option(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str
) -> None:
    """`ssh`, `ansible.legacy.ssh`, `ansible.builtin.ssh` (a host's variable, the play's keyword,
    a delegated host), `smart` and the older `ansible_ssh_host` all get the guard; so does a
    `raw` command starting with '-' (ssh reads options after the host too). A user or port
    starting with '-' is no option (ssh and Ansible refuse them for other reasons), and the
    local connection runs. No ProxyCommand ever runs."""
    final, text = await _run_with_secret(
        client, operator, runner_name, TOUCHING, NAMED_PLAYBOOK, NAMED_INVENTORY
    )
    assert final["status"] == "failed", (final, text)
    for host in ("short", "legacy", "full", "smart", "play_keyword", "old_variable"):
        line = _line(text, f"fatal: [{host}]:")
        assert "UNREACHABLE" in line and f"host address '***' {REFUSAL}" in line, line
    assert f"command '***' {REFUSAL}" in _line(text, "fatal: [command]:")
    assert f"host address '***' {REFUSAL}" in _line(text, "fatal: [here -> ***]:")
    for host in ("user", "port"):
        assert REFUSAL not in _line(text, f"fatal: [{host}]:")
    assert "proxy ran: False" in text and "proxy ran: True" not in text, text
    recap = {counts.host: counts for counts in ansible_recap.parse(text)}
    assert recap["here"] == HostCounts("here", ok=4, changed=1, unreachable=0, failed=0, ignored=1), text
