"""File secrets in real runs: a tmpfs file of the run's user (0400), its path in the variable,
never in Docker's stored configuration (warm or cold container, before, during and after the
run), gone after the run, masked line by line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LoggedIn
from tests.executions.conftest import (
    container_of,
    make_script,
    output,
    pooled,
    prewarm,
    removals_held,
    removed,
    start_checked,
    stopped,
    wait_for,
    warm_containers,
)

KEY = (
    "-----BEGIN TEST KEY-----\n"
    "c2VjcmV0LWxpbmUtb25lLW9mLXRoZS1rZXk=\n"
    "bGluZS10d28tb2YtdGhlLXNlY3JldC1rZXk=\n"
    "-----END TEST KEY-----\n"
)
SCRIPT = """set -e
echo "path=$KUBECONFIG"
stat -c 'mode=%a owner=%u' "$KUBECONFIG"
[ "$(id -u)" = "$(stat -c %u "$KUBECONFIG")" ] && echo "owned by the run's user"
grep -q tmpfs /proc/mounts && df -P "$(dirname "$KUBECONFIG")" | tail -n 1 | awk '{print "fs=" $1}'
sha256sum < "$KUBECONFIG"
cat "$KUBECONFIG"
sleep "${PAUSE:-0}"
"""


@pytest.fixture
def backend() -> str:
    return "sqlite"


async def _script(client: httpx.AsyncClient, who: LoggedIn) -> int:
    r = await client.post(
        "/api/v1/secrets",
        json={"name": "KUBECONFIG", "value": KEY, "kind": "file"},
        headers=who.headers,
    )
    assert r.status_code == 201, r.text
    script_id = await make_script(client, who, SCRIPT, parameters={"PAUSE": "0"})
    r = await client.post(f"/api/v1/scripts/{script_id}/secrets/{r.json()['id']}", headers=who.headers)
    assert r.status_code == 201, r.text
    return script_id


COLD, WARM = {"OPSCRAFT_WARM_POOL_SIZE": 0}, {"OPSCRAFT_WARM_POOL_SIZE": 1}


@pytest.mark.parametrize(
    ("runner_name", "engine_settings"),
    [("docker", COLD), ("docker", WARM), ("local", COLD)],
    indirect=["runner_name"],
    ids=["docker-cold", "docker-warm", "local"],
)
async def test_file_secret_is_a_private_tmpfs_file_masked_line_by_line(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str
) -> None:
    script_id = await _script(client, operator)
    started = await start_checked(client, operator, script_id, runner_name, parameters={})
    final = await wait_for(client, operator, started["id"])
    text = await output(client, operator, started["id"])
    assert final["status"] == "success", text
    assert "mode=400" in text and "owned by the run's user" in text, text
    assert "fs=tmpfs" in text, text
    assert hashlib.sha256(KEY.encode()).hexdigest() in text  # the file holds exactly the value
    for line in KEY.splitlines():
        assert line not in text, text  # each line of the multi-line value is masked
    path = next(line for line in text.splitlines() if line.startswith("path=")).removeprefix("path=")
    assert path.endswith("/KUBECONFIG")
    if runner_name == "local":
        assert not Path(path).exists() and not Path(path).parent.exists()  # removed with the run


def _assert_no_secret(inspected: dict[str, Any]) -> None:
    stored = json.dumps(inspected)
    assert all(line not in stored for line in KEY.splitlines())
    assert "KUBECONFIG" not in stored  # not even the variable holding the path


@pytest.mark.parametrize("engine_settings", [COLD, WARM], ids=["cold", "warm"])
async def test_docker_keeps_the_file_secret_out_of_the_container_config(
    client: httpx.AsyncClient, operator: LoggedIn, docker_client: Any
) -> None:
    """Before (a warm container waiting), during and after the run: `docker inspect` of the
    run's container holds neither the value nor the variable."""
    script_id = await _script(client, operator)
    if pooled():
        await prewarm()
        for container in warm_containers(docker_client):
            _assert_no_secret(docker_client.api.inspect_container(container.id))
    with removals_held() as held:
        started = await start_checked(client, operator, script_id, "docker", parameters={"PAUSE": "1"})
        container = container_of(started["id"])
        assert container is not None
        _assert_no_secret(docker_client.api.inspect_container(container))  # during the run
        final = await wait_for(client, operator, started["id"])
        assert final["status"] == "success", await output(client, operator, started["id"])
        assert container in held.ended()
        assert await stopped(docker_client, container), "the loader exits after its end record"
        after = docker_client.api.inspect_container(container)
        _assert_no_secret(after)
        assert (after["Config"]["Labels"].get("opscraft.warm") == "true") == pooled()
    assert await removed(docker_client, container)


async def test_kind_is_checked_and_shown(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    r = await client.post(
        "/api/v1/secrets", json={"name": "X_KEY", "value": "abc", "kind": "disk"}, headers=operator.headers
    )
    assert r.status_code == 422 and "kind" in r.text
    r = await client.post(
        "/api/v1/secrets", json={"name": "ENV_ONE", "value": "abcd"}, headers=operator.headers
    )
    assert r.status_code == 201 and r.json()["kind"] == "env"


@pytest.mark.parametrize("password", [None, "not-the-password"])
async def test_a_vault_value_nothing_decrypts_says_which_secret_to_attach_or_fix(
    client: httpx.AsyncClient, operator: LoggedIn, password: str | None
) -> None:
    """A `!vault` value with no ANSIBLE_VAULT_PASSWORD_FILE, or one holding another password: the
    task fails with Ansible's "Attempting to decrypt but no vault secrets found" (or "... that
    could decrypt"), which names no OpsCraft secret, and the message said only "a task failed on
    localhost"; now it says what to attach or fix."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    vaulted = VaultLib([("default", VaultSecret(b"the-password"))]).encrypt("db-password-42").decode()
    playbook = (
        "- hosts: localhost\n  gather_facts: false\n  vars:\n    db_pass: !vault |\n"
        + "".join(f"      {line}\n" for line in vaulted.splitlines())
        + '  tasks:\n    - debug:\n        msg: "db={{ db_pass }}"\n'
    )
    script_id = await make_script(client, operator, playbook, script_type="ansible")
    if password is not None:
        body = {"name": "ANSIBLE_VAULT_PASSWORD_FILE", "value": password, "kind": "file"}
        r = await client.post("/api/v1/secrets", json=body, headers=operator.headers)
        assert r.status_code == 201, r.text
        r = await client.post(
            f"/api/v1/scripts/{script_id}/secrets/{r.json()['id']}", headers=operator.headers
        )
        assert r.status_code == 201, r.text
    started = await start_checked(client, operator, script_id, "local", parameters={})
    final = await wait_for(client, operator, started["id"], timeout=180)
    assert final["status"] == "failed", await output(client, operator, started["id"])
    said = (
        "attach a file secret named ANSIBLE_VAULT_PASSWORD_FILE" if password is None else "does not decrypt"
    )
    assert final["error_message"].startswith("the script exited with code 2: a task failed on localhost"), (
        final
    )
    assert said in final["error_message"], final


@pytest.mark.parametrize("runner_name", ["docker", "local"], indirect=True)
async def test_an_ansible_vault_password_is_a_file_secret(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str
) -> None:
    """Ansible Vault as in Semaphore or AWX: a `file` secret named ANSIBLE_VAULT_PASSWORD_FILE
    (Ansible reads the variable) decrypts the playbook's `!vault` values; the password is masked."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    password = "vault-pw-7f3a9c"
    vaulted = VaultLib([("default", VaultSecret(password.encode()))]).encrypt("db-password-42").decode()
    playbook = (
        "- hosts: localhost\n  gather_facts: false\n  vars:\n    db_pass: !vault |\n"
        + "".join(f"      {line}\n" for line in vaulted.splitlines())
        + '  tasks:\n    - debug:\n        msg: "db={{ db_pass }}"\n'
        + "    - command: cat {{ lookup('env', 'ANSIBLE_VAULT_PASSWORD_FILE') }}\n      register: pw\n"
        + "    - debug:\n        var: pw.stdout\n"
    )
    script_id = await make_script(client, operator, playbook, script_type="ansible")
    body = {"name": "ANSIBLE_VAULT_PASSWORD_FILE", "value": password, "kind": "file"}
    r = await client.post("/api/v1/secrets", json=body, headers=operator.headers)
    assert r.status_code == 201, r.text
    r = await client.post(f"/api/v1/scripts/{script_id}/secrets/{r.json()['id']}", headers=operator.headers)
    assert r.status_code == 201, r.text
    started = await start_checked(client, operator, script_id, runner_name, parameters={})
    final = await wait_for(client, operator, started["id"], timeout=180)
    text = await output(client, operator, started["id"])
    assert final["status"] == "success", text
    assert "db=db-password-42" in text, text
    assert '"pw.stdout": "***"' in text and password not in text, text
