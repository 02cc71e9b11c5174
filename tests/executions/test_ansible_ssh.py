"""Ansible over real SSH: a real `sshd` (Debian's openssh-server) as the test host.

The test host is this machine's sshd, started by the test on a free port, listening on loopback
for the local runner and on the Docker bridge's gateway address for the Docker runner (the run
has network enabled; the bridge is local to the machine): no traffic leaves the machine. The
run logs in with a key kept in the vault as a `file` secret, as the user running the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from opscraft.execution import commands, ssh_keys
from opscraft.services import secrets
from tests.conftest import LoggedIn, free_port, require_service
from tests.executions.conftest import make_script, output, start, wait_for

SSHD = "/usr/sbin/sshd"
DOCKER_GATEWAY = "172.17.0.1"
PLAYBOOK = """- hosts: targets
  gather_facts: false
  tasks:
    - name: write the marker file
      copy:
        dest: "{{ marker }}"
        content: "configured by opscraft\\n"
        mode: "0644"
"""


@pytest.fixture
def backend() -> str:
    """SSH does not depend on the database: SQLite."""
    return "sqlite"


@dataclass(frozen=True)
class SshHost:
    address: str
    port: int
    user: str
    key: str  # the private key authorized on the host
    wrong_key: str  # a private key it does not know
    host_key: str  # the host's public key (`type base64 comment`), as a known_hosts entry holds it
    marker: Path  # the file the playbook writes on the host
    pid: int  # the listening sshd (its sessions are its children)


def _keypair(folder: Path, name: str) -> str:
    path = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.read_text()


def _wait_listening(address: str, port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"sshd ended: {proc.stderr.read().decode() if proc.stderr else ''}")
        try:
            with socket.create_connection((address, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise AssertionError(f"sshd is not listening on {address}:{port}") from None
            time.sleep(0.05)


class SshHosts:
    """The module's test hosts: one `sshd` per listening address, started when a test first asks
    for it, stopped at the module's end (`stop`). One host serves the module's tests of its
    runner: its port and marker path, and so the script's inventory text, are the same from test
    to test, whose check `ansible-inventory` (two processes, about 0.4 s of CPU each) answers
    once per text (`services/inventories.py` keeps its answers); a host per test made each test
    pay that check, its three `ssh-keygen` and its `sshd`'s start."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.hosts: dict[str, tuple[SshHost, subprocess.Popen[bytes]]] = {}

    def get(self, address: str) -> SshHost:
        """The host listening on `address`, started at the first call (AssertionError when its
        `sshd` has ended since)."""
        if address not in self.hosts:
            self.hosts[address] = self._start(address)
        host, proc = self.hosts[address]
        assert proc.poll() is None, f"the test host's sshd on {address} ended: {proc.returncode}"
        return host

    def _start(self, address: str) -> tuple[SshHost, subprocess.Popen[bytes]]:
        folder = self.folder / f"sshd-{address}"
        folder.mkdir()
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(folder / "host_key")], check=True
        )
        key = _keypair(folder, "client")
        wrong = _keypair(folder, "stranger")
        (folder / "authorized_keys").write_text((folder / "client.pub").read_text())
        port = free_port()
        config = folder / "sshd_config"
        config.write_text(
            f"Port {port}\nListenAddress {address}\nHostKey {folder / 'host_key'}\n"
            f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPidFile {folder / 'sshd.pid'}\n"
            "PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n"
            "PermitRootLogin prohibit-password\nPubkeyAuthentication yes\n"
            "Subsystem sftp internal-sftp\n"
        )
        Path("/run/sshd").mkdir(exist_ok=True)  # privilege separation directory (when root)
        proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stderr=subprocess.PIPE)
        try:
            _wait_listening(address, port, proc)
        except BaseException:
            proc.kill()
            proc.wait(10)
            raise
        marker = folder / "host-files" / "motd"
        marker.parent.mkdir()
        marker.parent.chmod(0o777)
        host_key = (folder / "host_key.pub").read_text()
        return SshHost(address, port, getpass.getuser(), key, wrong, host_key, marker, proc.pid), proc

    def stop(self) -> None:
        """Stop every host's `sshd`."""
        for _, proc in self.hosts.values():
            proc.terminate()
            proc.wait(10)


@pytest.fixture(scope="module")
def _ssh_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshHosts]:
    require_service(os.access(SSHD, os.X_OK), "sshd (Debian's openssh-server)")
    hosts = SshHosts(tmp_path_factory.mktemp("ssh-hosts"))
    try:
        yield hosts
    finally:
        hosts.stop()


@pytest.fixture
def ssh_host(runner_name: str, _ssh_hosts: SshHosts) -> SshHost:
    """The module's host for the runner (on the Docker bridge's gateway for the Docker runner,
    on loopback for the local one) without the marker an earlier test's runs wrote: each test
    sees only what its own runs did. Each run logs in afresh (its HOME, where ssh keeps its
    shared connections, is its own)."""
    host = _ssh_hosts.get(DOCKER_GATEWAY if runner_name == "docker" else "127.0.0.1")
    host.marker.unlink(missing_ok=True)
    return host


async def _file_secret(client: httpx.AsyncClient, who: LoggedIn, name: str, value: str) -> int:
    r = await client.post(
        "/api/v1/secrets", json={"name": name, "value": value, "kind": "file"}, headers=who.headers
    )
    assert r.status_code == 201, r.text
    assert r.json()["kind"] == "file"
    return int(r.json()["id"])


async def _ssh_script(
    client: httpx.AsyncClient,
    who: LoggedIn,
    host: SshHost,
    runner: str,
    playbook: str = PLAYBOOK,
    **fields: object,
) -> tuple[int, int]:
    secret_id = await _file_secret(client, who, "DEPLOY_KEY", host.key)
    inventory = (
        f"[targets]\ntesthost ansible_host={host.address} ansible_port={host.port}\n\n"
        f"[targets:vars]\nmarker={host.marker}\n"
        # A host variable: this machine's PATH may lead discovery to a broken shim (pyenv).
        "ansible_python_interpreter=/usr/bin/python3\n"
    )
    script_id = await make_script(
        client,
        who,
        playbook,
        script_type="ansible",
        inventory=inventory,
        ssh_user=host.user,
        ssh_key_secret="DEPLOY_KEY",
        network_enabled=runner == "docker",
        **fields,
    )
    r = await client.post(f"/api/v1/scripts/{script_id}/secrets/{secret_id}", headers=who.headers)
    assert r.status_code == 201, r.text
    return script_id, secret_id


async def _run(
    client: httpx.AsyncClient, who: LoggedIn, script_id: int, runner: str, **body: object
) -> tuple[dict, str]:
    started = await start(client, who, script_id, runner, parameters={}, **body)
    final = await wait_for(client, who, started["id"], timeout=180)
    return final, await output(client, who, started["id"])


NAMED_CONNECTION = PLAYBOOK.replace(
    "  gather_facts: false\n", "  connection: ansible.builtin.ssh\n  gather_facts: false\n"
)


@pytest.mark.parametrize("runner_name", ["docker", "local"], indirect=True)
async def test_playbook_configures_a_host_over_ssh_then_check_reports_no_change(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str, ssh_host: SshHost
) -> None:
    """A playbook naming its connection by its full name, `connection: ansible.builtin.ssh`,
    gets OpsCraft's guarded ssh connection too (`execution.ssh_guard`,
    tests/executions/test_ssh_guard.py), which logs in, copies and runs; `--check --diff` then
    reports no change, and the change a drift would need without making it. (The playbooks of
    the module's other tests leave the connection unnamed: the first run of
    test_known_hosts_let_the_right_host_key_in_and_refuse_a_changed_one configures the host
    with one on each runner. The named connection had a test of its own, one more Ansible run
    per runner.)"""
    assert NAMED_CONNECTION != PLAYBOOK
    script_id, _ = await _ssh_script(client, operator, ssh_host, runner_name, NAMED_CONNECTION)

    final, text = await _run(client, operator, script_id, runner_name)
    assert final["status"] == "success", text
    assert ssh_host.marker.read_text() == "configured by opscraft\n"
    assert "changed=1" in text and "unreachable=0" in text, text
    # The key is masked line by line wherever it would appear; it never does here.
    assert ssh_host.key.splitlines()[1] not in text

    final, text = await _run(
        client, operator, script_id, runner_name, run_options={"check": True, "diff": True}
    )
    assert final["status"] == "success", text
    assert final["run_options"] == {"check": True, "diff": True}
    assert "changed=0" in text and "ok=1" in text, text

    ssh_host.marker.write_text("drifted\n")
    final, text = await _run(
        client, operator, script_id, runner_name, run_options={"check": True, "diff": True}
    )
    assert final["status"] == "success", text
    assert "changed=1" in text and "+configured by opscraft" in text, text
    assert ssh_host.marker.read_text() == "drifted\n"  # --check changed nothing


@pytest.mark.parametrize("runner_name", ["docker", "local"], indirect=True)
async def test_wrong_key_fails_with_ansibles_unreachable_message(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str, ssh_host: SshHost
) -> None:
    script_id, secret_id = await _ssh_script(client, operator, ssh_host, runner_name)
    r = await client.put(
        f"/api/v1/secrets/{secret_id}", json={"value": ssh_host.wrong_key}, headers=operator.headers
    )
    assert r.status_code == 200, r.text
    final, text = await _run(client, operator, script_id, runner_name)
    assert final["status"] == "failed", text
    assert "UNREACHABLE!" in text and "Permission denied" in text, text
    # What Ansible's code 4 means here, from its PLAY RECAP, not only the number.
    assert final["error_message"] == "the script exited with code 4: unreachable: testhost (1 of 1 host)"
    assert not ssh_host.marker.exists()


@pytest.mark.parametrize("runner_name", ["docker", "local"], indirect=True)
async def test_known_hosts_let_the_right_host_key_in_and_refuse_a_changed_one(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str, ssh_host: SshHost, tmp_path: Path
) -> None:
    """With an `SSH_KNOWN_HOSTS` file secret attached every host key is checked against it
    (docs/executions.md, *Ansible against real hosts*): the host's own key logs in; after the
    host's key changed, ssh refuses it and the host is unreachable, with ssh's own warning."""
    script_id, _ = await _ssh_script(client, operator, ssh_host, runner_name)
    entry = f"[{ssh_host.address}]:{ssh_host.port} "
    known = entry + ssh_host.host_key
    known_id = await _file_secret(client, operator, "SSH_KNOWN_HOSTS", known)
    r = await client.post(f"/api/v1/scripts/{script_id}/secrets/{known_id}", headers=operator.headers)
    assert r.status_code == 201, r.text
    final, text = await _run(client, operator, script_id, runner_name)
    assert final["status"] == "success", text
    assert ssh_host.marker.read_text() == "configured by opscraft\n"

    ssh_host.marker.unlink()
    other = _keygen(tmp_path, "-t", "ed25519", "-N", "")  # the key an impostor answers with
    r = await client.put(
        f"/api/v1/secrets/{known_id}",
        json={"value": entry + Path(f"{other}.pub").read_text()},
        headers=operator.headers,
    )
    assert r.status_code == 200, r.text
    final, text = await _run(client, operator, script_id, runner_name)
    assert final["status"] == "failed", text
    assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in text and "Host key verification failed" in text
    assert final["error_message"] == "the script exited with code 4: unreachable: testhost (1 of 1 host)"
    assert not ssh_host.marker.exists()


@pytest.mark.parametrize("runner_name", ["local"], indirect=True)
async def test_limit_and_tags_select_hosts_and_tasks(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str, ssh_host: SshHost
) -> None:
    script_id, _ = await _ssh_script(client, operator, ssh_host, runner_name)
    final, text = await _run(client, operator, script_id, runner_name, run_options={"limit": "nosuchhost"})
    assert final["status"] == "failed", text
    assert "Specified inventory, host pattern and/or --limit leaves us with no hosts" in text, text
    final, text = await _run(
        client, operator, script_id, runner_name, run_options={"limit": "targets", "tags": ["other"]}
    )
    assert final["status"] == "success", text
    assert "TASK [" not in text and not ssh_host.marker.exists(), text


@pytest.mark.parametrize("runner_name", ["local"], indirect=True)
async def test_tags_of_any_script_and_with_a_colon_select_their_tasks(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str, ssh_host: SshHost
) -> None:
    """A playbook's `déploiement` and `role:nginx` tags were refused as run options (ASCII
    letters, digits, '_', '.', '-' only), though Ansible selects them as written."""
    playbook = PLAYBOOK.replace(
        '        mode: "0644"\n', '        mode: "0644"\n      tags: [déploiement]\n'
    ) + (
        "    - name: never selected here\n      fail:\n        msg: not this one\n      tags: [other]\n"
        "    - name: the nginx role's task\n      debug:\n        msg: nginx configured\n"
        '      tags: ["role:nginx"]\n'
    )
    script_id, _ = await _ssh_script(client, operator, ssh_host, runner_name, playbook=playbook)
    final, text = await _run(
        client, operator, script_id, runner_name, run_options={"tags": ["déploiement", "role:nginx"]}
    )
    assert final["status"] == "success", text
    assert final["run_options"] == {"tags": ["déploiement", "role:nginx"]}
    assert ssh_host.marker.read_text() == "configured by opscraft\n" and "nginx configured" in text, text
    assert "not this one" not in text, text
    final, text = await _run(
        client, operator, script_id, runner_name, run_options={"skip_tags": ["déploiement"]}
    )
    assert final["status"] == "failed" and "not this one" in text, text  # the others ran


@pytest.mark.parametrize("runner_name", ["local"], indirect=True)
async def test_a_limit_excluding_an_ipv6_host_runs_without_it_and_the_colon_form_is_refused(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str, ssh_host: SshHost
) -> None:
    """`targets:!fe80::1` reached Ansible, which cut it at every ':' (`targets`, `!fe80`, `1`) and
    ran on fe80::1 anyway; written with ',' the host is excluded."""
    script_id, _ = await _ssh_script(client, operator, ssh_host, runner_name)
    script = (await client.get(f"/api/v1/scripts/{script_id}", headers=operator.headers)).json()
    inventory = script["inventory"].replace("\n\n", "\nfe80::1 ansible_port=9\n\n", 1)  # never reached
    r = await client.put(
        f"/api/v1/scripts/{script_id}", json={"inventory": inventory}, headers=operator.headers
    )
    assert r.status_code == 200, r.text
    r = await client.post(
        "/api/v1/executions",
        json={"script_id": script_id, "run_options": {"limit": "targets:!fe80::1"}, "runner": runner_name},
        headers=operator.headers,
    )
    assert r.status_code == 422 and "separate the patterns with ','" in r.json()["detail"], r.text

    final, text = await _run(
        client, operator, script_id, runner_name, run_options={"limit": "targets,!fe80::1"}
    )
    assert final["status"] == "success", text
    assert "fe80::1" not in text and "testhost" in text, text
    assert ssh_host.marker.read_text() == "configured by opscraft\n"

    final, text = await _run(client, operator, script_id, runner_name)  # no limit: fe80::1 is tried
    assert final["status"] == "failed" and "fe80::1" in text and "UNREACHABLE!" in text, text


@pytest.mark.parametrize("runner_name", ["docker", "local"], indirect=True)
async def test_a_run_failing_on_some_hosts_of_many_names_them_from_the_play_recap(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str, ssh_host: SshHost
) -> None:
    """The message said "a task failed on at least one host (the PLAY RECAP says which)": with
    many hosts, which ones failed and which were unreachable is now in it."""
    playbook = PLAYBOOK.replace(
        "  tasks:\n",
        "  tasks:\n    - fail:\n        msg: refused here\n      when: fail_me | default(false) | bool\n",
    )
    script_id, _ = await _ssh_script(client, operator, ssh_host, runner_name, playbook=playbook)
    script = (await client.get(f"/api/v1/scripts/{script_id}", headers=operator.headers)).json()
    odd = "ünïcode-host-with-a-name-longer-than-the-recap-column"
    hosts = (
        f"{odd} ansible_host={ssh_host.address} ansible_port={ssh_host.port} fail_me=true\n"
        "fe80::1 ansible_port=9\n"  # nothing listens: unreachable
    )
    inventory = script["inventory"].replace("\n\n", f"\n{hosts}\n", 1)
    r = await client.put(
        f"/api/v1/scripts/{script_id}", json={"inventory": inventory}, headers=operator.headers
    )
    assert r.status_code == 200, r.text

    final, text = await _run(client, operator, script_id, runner_name)
    assert final["status"] == "failed", text
    assert "PLAY RECAP" in text and "testhost" in text, text
    assert final["error_message"] == (
        f"the script exited with code 4: a task failed on {odd}; unreachable: fe80::1 (2 of 3 hosts)"
    ), text
    assert ssh_host.marker.read_text() == "configured by opscraft\n"  # the good host went on
    # The per-host summary: the failed and unreachable hosts first, then the recap's order.
    zero = dict.fromkeys(("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored"), 0)
    summary = final["host_summary"]
    assert summary["note"] is None and summary["host_count"] == 3, text
    assert summary["hosts"] == [
        {**zero, "host": "fe80::1", "unreachable": 1, "skipped": 1},
        {**zero, "host": odd, "failed": 1},
        {**zero, "host": "testhost", "ok": 1, "changed": 1, "skipped": 1},
    ], text
    assert summary["totals"] == {**zero, "ok": 1, "changed": 1, "unreachable": 1, "failed": 1, "skipped": 2}

    r = await client.put(
        f"/api/v1/scripts/{script_id}",
        json={"inventory": inventory.replace("fe80::1 ansible_port=9\n", "")},
        headers=operator.headers,
    )
    assert r.status_code == 200, r.text
    final, text = await _run(client, operator, script_id, runner_name)
    assert (
        final["error_message"] == f"the script exited with code 2: a task failed on {odd} (1 of 2 hosts)"
    ), text


@pytest.mark.parametrize("runner_name", ["local"], indirect=True)
async def test_a_shared_inventory_reaches_the_host_over_ssh(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str, ssh_host: SshHost
) -> None:
    """The hosts come from a shared inventory (`inventory_id`) instead of the script's own text."""
    script_id, _ = await _ssh_script(client, operator, ssh_host, runner_name)
    script = (await client.get(f"/api/v1/scripts/{script_id}", headers=operator.headers)).json()
    r = await client.post(
        "/api/v1/inventories",
        json={"name": "ssh-targets", "content": script["inventory"]},
        headers=operator.headers,
    )
    assert r.status_code == 201, r.text
    inventory_id = r.json()["id"]
    r = await client.put(
        f"/api/v1/scripts/{script_id}",
        json={"inventory": None, "inventory_id": inventory_id},
        headers=operator.headers,
    )
    assert r.status_code == 200, r.text
    final, text = await _run(client, operator, script_id, runner_name)
    assert final["status"] == "success", text
    assert final["inventory_id"] == inventory_id
    assert ssh_host.marker.read_text() == "configured by opscraft\n"
    assert "changed=1" in text and "unreachable=0" in text, text


@pytest.mark.parametrize("runner_name", ["local"], indirect=True)
@pytest.mark.parametrize(
    "pasted",
    [
        pytest.param(lambda key: key.rstrip("\n"), id="no-final-newline"),
        pytest.param(lambda key: "\n" + key.replace("\n", "\r\n") + "  \r\n", id="crlf-and-blank-edges"),
        pytest.param(
            lambda key: "\ufeff" + key.replace("\n", "\r\n"), id="windows-file-with-byte-order-mark"
        ),
        pytest.param(
            lambda key: "".join(f"  {line}\r\n\r\n" for line in key.splitlines()), id="indented-double-spaced"
        ),
    ],
)
async def test_a_private_key_pasted_without_its_final_newline_still_logs_in(
    client: httpx.AsyncClient,
    operator: LoggedIn,
    runner_name: str,
    ssh_host: SshHost,
    pasted: Callable[[str], str],
) -> None:
    """A key copied from a terminal or a Windows editor: OpenSSH refuses an OpenSSH-format key
    without its final line break, with CRLF line endings or after a blank line, and any key
    indented (a YAML block) or double-spaced (`Load key: error in libcrypto`, then `Permission
    denied`). A `file` secret holding a PEM/OpenSSH
    private key is stored with LF line endings and one final line break."""
    script_id, secret_id = await _ssh_script(client, operator, ssh_host, runner_name)
    r = await client.put(
        f"/api/v1/secrets/{secret_id}", json={"value": pasted(ssh_host.key)}, headers=operator.headers
    )
    assert r.status_code == 200, r.text
    final, text = await _run(client, operator, script_id, runner_name)
    assert final["status"] == "success", text
    assert ssh_host.marker.read_text() == "configured by opscraft\n"


def _keygen(folder: Path, *args: str) -> Path:
    path = folder / f"key-{len(list(folder.iterdir()))}"
    subprocess.run(["ssh-keygen", "-q", *args, "-f", str(path)], check=True)
    return path


UNUSABLE_KEYS: dict[str, tuple[Callable[[Path], str], str]] = {
    "openssh-with-passphrase": (
        lambda d: _keygen(d, "-t", "ed25519", "-N", "a passphrase").read_text(),
        "is protected by a passphrase",
    ),
    "pem-with-passphrase": (
        lambda d: _keygen(d, "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "a passphrase").read_text(),
        "is protected by a passphrase",
    ),
    "pkcs8-with-passphrase": (
        lambda d: _keygen(d, "-t", "ecdsa", "-m", "PKCS8", "-N", "a passphrase").read_text(),
        "is protected by a passphrase",
    ),
    "public-key": (
        lambda d: Path(f"{_keygen(d, '-t', 'ed25519', '-N', '')}.pub").read_text(),
        "is a public key",
    ),
    "putty": (
        lambda d: "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: k\nPublic-Lines: 1\nAAAA\n",
        "PuTTY's .ppk format",
    ),
}


@pytest.mark.parametrize("kind", sorted(UNUSABLE_KEYS))
def test_a_key_ssh_cannot_use_unattended_is_named(tmp_path: Path, kind: str) -> None:
    make, said = UNUSABLE_KEYS[kind]
    problem = ssh_keys.key_problem(make(tmp_path))
    assert problem is not None and said in problem, problem


PASTES: dict[str, Callable[[str], str]] = {
    "crlf": lambda key: key.replace("\n", "\r\n"),
    "lone-cr": lambda key: key.replace("\n", "\r"),
    "indented": lambda key: "".join(f"    {line}\n" for line in key.splitlines()),
    "double-spaced": lambda key: key.replace("\n", "\n\n"),
    "trailing-blanks": lambda key: key.replace("\n", " \t\n").rstrip(),
}


KEY_KINDS = (("-t", "ed25519"), ("-t", "rsa", "-b", "2048"), ("-t", "rsa", "-b", "2048", "-m", "PEM"))


@pytest.fixture(scope="module")
def valid_keys(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, ...], Path]:
    """One unprotected key of each of `KEY_KINDS` for the module's paste tests (an RSA key's
    generation is a good part of a second of CPU; the tests only read them)."""
    folder = tmp_path_factory.mktemp("valid-keys")
    return {args: _keygen(folder, *args, "-N", "") for args in KEY_KINDS}


@pytest.mark.parametrize("paste", sorted(PASTES))
def test_a_valid_key_pasted_in_any_line_form_is_stored_as_ssh_reads_it(
    tmp_path: Path, paste: str, valid_keys: dict[tuple[str, ...], Path]
) -> None:
    """What a `file` secret stores for an ed25519 and RSA key (OpenSSH and PEM form), pasted
    with CRLF or lone CR line endings, indented (a YAML block, an email), double-spaced (a CRLF
    key read as two line breaks) or with blanks after each line: `ssh-keygen -y` reads the
    stored file as ssh does and derives the key's public half (indented, lone-CR and
    double-spaced PEM keys were stored as given: `Load key: error in libcrypto`)."""
    for args, path in valid_keys.items():
        stored = tmp_path / "stored"
        stored.write_text(secrets.file_content(PASTES[paste](path.read_text())))
        stored.chmod(0o600)
        derived = subprocess.run(
            ["ssh-keygen", "-y", "-f", str(stored)], capture_output=True, text=True, stdin=subprocess.DEVNULL
        )
        assert derived.returncode == 0, (args, derived.stderr)
        assert derived.stdout.split()[:2] == Path(f"{path}.pub").read_text().split()[:2], args


def test_a_key_without_a_passphrase_has_no_problem(
    tmp_path: Path, valid_keys: dict[tuple[str, ...], Path]
) -> None:
    ecdsa = ("-t", "ecdsa", "-m", "PKCS8")
    for args, path in (
        (KEY_KINDS[0], valid_keys[KEY_KINDS[0]]),
        (KEY_KINDS[2], valid_keys[KEY_KINDS[2]]),
        (ecdsa, _keygen(tmp_path, *ecdsa, "-N", "")),
    ):
        key = path.read_text()
        assert ssh_keys.key_problem(key) is None, args
        assert ssh_keys.key_problem("\ufeff" + key.replace("\n", "\r\n")) is None, args
    assert ssh_keys.key_problem("not a key at all") is None, "left to ssh to describe"


@pytest.mark.parametrize("runner_name", ["local"], indirect=True)
async def test_a_passphrase_protected_key_ends_the_run_saying_so(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str, ssh_host: SshHost, tmp_path: Path
) -> None:
    """ssh has nobody to type a passphrase in a run: the run failed with `Permission denied
    (publickey)`, as if the host had refused the key. It ends in `error` naming the secret and
    what to store instead, before ssh is started."""
    script_id, secret_id = await _ssh_script(client, operator, ssh_host, runner_name)
    key = UNUSABLE_KEYS["openssh-with-passphrase"][0](tmp_path)
    r = await client.put(f"/api/v1/secrets/{secret_id}", json={"value": key}, headers=operator.headers)
    assert r.status_code == 200, r.text
    final, text = await _run(client, operator, script_id, runner_name)
    assert final["status"] == "error", text
    assert final["error_message"].startswith("the SSH key secret DEPLOY_KEY is protected by a passphrase")
    assert "Permission denied" not in text and not ssh_host.marker.exists()


HANGING_TASK = """    - name: touch the marker, then wait
      shell: "touch {{ marker }} && sleep 600"
"""


def _descendants(pid: int) -> list[int]:
    """`pid` and every process under it (from /proc's parent ids)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


KEEPALIVE_SECONDS = 2  # OPSCRAFT_SSH_KEEPALIVE_SECONDS here: the default (15) makes 45 s to wait


@pytest.mark.parametrize("engine_settings", [{"OPSCRAFT_SSH_KEEPALIVE_SECONDS": KEEPALIVE_SECONDS}])
@pytest.mark.parametrize("runner_name", ["local"], indirect=True)
async def test_a_host_frozen_mid_task_is_unreachable_within_the_keepalive_not_at_the_runs_timeout(
    client: httpx.AsyncClient, operator: LoggedIn, runner_name: str, ssh_host: SshHost
) -> None:
    """The host's sshd freezes (SIGSTOP: its connections stay open, nothing answers) while a
    task runs on it. Before, ssh waited on the silent connection for as long as the kernel kept
    it (for ever: a frozen host's kernel still acknowledges), so the run waited for its own
    timeout (here 300 s). Now ssh's keepalives go unanswered and it gives up after
    `OPSCRAFT_SSH_KEEPALIVE_SECONDS` x `SSH_KEEPALIVE_COUNT`: Ansible says the host is
    unreachable and the run ends `failed`."""
    hanging = PLAYBOOK.split("    - name:")[0] + HANGING_TASK
    script_id, _ = await _ssh_script(client, operator, ssh_host, runner_name, hanging, timeout_seconds=300)
    started = await start(client, operator, script_id, runner_name, parameters={})
    deadline = time.monotonic() + 120
    while not ssh_host.marker.exists():  # the task runs on the host: the connection is up
        assert time.monotonic() < deadline, await output(client, operator, started["id"])
        await asyncio.sleep(0.1)
    frozen = _descendants(ssh_host.pid)
    try:
        for pid in frozen:  # a process listed may have ended since (sshd forks and reaps helpers)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        began = time.monotonic()
        bound = KEEPALIVE_SECONDS * commands.SSH_KEEPALIVE_COUNT
        final = await wait_for(client, operator, started["id"], timeout=bound + 60)
        took = time.monotonic() - began
    finally:
        for pid in frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        for pid in _descendants(ssh_host.pid)[1:]:  # the session and its `sleep 600`, not sshd
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    text = await output(client, operator, started["id"])
    assert final["status"] == "failed" and "UNREACHABLE!" in text, (final, text)
    assert took < bound + 45, took
