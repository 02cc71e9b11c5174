"""Ansible settings of a script (inventory, SSH credential) and run options: checked at the door."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.conftest import LoggedIn

PLAYBOOK = "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=hi\n"
INI = "[web]\nweb1 ansible_host=192.0.2.10\n\n[web:vars]\nhttp_port=8080\n"
YAML = "all:\n  children:\n    db:\n      hosts:\n        db1:\n          ansible_host: 192.0.2.11\n"


@pytest.fixture
def backend() -> str:
    """The rules are the services' own, not the database's (and ansible-inventory is slow): SQLite."""
    return "sqlite"


async def _create(client: httpx.AsyncClient, who: LoggedIn, **fields: Any) -> httpx.Response:
    body = {
        "name": f"a-{time.monotonic_ns()}",
        "script_type": "ansible",
        "content": PLAYBOOK,
        "status": "active",
        **fields,
    }
    return await client.post("/api/v1/scripts", json=body, headers=who.headers)


@pytest.mark.parametrize("inventory", [INI, YAML])
async def test_ini_and_yaml_inventories_are_kept_and_versioned(
    client: httpx.AsyncClient, operator: LoggedIn, inventory: str
) -> None:
    r = await _create(client, operator, inventory=inventory, ssh_user="deploy")
    assert r.status_code == 201, r.text
    script = r.json()
    assert script["inventory"] == inventory and script["ssh_user"] == "deploy"
    r = await client.put(
        f"/api/v1/scripts/{script['id']}", json={"inventory": None}, headers=operator.headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["inventory"] is None and r.json()["current_version"] == 2
    r = await client.get(f"/api/v1/scripts/{script['id']}/versions/1", headers=operator.headers)
    assert r.json()["run_settings"]["inventory"] == inventory


@pytest.mark.parametrize(
    ("inventory", "message"),
    [
        ("plugin: constructed\ncompose:\n  x: lookup('pipe', 'id')\n", "plugin"),
        ("plugin: ansible.builtin.script\n", "plugin"),
        ("all:\n  hosts: [1, 2\n", "not a valid INI or YAML inventory: line 2: YAML parsing failed"),
        ("[web\nweb1\n", "line 1: the group header [web has no closing ']'"),
        ("a\x00b", "NUL"),
    ],
)
async def test_inventory_that_is_not_data_or_does_not_parse_is_refused(
    client: httpx.AsyncClient, operator: LoggedIn, inventory: str, message: str
) -> None:
    r = await _create(client, operator, inventory=inventory)
    assert r.status_code == 422, r.text
    assert message in r.json()["detail"]
    assert any(e["field"] == "inventory" for e in r.json()["errors"])


async def test_ansible_settings_are_for_ansible_scripts_and_the_key_is_a_file_secret(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    r = await _create(client, operator, script_type="bash", content="echo hi\n", inventory=INI)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "inventory"
    r = await _create(client, operator, inventory=INI, ssh_key_secret="MISSING")
    assert r.status_code == 422 and "no such secret" in r.json()["detail"]
    r = await client.post(
        "/api/v1/secrets", json={"name": "ENV_KEY", "value": "abcd"}, headers=operator.headers
    )
    assert r.status_code == 201
    r = await _create(client, operator, inventory=INI, ssh_key_secret="ENV_KEY")
    assert r.status_code == 422 and "kind file" in r.json()["detail"]
    r = await _create(client, operator, inventory=INI, ssh_user="-oProxyCommand=x")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "ssh_user"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"limit": "-i /etc/passwd"}, "run_options.limit"),
        ({"limit": "--module-path=/tmp"}, "run_options.limit"),
        ({"limit": "@/etc/hosts"}, "run_options.limit"),
        ({"limit": "web {{ lookup('pipe','id') }}"}, "run_options.limit"),
        ({"limit": "a;b"}, "run_options.limit"),
        ({"tags": ["-x"]}, "run_options.tags"),
        ({"skip_tags": ["a b"]}, "run_options.skip_tags"),
        ({"tags": ["ok", "{{ x }}"]}, "run_options.tags"),
        ({"tags": [":x"]}, "run_options.tags"),
        ({"tags": ["zero\u200bwidth"]}, "run_options.tags"),
        ({"skip_tags": ["t" * 65]}, "run_options.skip_tags"),  # named by the list a form shows
        # A blank item of a list: no tag at all (it was dropped without a word, the schema's
        # pattern refusing it).
        ({"tags": [""]}, "run_options.tags"),
        ({"skip_tags": ["db", "  "]}, "run_options.skip_tags"),
    ],
)
async def test_run_options_that_could_become_options_or_code_are_refused(
    client: httpx.AsyncClient, operator: LoggedIn, options: dict[str, Any], field: str
) -> None:
    script_id = (await _create(client, operator)).json()["id"]
    r = await client.post(
        "/api/v1/executions",
        json={"script_id": script_id, "run_options": options, "runner": "local"},
        headers=operator.headers,
    )
    assert r.status_code == 422, r.text
    assert field in r.text
    r = await client.get("/api/v1/executions", headers=operator.headers)
    assert r.json()["total"] == 0  # nothing stored


async def test_too_many_tags_say_how_many_are_allowed_in_plain_words(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    script_id = (await _create(client, operator)).json()["id"]
    r = await client.post(
        "/api/v1/executions",
        json={"script_id": script_id, "run_options": {"tags": [f"t{i}" for i in range(1000)]}},
        headers=operator.headers,
    )
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["run_options.tags"]
    assert "at most 50 items" in r.text and "after validation" not in r.text


async def test_run_options_are_for_ansible_scripts(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    r = await _create(client, operator, script_type="bash", content="echo hi\n")
    r = await client.post(
        "/api/v1/executions",
        json={"script_id": r.json()["id"], "run_options": {"check": True}, "runner": "local"},
        headers=operator.headers,
    )
    assert r.status_code == 422 and "only to ansible scripts" in r.json()["detail"]


ACCEPTED_LIMITS = [
    "::1", "fe80::1", "fe80::[1:3]", "[fe80::1]:22", "0:0:0:0:0:0:0:1", "web,!fe80::1",
    "all,!::1", "2001:db8::1,web", "web:&db:!web3", "web[0:2]", "host:22", "~(web|db)", "web,",
]  # fmt: skip


@pytest.mark.parametrize("limit", ACCEPTED_LIMITS)
def test_an_accepted_limit_is_cut_by_ansible_into_the_patterns_written(limit: str) -> None:
    """The installed Ansible's own splitter keeps every IPv6 address whole and leaves no bare
    '!' or '&' in what the rule accepts."""
    from ansible.inventory.manager import split_host_pattern

    from opscraft.execution import ansible_options

    assert ansible_options.normalize({"limit": limit}) == {"limit": limit}
    pieces = split_host_pattern(limit)
    assert all(piece.lstrip("!&") for piece in pieces), pieces
    written = [piece.strip() for piece in limit.split(",") if piece.strip()] if "," in limit else None
    if written is not None or "::" in limit or limit.count(":") == 7:
        assert pieces == (written or [limit]), pieces


@pytest.mark.parametrize(
    ("limit", "meant", "says"),
    [
        ("web:!fe80::1", ["web", "!fe80::1"], "IPv6"),  # Ansible: web, !fe80, 1: fe80::1 not excluded
        ("web:!::1", ["web", "!::1"], "IPv6"),  # Ansible: web, !, 1: a traceback
        ("!::1", ["!::1"], "IPv6"),
        ("web:!0:0:0:0:0:0:0:1", ["web", "!0:0:0:0:0:0:0:1"], "IPv6"),
        ("web:::ffff:192.0.2.1", ["web", "::ffff:192.0.2.1"], "IPv6"),
        ("web,!", ["web", "!"], "followed by a host or group"),  # a traceback
        ("web:&", ["web", "&"], "followed by a host or group"),
    ],
)
async def test_a_limit_ansible_would_cut_otherwise_is_refused_saying_how_to_write_it(
    client: httpx.AsyncClient, operator: LoggedIn, limit: str, meant: list[str], says: str
) -> None:
    from ansible.inventory.manager import split_host_pattern

    pieces = split_host_pattern(limit)  # what the installed Ansible would target
    assert pieces != meant or not all(piece.lstrip("!&") for piece in pieces), pieces
    script_id = (await _create(client, operator)).json()["id"]
    r = await client.post(
        "/api/v1/executions",
        json={"script_id": script_id, "run_options": {"limit": limit}, "runner": "local"},
        headers=operator.headers,
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "run_options.limit" and says in r.json()["detail"], r.text
    r = await client.get("/api/v1/executions", headers=operator.headers)
    assert r.json()["total"] == 0  # nothing stored


def test_options_become_single_argv_items() -> None:
    from opscraft.execution import ansible_options

    argv = ansible_options.argv(
        {"limit": "web:&prod:!web3", "tags": "a, b", "skip_tags": ["c"], "check": True, "diff": True}
    )
    assert argv == ["--limit=web:&prod:!web3", "--tags=a,b", "--skip-tags=c", "--check", "--diff"]


async def test_changing_the_type_away_from_ansible_drops_its_settings(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """The editor sends no Ansible settings for a bash script (their fields are hidden), so the
    stored inventory made every such save a 422 "inventory applies only to ansible scripts"
    under a hidden field: an Ansible script with an inventory could never change type. The
    stored settings go with the type; settings sent with another type are still refused."""
    r = await _create(client, operator, inventory=INI, ssh_user="deploy")
    assert r.status_code == 201, r.text
    script_id = r.json()["id"]
    body = {"script_type": "bash", "content": "echo hi\n", "base_version": 1}
    r = await client.put(f"/api/v1/scripts/{script_id}", json=body, headers=operator.headers)
    assert r.status_code == 200, r.text
    assert (r.json()["script_type"], r.json()["inventory"], r.json()["ssh_user"]) == ("bash", None, None)
    r = await client.get(f"/api/v1/scripts/{script_id}/versions/1", headers=operator.headers)
    assert r.json()["run_settings"]["inventory"] == INI  # the Ansible version keeps them

    r = await client.put(f"/api/v1/scripts/{script_id}", json={"ssh_user": "x"}, headers=operator.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "ssh_user", r.text
    body = {"script_type": "python", "content": "print(1)\n", "inventory": INI}
    r = await client.put(f"/api/v1/scripts/{script_id}", json=body, headers=operator.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "inventory", r.text
