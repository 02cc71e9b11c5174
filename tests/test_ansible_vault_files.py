"""A playbook or an inventory encrypted as a whole with Ansible Vault (`ansible-vault encrypt`,
the real tool) is refused at save with the reason and what to do instead
(services/vault_files.py); values encrypted with `encrypt_string` (`!vault |`) are accepted."""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from opscraft.services.linters import find_tool
from tests.conftest import LoggedIn, require_service

PLAYBOOK = "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug:\n        msg: hi\n"
INVENTORY = "[web]\nweb1 ansible_host=192.0.2.10\n"
REASON = "is encrypted as a whole with Ansible Vault"


def _vault(tmp_path: Path, *args: str) -> str:
    tool = find_tool("ansible-vault")
    require_service(tool is not None, "ansible-vault (ansible-core)")
    assert tool is not None
    password = tmp_path / "password"
    password.write_text("vault-pw\n")
    found = subprocess.run(
        [tool, *args, "--vault-password-file", str(password)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    return found.stdout


def _encrypted(tmp_path: Path, text: str) -> str:
    path = tmp_path / "file.yml"
    path.write_text(text)
    _vault(tmp_path, "encrypt", str(path))
    encrypted = path.read_text()
    assert encrypted.startswith("$ANSIBLE_VAULT;1.1;AES256")
    return encrypted


@pytest.fixture(scope="module")
def vaulted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """What the real `ansible-vault` writes, made once for the module's tests, which only read
    it (each run of the tool is most of a second of CPU; they were ten): `PLAYBOOK` and
    `INVENTORY` encrypted whole, and `db_pass` encrypted alone (`encrypt_string`)."""
    folder = tmp_path_factory.mktemp("vault")
    return {
        "playbook": _encrypted(folder, PLAYBOOK),
        "inventory": _encrypted(folder, INVENTORY),
        "db_pass": _vault(folder, "encrypt_string", "s3cret", "--name", "db_pass"),
    }


@pytest.mark.parametrize("blank", ["", "\n\n"])
async def test_a_playbook_or_inventory_encrypted_whole_is_refused_naming_the_field_and_why(
    client: httpx.AsyncClient, operator: LoggedIn, vaulted: dict[str, str], blank: str
) -> None:
    body = {"name": "vaulted", "script_type": "ansible", "acknowledge_risks": True}
    r = await client.post(
        "/api/v1/scripts",
        json={**body, "content": blank + vaulted["playbook"]},
        headers=operator.headers,
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "content" and REASON in r.json()["detail"], r.text
    assert "ANSIBLE_VAULT_PASSWORD_FILE" in r.json()["detail"]

    whole = blank + vaulted["inventory"]
    r = await client.post(
        "/api/v1/scripts", json={**body, "content": PLAYBOOK, "inventory": whole}, headers=operator.headers
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "inventory" and REASON in r.json()["errors"][0]["message"]
    r = await client.post(
        "/api/v1/inventories", json={"name": "vaulted", "content": whole}, headers=operator.headers
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "content" and REASON in r.json()["errors"][0]["message"]
    r = await client.get("/api/v1/scripts", headers=operator.headers)
    assert r.json()["total"] == 0  # nothing half-written


async def test_values_encrypted_one_by_one_are_accepted(
    client: httpx.AsyncClient, operator: LoggedIn, vaulted: dict[str, str]
) -> None:
    value = vaulted["db_pass"]
    assert value.startswith("db_pass: !vault |")
    indented = "".join(f"      {line}\n" for line in value.splitlines())
    inventory = f"all:\n  hosts:\n    web1:\n      ansible_host: 192.0.2.10\n{indented}"
    r = await client.post(
        "/api/v1/scripts",
        json={"name": "values", "script_type": "ansible", "content": PLAYBOOK, "inventory": inventory},
        headers=operator.headers,
    )
    assert r.status_code == 201, r.text
