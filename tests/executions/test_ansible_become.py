"""Ansible privilege escalation (`become: true`, sudo) over real SSH, as playbooks use it.

The host is a container of `opscraft-test/sshd:1` (tests/images/build-sshd.sh: Debian's
openssh-server and sudo) with two users: `deploy`, whom sudo lets in without a password, and
`ops`, whom sudo asks for the password this module sets (a new random one per module: one host
container serves the module's tests). The run logs in with a key kept as a `file` secret; the
become password comes from the `file` secret `ANSIBLE_BECOME_PASSWORD_FILE` (docs/executions.md,
*Privilege escalation*). The local runner reaches the container at its bridge address, the Docker
runner (network enabled) over the bridge.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import col, update

from opscraft import runtime
from opscraft.db.models import Secret
from opscraft.db.models.secrets import SecretKind
from tests.conftest import LoggedIn, require_service
from tests.executions import test_ansible_ssh as ssh_tests
from tests.executions.conftest import container_of, make_script, output, require_docker, start, wait_for
from tests.waiting import until, wait_until

IMAGE = "opscraft-test/sshd:1"
ROOT_FILE = "/etc/opscraft-become"
STARTED = "/root/opscraft-started"  # written as root by the waiting task
GO_ON = "/root/opscraft-go-on"  # the test's word that the waiting task may end (its checks are done)
PLAYBOOK = f"""- hosts: targets
  gather_facts: false
  become: true
  tasks:
    - name: write a file only root may write
      copy:
        dest: {ROOT_FILE}
        content: "written by opscraft\\n"
        mode: "0600"
    - name: who runs the tasks
      command: id -un
      register: who
      changed_when: false
    - name: say who
      debug:
        msg: "tasks run as {{{{ who.stdout }}}}"
"""
# Until the test says go on (`GO_ON`), at most 120 s: a fixed `sleep 4` held each run 4 s.
WAITING = f"""    - name: wait as root
      shell: "touch {STARTED} && for i in $(seq 1200); do [ -e {GO_ON} ] && break; sleep 0.1; done"
"""


backend = ssh_tests.backend  # SQLite: privilege escalation does not depend on the database
_run = ssh_tests._run


@dataclass(frozen=True)
class BecomeHost:
    container: Any  # the docker SDK's container
    address: str
    key: str  # the private key authorized for `deploy` and `ops`
    password: str  # ops's password, which sudo asks for

    def run(self, *command: str) -> str:
        """`command`'s output in the host, as root (exit code 0 asserted)."""
        code, out = self.container.exec_run(list(command), user="root")
        assert code == 0, (command, out)
        return str(out.decode())

    def owner_and_content(self, path: str) -> tuple[str, str] | None:
        code, out = self.container.exec_run(["sh", "-c", f'stat -c %U "{path}" && cat "{path}"'])
        if code != 0:
            return None
        owner, _, content = out.decode().partition("\n")
        return owner, content


def _sshd_greets(address: str, port: int) -> bool:
    """Whether an sshd on `address`:`port` answers with its `SSH-` greeting."""
    try:
        with socket.create_connection((address, port), timeout=1) as conn:
            return conn.recv(4).startswith(b"SSH-")
    except OSError:
        return False


@pytest.fixture(scope="module")
def _module_become_host(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BecomeHost]:
    """One host container for the module's tests (its start, the users' keys and ops's password
    took seconds per test): each test's runs log in afresh, and `become_host` removes the files
    a test's playbook writes before the next test."""
    require_docker()
    import docker.errors

    docker_client = docker.from_env()
    try:
        docker_client.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        docker_client.close()
        require_service(False, f"{IMAGE} (bash tests/images/build-sshd.sh)")
    key_path = tmp_path_factory.mktemp("become") / "client"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key_path)], check=True)
    public = Path(f"{key_path}.pub").read_text()
    password = f"pw-{secrets.token_hex(12)}"
    container = docker_client.containers.run(IMAGE, detach=True, labels={"opscraft-test.sshd": "1"})
    try:
        container.reload()
        address = container.attrs["NetworkSettings"]["IPAddress"]
        host = BecomeHost(container, address, key_path.read_text(), password)
        for user in ("deploy", "ops"):
            keys = f"/home/{user}/.ssh/authorized_keys"
            host.run("sh", "-c", f"printf '%s' '{public.strip()}' > {keys} && chown {user}: {keys}")
        # chpasswd reads the password on its standard input: it is on no command line.
        subprocess.run(
            ["docker", "exec", "-i", container.id, "chpasswd"], input=f"ops:{password}\n".encode(), check=True
        )
        wait_until(lambda: _sshd_greets(address, 22), f"sshd on {address}:22")
        yield host
    finally:
        container.remove(force=True)
        docker_client.close()


@pytest.fixture
def become_host(runner_name: str, _module_become_host: BecomeHost) -> BecomeHost:
    """The module's host (`_module_become_host`) without the files an earlier test's runs wrote
    as root (`ROOT_FILE`, `STARTED`, `GO_ON`): each test sees only what its own runs did."""
    _module_become_host.run("rm", "-f", ROOT_FILE, STARTED, GO_ON)
    return _module_become_host


async def _attach(client: httpx.AsyncClient, who: LoggedIn, script_id: int, secret_id: int) -> None:
    r = await client.post(f"/api/v1/scripts/{script_id}/secrets/{secret_id}", headers=who.headers)
    assert r.status_code == 201, r.text


async def _become_script(
    client: httpx.AsyncClient,
    who: LoggedIn,
    host: BecomeHost,
    user: str,
    runner: str,
    playbook: str = PLAYBOOK,
) -> int:
    """A script running `playbook` on the host (`testhost`) as `user`, with its key attached: the
    SSH tests' script (`test_ansible_ssh._ssh_script`; its `marker` variable goes unused here)."""
    seen_as = ssh_tests.SshHost(
        address=host.address,
        port=22,
        user=user,
        key=host.key,
        wrong_key="",
        host_key="",
        marker=Path(ROOT_FILE),
        pid=0,
    )
    script_id, _ = await ssh_tests._ssh_script(client, who, seen_as, runner, playbook)
    return script_id


@pytest.mark.parametrize("runner_name", ["docker", "local"], indirect=True)
async def test_become_with_passwordless_sudo_runs_the_tasks_as_root(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str, become_host: BecomeHost
) -> None:
    script_id = await _become_script(client, operator, become_host, "deploy", runner_name)
    final, text = await _run(client, operator, script_id, runner_name)
    assert final["status"] == "success", text
    assert "tasks run as root" in text and "changed=1" in text, text
    assert become_host.owner_and_content(ROOT_FILE) == ("root", "written by opscraft\n")


def _command_lines() -> str:
    """Every process's command line on this machine (the host container's processes included:
    one kernel), NULs as spaces."""
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
    return "\n".join(lines)


@pytest.mark.parametrize("runner_name", ["docker", "local"], indirect=True)
async def test_the_become_password_comes_from_a_file_secret_and_shows_nowhere(
    client: httpx.AsyncClient,
    operator: LoggedIn,
    runner_name: str,
    become_host: BecomeHost,
    docker_client: Any,
) -> None:
    """`ops` needs its password for sudo. Without it, and with a wrong one, the run fails with
    Ansible's own words; with the right one in the file secret `ANSIBLE_BECOME_PASSWORD_FILE` the
    tasks run as root. The password is in no command line on this machine (the run's, Ansible's,
    ssh's, sudo's in the host), not in the run's container configuration, and not in the output."""
    script_id = await _become_script(client, operator, become_host, "ops", runner_name, PLAYBOOK + WAITING)

    final, text = await _run(client, operator, script_id, runner_name)
    assert final["status"] == "failed", text
    assert "Missing sudo password" in text, text
    assert final["error_message"] == (
        "the script exited with code 2: a task failed on testhost (1 of 1 host); the host asks for a "
        "password to become another user and the run has none: attach a file secret named "
        "ANSIBLE_BECOME_PASSWORD_FILE holding it to the script (docs/executions.md, Ansible against "
        "real hosts)"
    )

    name = "ANSIBLE_BECOME_PASSWORD_FILE"
    secret_id = await ssh_tests._file_secret(client, operator, name, "not-the-password")
    await _attach(client, operator, script_id, secret_id)
    final, text = await _run(client, operator, script_id, runner_name)
    assert final["status"] == "failed", text
    assert "Incorrect sudo password" in text and "not-the-password" not in text, text
    assert "ANSIBLE_BECOME_PASSWORD_FILE is not the one the host asks for" in final["error_message"], final
    assert become_host.owner_and_content(ROOT_FILE) is None

    r = await client.put(
        f"/api/v1/secrets/{secret_id}", json={"value": become_host.password + "\n"}, headers=operator.headers
    )
    assert r.status_code == 200, r.text
    started = await start(client, operator, script_id, runner_name, parameters={})
    await until(
        lambda: become_host.owner_and_content(STARTED), "the waiting task to run as root", timeout=120
    )
    assert become_host.password not in _command_lines()
    if runner_name == "docker":
        container = container_of(started["id"])
        assert container is not None
        assert become_host.password not in json.dumps(docker_client.api.inspect_container(container))
    become_host.run("touch", GO_ON)
    final = await wait_for(client, operator, started["id"], timeout=180)
    text = await output(client, operator, started["id"])
    assert final["status"] == "success", text
    assert "tasks run as root" in text and become_host.password not in text, text
    assert become_host.owner_and_content(ROOT_FILE) == ("root", "written by opscraft\n")


WHO_AM_I = """    - command: id -un
      register: who
    - debug:
        msg: "running as {{ who.stdout }}"
"""


@pytest.mark.parametrize("runner_name", ["local"], indirect=True)
async def test_become_user_and_become_method_su_with_the_password_file(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str, become_host: BecomeHost
) -> None:
    """What docs/executions.md says of `become_user` and `become_method: su`: becoming another
    unprivileged user (`become_user: deploy` from `ops`, whose sudo asks for the password) fails
    on a host without `setfacl` with Ansible's "Failed to set permissions on the temporary files",
    and runs with `ansible_pipelining=true` set in the inventory; `su` to root answers su's prompt
    with the password file (root's password here) like sudo's."""
    secret_id = await ssh_tests._file_secret(
        client, operator, "ANSIBLE_BECOME_PASSWORD_FILE", become_host.password
    )
    playbook = "- hosts: targets\n  gather_facts: false\n  become: true\n  become_user: deploy\n  tasks:\n"
    script_id = await _become_script(client, operator, become_host, "ops", runner_name, playbook + WHO_AM_I)
    await _attach(client, operator, script_id, secret_id)
    final, text = await _run(client, operator, script_id, runner_name)
    assert final["status"] == "failed" and "Failed to set permissions on the temporary files" in text, text

    r = await client.get(f"/api/v1/scripts/{script_id}", headers=operator.headers)
    inventory = r.json()["inventory"] + "ansible_pipelining=true\n"  # in [targets:vars]
    r = await client.put(
        f"/api/v1/scripts/{script_id}", json={"inventory": inventory}, headers=operator.headers
    )
    assert r.status_code == 200, r.text
    final, text = await _run(client, operator, script_id, runner_name)
    assert final["status"] == "success" and "running as deploy" in text, text

    subprocess.run(
        ["docker", "exec", "-i", become_host.container.id, "chpasswd"],
        input=f"root:{become_host.password}\n".encode(),
        check=True,
    )
    r = await client.put(
        f"/api/v1/scripts/{script_id}",
        json={"content": playbook.replace("become_user: deploy", "become_method: su") + WHO_AM_I},
        headers=operator.headers,
    )
    assert r.status_code == 200, r.text
    final, text = await _run(client, operator, script_id, runner_name)
    assert final["status"] == "success" and "running as root" in text, text
    assert become_host.password not in text


async def test_a_become_password_file_secret_must_be_a_file_secret(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """As an `env` secret Ansible took the password for the name of a file to open (`The password
    file *** was not found`): refused when created, naming the field."""
    for name in ("ANSIBLE_BECOME_PASSWORD_FILE", "ANSIBLE_VAULT_PASSWORD_FILE"):
        for body in ({"kind": "env"}, {}):
            r = await client.post(
                "/api/v1/secrets",
                json={"name": name, "value": "the password", **body},
                headers=operator.headers,
            )
            assert r.status_code == 422, r.text
            error = r.json()["errors"][0]
            assert error["field"] == "kind" and "must be a file secret" in error["message"], r.text


async def test_an_env_secret_of_that_name_from_before_the_rule_ends_the_run_in_error(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """An `env` secret `ANSIBLE_BECOME_PASSWORD_FILE` stored before the rule (made so here in the
    database) never reaches Ansible: the run ends in `error` saying what to do."""
    secret_id = await ssh_tests._file_secret(client, operator, "ANSIBLE_BECOME_PASSWORD_FILE", "the password")
    async with runtime.current().db.session() as session:
        await session.exec(update(Secret).where(col(Secret.id) == secret_id).values(kind=SecretKind.env))
        await session.commit()
    playbook = "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - debug:\n        msg: ran\n"
    script_id = await make_script(client, operator, playbook, script_type="ansible")
    await _attach(client, operator, script_id, secret_id)
    final, text = await _run(client, operator, script_id, "local")
    assert final["status"] == "error", text
    assert final["error_message"] == (
        "the secret ANSIBLE_BECOME_PASSWORD_FILE must be a file secret: Ansible reads the path of a "
        "file holding the password from this variable, and would take the value of an env secret as "
        "a file name: create it again as a file secret and attach that"
    )
    assert "ran" not in text and "the password" not in text, text


VAULTED = """!vault |
          $ANSIBLE_VAULT;1.1;AES256
          62313365396662343061393464336163383764373764613633653634306231386433626436623361
          6134333665353966363534333632666535333761666131620a663537646436643839616336323763
          3639
"""


@pytest.mark.parametrize(
    ("inventory", "said"),
    [
        ("[targets]\ndb1 ansible_become_password=Hunter2-secret\n", "host db1 (ansible_become_password)"),
        ("[targets]\ndb1 ansible_become_pass=Hunter2-secret\n", "host db1 (ansible_become_pass)"),
        ("[targets]\ndb1 ansible_password=Hunter2-secret\n", "host db1 (ansible_password)"),
        ("[targets]\ndb1 ansible_ssh_pass=1234\n", "host db1 (ansible_ssh_pass)"),
        (
            "[targets]\ndb1\n\n[targets:vars]\nansible_sudo_pass=Hunter2-secret\n",
            "group targets (ansible_sudo_pass)",
        ),
        # A group with no host yet, or no host at all: `--list` dropped its variables, the text
        # holding the password was saved.
        (
            "db1\n[dbs]\n[dbs:vars]\nansible_become_password=Hunter2-secret\n",
            "group dbs (ansible_become_password)",
        ),
        ("[all:vars]\nansible_become_pass=Hunter2-secret\n", "group all (ansible_become_pass)"),
        (
            "all:\n  hosts:\n    db1:\n  children:\n    dbs:\n      vars:\n"
            "        ansible_su_password: Hunter2-secret\n",
            "group dbs (ansible_su_password)",
        ),
        # A template that reads a variable written out beside it, or only constants, is the
        # password in clear too.
        (
            "all:\n  vars:\n    pw: Hunter2-secret\n  hosts:\n    db1:\n"
            "      ansible_become_password: '{{ pw }}'\n",
            "host db1 (ansible_become_password)",
        ),
        (
            'db1 ansible_become_pass="{{ pw }}"\n[all:vars]\npw=Hunter2-secret\n',
            "host db1 (ansible_become_pass)",
        ),
        (
            "all:\n  hosts:\n    db1:\n      ansible_become_password: \"{{ 'Hunter2-secret' }}\"\n",
            "host db1 (ansible_become_password)",
        ),
        # A mapping that is no `!vault` value holds the text in clear as well.
        (
            "all:\n  hosts:\n    db1:\n      ansible_become_password: {p: Hunter2-secret}\n",
            "host db1 (ansible_become_password)",
        ),
    ],
)
async def test_a_password_written_in_clear_in_an_inventory_is_refused(
    client: httpx.AsyncClient, operator: LoggedIn, inventory: str, said: str
) -> None:
    """An inventory is stored and shown as written to every role: a password variable with a
    value written out is refused (the script's own inventory and a shared one), naming the host
    or group where it is written and the variable, never the value; a template filled in the run
    from a secret, a `!vault` value and an empty one are accepted."""
    said = f"{said} holds a password in clear"
    r = await client.post(
        "/api/v1/scripts",
        json={
            "name": "clear",
            "script_type": "ansible",
            "content": "- hosts: all\n  tasks: []\n",
            "inventory": inventory,
        },
        headers=operator.headers,
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "inventory" and said in r.text, r.text
    assert "Hunter2" not in r.text and "1234" not in r.text, r.text
    r = await client.post(
        "/api/v1/inventories", json={"name": "clear", "content": inventory}, headers=operator.headers
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "content" and said in r.text, r.text


async def test_a_password_from_a_secret_or_vault_in_an_inventory_is_accepted(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    for number, inventory in enumerate(
        [
            "[targets]\ndb1 ansible_become_password=\"{{ lookup('env', 'DB_PASS') }}\"\n",
            "[targets]\ndb1 ansible_become_password=\n",
            "all:\n  vars:\n    pw: \"{{ lookup('env', 'DB_PASS') }}\"\n  hosts:\n    db1:\n"
            "      ansible_become_password: \"{{ pw | default('') }}\"\n",
            f"all:\n  hosts:\n    db1:\n      ansible_become_password: {VAULTED}",
        ]
    ):
        r = await client.post(
            "/api/v1/inventories",
            json={"name": f"ok-{number}", "content": inventory},
            headers=operator.headers,
        )
        assert r.status_code == 201, (inventory, r.text)


@pytest.mark.parametrize(
    ("playbook", "line", "variable"),
    [
        (
            "- hosts: all\n  become: true\n  vars:\n    ansible_become_password: Hunter2-secret\n"
            "  tasks: []\n",
            4,
            "ansible_become_password",
        ),
        (
            "- hosts: all\n  tasks:\n    - ping:\n      vars:\n        ansible_become_pass: Hunter2-secret\n",
            5,
            "ansible_become_pass",
        ),
        ("- hosts: all\n  tasks:\n    - set_fact:\n        ansible_ssh_pass: 1234\n", 4, "ansible_ssh_pass"),
        (
            "- hosts: all\n  vars:\n    pw: Hunter2-secret\n  tasks:\n    - set_fact:\n"
            "        ansible_become_password: '{{ pw }}'\n",
            6,
            "ansible_become_password",
        ),
    ],
)
async def test_a_password_written_in_clear_in_a_playbook_is_refused(
    client: httpx.AsyncClient, operator: LoggedIn, playbook: str, line: int, variable: str
) -> None:
    """The playbook is stored and shown as written like the inventory: a password variable with a
    value written out anywhere in it (a play's or a task's `vars`, `set_fact`) is a syntax problem
    at its line, on save and on a test run, never repeating the value; the accepted forms pass."""
    r = await client.post(
        "/api/v1/scripts",
        json={"name": "clear-pb", "script_type": "ansible", "content": playbook},
        headers=operator.headers,
    )
    assert r.status_code == 422, r.text
    error = r.json()["errors"][0]
    assert error["field"] == "content" and error["line"] == line, r.text
    assert f"{variable} holds a password in clear" in error["message"], r.text
    assert "Hunter2" not in r.text and "1234" not in r.text, r.text
    script_id = await make_script(client, operator, "- hosts: all\n  tasks: []\n", script_type="ansible")
    r = await client.post(
        f"/api/v1/scripts/{script_id}/test-runs", json={"content": playbook}, headers=operator.headers
    )
    assert r.status_code == 422 and "holds a password in clear" in r.text and "Hunter2" not in r.text, r.text
    accepted = (
        "- hosts: all\n  become: true\n  become_user: postgres\n  become_method: su\n  vars:\n"
        "    ansible_become_password: \"{{ lookup('env', 'DB_PASS') }}\"\n    ansible_password:\n"
        f"    ansible_ssh_pass: {VAULTED}  tasks: []\n"
    )
    r = await client.put(f"/api/v1/scripts/{script_id}", json={"content": accepted}, headers=operator.headers)
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("runner_name", ["local"], indirect=True)
async def test_a_become_password_per_host_as_a_vault_value_escalates_too(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str, become_host: BecomeHost
) -> None:
    """Hosts whose passwords differ: `ansible_become_password` per host as a `!vault` value of a
    YAML inventory, decrypted with the file secret `ANSIBLE_VAULT_PASSWORD_FILE`."""
    from ansible.parsing.vault import VaultLib, VaultSecret

    vault_password = f"vault-{secrets.token_hex(8)}"
    vaulted = VaultLib([("default", VaultSecret(vault_password.encode()))]).encrypt(become_host.password)
    inventory = (
        f"targets:\n  hosts:\n    testhost:\n      ansible_host: {become_host.address}\n"
        "      ansible_python_interpreter: /usr/bin/python3\n      ansible_become_password: !vault |\n"
        + "".join(f"        {line}\n" for line in vaulted.decode().splitlines())
    )
    script_id = await _become_script(client, operator, become_host, "ops", runner_name)
    r = await client.put(
        f"/api/v1/scripts/{script_id}", json={"inventory": inventory}, headers=operator.headers
    )
    assert r.status_code == 200, r.text
    vault_id = await ssh_tests._file_secret(client, operator, "ANSIBLE_VAULT_PASSWORD_FILE", vault_password)
    await _attach(client, operator, script_id, vault_id)
    final, text = await _run(client, operator, script_id, runner_name)
    assert final["status"] == "success", text
    assert "tasks run as root" in text and become_host.password not in text, text
    assert become_host.owner_and_content(ROOT_FILE) == ("root", "written by opscraft\n")
