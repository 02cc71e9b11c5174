"""Shared inventories on SQLite and PostgreSQL: CRUD, names (409, also racing), content checked by
`ansible-inventory` (422 naming `content`), scripts that refer to one (`inventory_id`), and
deleting one that scripts use (409 naming them). Every change is audited."""

from __future__ import annotations

import asyncio
import hashlib
import time
from typing import Any

import httpx
import pytest

from opscraft import runtime
from opscraft.db.models import Role, User
from opscraft.services import inventories, inventory_ranges, shared_inventories
from opscraft.services.actor import Actor
from opscraft.services.errors import NotFound
from opscraft.services.linters import find_tool
from tests.conftest import IN_MODULE_LOOP, LoggedIn, Reader, make_user, require_service
from tests.linear_time import assert_linear

PATH = "/api/v1/inventories"
PLAYBOOK = "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=hi\n"
INI = "[web]\nweb1 ansible_host=192.0.2.10\n\n[web:vars]\nhttp_port=8080\n"
YAML = "all:\n  children:\n    db:\n      hosts:\n        db1:\n          ansible_host: 192.0.2.11\n"


def _name(prefix: str = "inv") -> str:
    return f"{prefix}-{time.monotonic_ns()}"


async def _inventory(client: httpx.AsyncClient, who: LoggedIn, **fields: Any) -> httpx.Response:
    body = {"name": _name(), "description": "web tier", "content": INI, **fields}
    return await client.post(PATH, json=body, headers=who.headers)


async def _script(client: httpx.AsyncClient, who: LoggedIn, **fields: Any) -> httpx.Response:
    body = {"name": _name("play"), "script_type": "ansible", "content": PLAYBOOK, "status": "active"}
    return await client.post("/api/v1/scripts", json={**body, **fields}, headers=who.headers)


async def _audit(client: httpx.AsyncClient, action: str) -> list[dict[str, Any]]:
    admin = await make_user(client, "admin")
    r = await client.get("/api/v1/audit", params={"action": action}, headers=admin.headers)
    assert r.status_code == 200, r.text
    return list(r.json()["items"])


@pytest.mark.parametrize("content", [INI, YAML])
async def test_create_read_update_delete(
    client: httpx.AsyncClient, operator: LoggedIn, viewer: LoggedIn, content: str
) -> None:
    r = await _inventory(client, operator, content=content)
    assert r.status_code == 201, r.text
    inv = r.json()
    assert inv["content"] == content and inv["used_by"] == []
    assert inv["content_sha256"] == hashlib.sha256(content.encode()).hexdigest()
    assert inv["created_by"] == operator.id
    r = await client.get(f"{PATH}/{inv['id']}", headers=viewer.headers)
    assert r.status_code == 200 and r.json()["name"] == inv["name"]
    assert inv["id"] in [i["id"] for i in (await client.get(PATH, headers=viewer.headers)).json()["items"]]
    other = YAML if content == INI else INI
    body = {"name": inv["name"] + "-b", "description": "", "content": other}
    r = await client.put(f"{PATH}/{inv['id']}", json=body, headers=operator.headers)
    assert r.status_code == 200, r.text
    assert r.json()["content"] == other and r.json()["name"] == body["name"]
    update = (await _audit(client, "inventory.update"))[0]
    assert update["target_id"] == str(inv["id"])
    assert update["details"]["fields"] == ["content", "description", "name"]
    assert update["details"]["content_sha256"] == hashlib.sha256(other.encode()).hexdigest()
    assert (await client.delete(f"{PATH}/{inv['id']}", headers=operator.headers)).status_code == 204
    assert (await client.get(f"{PATH}/{inv['id']}", headers=viewer.headers)).status_code == 404
    assert [e["target_id"] for e in await _audit(client, "inventory.create")] == [str(inv["id"])]
    assert (await _audit(client, "inventory.delete"))[0]["details"]["name"] == body["name"]


async def test_viewers_read_only(client: httpx.AsyncClient, operator: LoggedIn, viewer: LoggedIn) -> None:
    assert (await _inventory(client, viewer)).status_code == 403
    inv = (await _inventory(client, operator)).json()
    body = {"name": inv["name"], "content": YAML}
    assert (await client.put(f"{PATH}/{inv['id']}", json=body, headers=viewer.headers)).status_code == 403
    assert (await client.delete(f"{PATH}/{inv['id']}", headers=viewer.headers)).status_code == 403


async def test_a_name_in_use_is_409_on_create_and_update(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    first = (await _inventory(client, operator)).json()
    r = await _inventory(client, operator, name=first["name"])
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "name"
    other = (await _inventory(client, operator)).json()
    body = {"name": first["name"], "content": INI}
    r = await client.put(f"{PATH}/{other['id']}", json=body, headers=operator.headers)
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "name"
    assert (await client.get(f"{PATH}/{other['id']}", headers=operator.headers)).json()["name"] == other[
        "name"
    ]
    # Names differing only in case read as the same inventory in a list: taken too.
    r = await _inventory(client, operator, name=first["name"].upper())
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "name", r.text
    body = {"name": first["name"].upper(), "content": INI}
    r = await client.put(f"{PATH}/{other['id']}", json=body, headers=operator.headers)
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "name", r.text
    body = {"name": first["name"].upper(), "content": INI}  # its own name in another case: a rename
    r = await client.put(f"{PATH}/{first['id']}", json=body, headers=operator.headers)
    assert r.status_code == 200 and r.json()["name"] == first["name"].upper(), r.text


async def test_racing_creates_of_one_name_give_one_201_and_one_409(
    client: httpx.AsyncClient, operator: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both requests pass the service's "is it taken?" check (skipped here, as when they run at
    the same moment): the unique index decides, and the loser is a 409 naming `name`."""

    async def not_checked(*_args: Any, **_kwargs: Any) -> None:
        return None

    monkeypatch.setattr(shared_inventories, "_check_name_free", not_checked)
    name = _name()
    results = await asyncio.gather(*(_inventory(client, operator, name=name) for _ in range(2)))
    assert sorted(r.status_code for r in results) == [201, 409], [r.text for r in results]
    loser = next(r for r in results if r.status_code == 409)
    assert loser.json()["errors"][0]["field"] == "name"
    listed = [
        i for i in (await client.get(PATH, headers=operator.headers)).json()["items"] if i["name"] == name
    ]
    assert len(listed) == 1


async def test_saves_of_new_content_at_once_are_each_saved_or_told_to_reload(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """Two people (or tabs, or API clients) save new content at the same moment, without saying
    what they started from: on SQLite, which has no row lock, both read version n and all but
    one got a 409 naming `number` ("number: this value is already taken"), a field nobody sent.
    Each save is now kept as the next version or refused with what to do, naming `content` (as
    a stale `base_content_sha256` is); the versions stay numbered 1, 2, ... without a gap."""
    r = await _inventory(client, operator)
    assert r.status_code == 201, r.text
    url = f"{PATH}/{r.json()['id']}"
    contents = [f"[web]\nweb{i} ansible_host=192.0.2.{i}\n" for i in range(1, 5)]
    results = await asyncio.gather(
        *(client.put(url, json={"content": c}, headers=operator.headers) for c in contents)
    )
    saved = [r for r in results if r.status_code == 200]
    refused = [r for r in results if r.status_code != 200]
    message = "the inventory was changed at the same time: reload it and apply your change again"
    for r in refused:
        assert (r.status_code, r.json()["errors"]) == (
            409,
            [{"field": "content", "message": message}],
        ), r.text
    listed = (await client.get(f"{url}/versions", headers=operator.headers)).json()
    assert [v["number"] for v in listed["items"]] == list(range(len(saved) + 1, 0, -1))
    current = (await client.get(url, headers=operator.headers)).json()
    assert current["version"] == len(saved) + 1 and current["content"] in contents


@IN_MODULE_LOOP
@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"content": "plugin: constructed\ncompose:\n  x: lookup('pipe', 'id')\n"}, "content", "plugin"),
        ({"content": "plugin: constructed\nwhen: 0000-01-01\n"}, "content", "plugin"),  # a date YAML refuses
        ({"content": "all:\n  hosts: [1, 2\n"}, "content", "not a valid INI or YAML inventory"),
        ({"content": "[web\nweb1\n"}, "content", "not a valid INI or YAML inventory"),
        ({"content": "a\x00b"}, "content", "NUL"),
        # A shared inventory cannot be "left out (localhost)", as a script's own can.
        (
            {"content": "  \n"},
            "content",
            '"message":"must not be blank (only spaces, tabs and line breaks): write the hosts"}',
        ),
        ({"content": "x" * (64 * 1024 + 1)}, "content", "must be at most 64 KiB, not 65537 bytes"),
        ({"name": "-bad name"}, "name", "letters, digits"),
        ({"name": "x" * 129}, "name", "letters, digits"),
        ({"surprise": 1}, "surprise", ""),
    ],
)
async def test_bad_input_is_422_naming_the_field(
    reader: Reader, fields: dict[str, Any], field: str, message: str
) -> None:
    client, operator = reader.client, await reader.person(Role.operator)
    r = await _inventory(client, operator, **fields)
    assert r.status_code == 422, r.text
    assert message in r.text
    assert any(e["field"].endswith(field) for e in r.json()["errors"]), r.json()
    assert all(
        i["name"] != fields.get("name")
        for i in (await client.get(PATH, headers=operator.headers)).json()["items"]
    )


# A runtime of its own per test cost more than these checks: one test goes through them all.
IMPOSSIBLE_DATES = ["0000-01-01\n", "2026-12-01T18:00:00+25:00\n", "all:\n  vars: {d: 2026-02-30}\n"]
BYTE_ORDER_MARKS = ["\ufeff", "\u00ef\u00bb\u00bf"]


async def test_a_date_yaml_cannot_build_is_never_a_500(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    """A YAML date no calendar holds (year 0, an offset past 24 h, 30 February): PyYAML's
    `safe_load` raised ValueError, a 500 for a shared inventory and for a script's inventory.
    Only the syntax is read now: Ansible decides (a 201, or a 422 naming the field)."""
    for content in IMPOSSIBLE_DATES:
        r = await _inventory(client, operator, content=content)
        assert r.status_code in (201, 422), (content, r.text)
        if r.status_code == 422:
            assert [e["field"] for e in r.json()["errors"]] == ["content"], (content, r.text)
        script = {"name": f"p{abs(hash(content))}", "script_type": "ansible", "inventory": content}
        script["content"] = "- hosts: all\n  gather_facts: false\n  tasks: []\n"
        r = await client.post("/api/v1/scripts", json=script, headers=operator.headers)
        assert r.status_code in (201, 422), (content, r.text)
        if r.status_code == 422:
            assert "inventory" in [e["field"] for e in r.json()["errors"]], (content, r.text)


async def test_a_byte_order_mark_a_windows_editor_wrote_is_dropped(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """Ansible's INI parser read a leading BOM as part of `[web]` and refused the inventory with
    "host range must be begin:end or begin:end:step"; it is dropped, as from scripts (the BOM
    as UTF-8 read it, and as read as Latin-1)."""
    for bom in BYTE_ORDER_MARKS:
        r = await _inventory(client, operator, content=bom + INI)
        assert r.status_code == 201, (bom, r.text)
        assert r.json()["content"] == INI
        r = await _script(client, operator, inventory=bom + INI)
        assert r.status_code == 201, (bom, r.text)
        assert r.json()["inventory"] == INI


# Characters Ansible reads as line breaks (its INI reader's `str.splitlines`, YAML's NEL, LS, PS)
# that a page or an editor shows inside one line.
HIDDEN_BREAKS = ["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"]


async def test_a_line_break_the_text_does_not_show_is_refused(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """`[web]\\nweb1\\u2028web2` read as one line `web1 web2` on the page, but Ansible targeted
    two hosts, web1 and the unseen web2 (`ansible-inventory --list` says so): refused naming
    the line and the character, for a shared inventory and a script's own; nothing stored.
    CRLF and CR stay accepted (Ansible and every page read them as line breaks)."""
    for char in HIDDEN_BREAKS:
        content = f"[web]\nweb1{char}web2\n"
        r = await _inventory(client, operator, content=content)
        assert r.status_code == 422, (char, r.text)
        assert r.json()["errors"][0]["field"] == "content"
        assert f"line 2 holds U+{ord(char):04X}" in r.json()["detail"], r.text
        r = await _script(client, operator, inventory=content)
        assert r.status_code == 422 and "inventory" in [e["field"] for e in r.json()["errors"]], r.text
    listed = (await client.get(PATH, headers=operator.headers)).json()
    assert listed["total"] == 0, listed
    for content in ("[web]\r\nweb1\r\n", "[web]\rweb1\r"):
        assert (await _inventory(client, operator, content=content)).status_code == 201, repr(content)


def _alias_bomb(levels: int) -> str:
    """A YAML inventory of a few hundred bytes whose aliases expand to 10**levels values."""
    anchors = ["    a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    anchors += [f"    a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)]
    return "all:\n  vars:\n" + "\n".join(anchors) + f"\n  hosts:\n    h1:\n      z: *a{levels - 1}\n"


async def test_yaml_aliases_that_expand_to_millions_are_refused_before_ansible_reads_them(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """`ansible-inventory --list` writes every alias out: 455 bytes of aliases took 1.4 GB of the
    server's memory within the check's 60 s. Refused at once (422 naming the field) for a shared
    inventory and a script's own; aliases used as YAML intends still pass."""
    bomb = _alias_bomb(5)
    r = await _inventory(client, operator, content=bomb)
    assert r.status_code == 422, r.text
    error = r.json()["errors"][0]
    assert error["field"] == "content" and "aliases (*name) expand to more than 100,000" in error["message"]
    r = await _script(client, operator, inventory=bomb)
    assert r.status_code == 422, r.text
    assert "inventory" in [e["field"] for e in r.json()["errors"]], r.text
    shared = "all:\n  vars: &common\n    ntp: pool.ntp.org\n  children:\n    web:\n      vars: *common\n"
    r = await _inventory(client, operator, content=shared + "      hosts: {web1: {}}\n")
    assert r.status_code == 201, r.text


@IN_MODULE_LOOP
@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("all:\n  hosts: [1, 2\n", "line 2: YAML parsing failed"),
        ("all:\n  hosts:\n    web1:\n  - db1\n", "line 4: YAML parsing failed"),
        # The text ends inside an unclosed construct: PyYAML's mark is past the last line.
        ("all:\n  hosts:\n    web1: {}\n    bad: [\n", "line 4: YAML parsing failed"),
        ('all:\n  hosts:\n    web1:\n      motd: "abc\n', "line 4: YAML parsing failed"),
        ("[web]\nweb1\n\n[db\ndb1\n", "line 4: the group header [db has no closing ']'"),
        ("[web:vars]\nhttp_port\n", "line 2: Expected key=value, got: http_port"),
        ("[web]\nweb1\nnot a host line\n", "line 3: "),
        # Ansible repeats the line without its quotes; the unclosed header below is not the fault.
        (
            "[web]\nweb1 x={{ lookup('pipe','id') }}\n\n[db\ndb1\n",
            "line 2: Expected key=value host variable assignment, got: lookup(pipe,id)",
        ),
        (
            "all:\n  children:\n    db:\n      hosts: [db1, db2]\n",
            'Invalid "hosts" entry for "db" group, requires a dictionary, found a list instead',
        ),
    ],
)
async def test_a_bad_inventory_says_the_line_or_group_to_fix(
    reader: Reader, content: str, message: str
) -> None:
    """Ansible's own reason (ansible-inventory --list), with the line or group at fault."""
    client, operator = reader.client, await reader.person(Role.operator)
    r = await _inventory(client, operator, content=content)
    assert r.status_code == 422, r.text
    error = r.json()["errors"][0]
    assert error["field"] == "content" and message in error["message"], error
    assert "/tmp" not in r.text and "opscraft-inventory-" not in r.text  # no scratch path


@IN_MODULE_LOOP
@pytest.mark.parametrize(
    ("content", "host"),
    [
        ("[web]\n-e\n--become\n", "--become"),
        ("[web]\nweb1 ansible_host=-oProxyCommand=id>x\n", "web1 (ansible_host -oProxyCommand=id>x)"),
        ("all:\n  hosts:\n    web1:\n      ansible_host: -oProxyCommand=id\n", "web1 (ansible_host"),
        # The plugin's older variable, which wins over ansible_host: it was not looked at.
        (
            "[web]\nweb1 ansible_host=192.0.2.1 ansible_ssh_host='-oProxyCommand=id>x'\n",
            "web1 (ansible_ssh_host -oProxyCommand=id>x)",
        ),
        (
            "all:\n  vars:\n    ansible_ssh_host: -oProxyCommand=id\n  hosts:\n    web1:\n",
            "web1 (ansible_ssh_host",
        ),
        ("[web]\nweb1 ansible_host=-1\n", "web1 (ansible_host -1)"),  # an int for Ansible's INI reader
    ],
)
async def test_a_host_ssh_would_read_as_an_option_is_refused(reader: Reader, content: str, host: str) -> None:
    """Ansible hands a host's address to ssh with no `--` before it: `-oProxyCommand=...` was
    an ssh option (a command run by the run), `-e` a confusing failure. Refused at save, for a
    shared inventory and a script's own."""
    client, operator = reader.client, await reader.person(Role.operator)
    r = await _inventory(client, operator, content=content)
    assert r.status_code == 422, r.text
    error = r.json()["errors"][0]
    assert error["field"] == "content" and f"host {host}" in error["message"], error
    assert "starts with '-', which ssh would read as one of its options" in error["message"]
    r = await _script(client, operator, inventory=content)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "inventory", r.text


# `ansible_host: !vault |` of a value that decrypts to `-oProxyCommand=id` (any password): no
# check can read it at save, and a run has no vault password.
VAULTED = (
    "all:\n  hosts:\n    web1:\n      {key}: !vault |\n"
    "          $ANSIBLE_VAULT;1.1;AES256\n"
    "          62313365396662343061393464336163383764373764613633653634306231386433626436623361\n"
    "          6134333665353966363534333632666535333761666131620a663537646436643839616531643561\n"
    "          63396265633437306265363235313239373661346366323536313635356439386663363433623264\n"
    "          3039313232623737380a373535613161353431376235363363646364653064343362336339353461\n"
    "          3463\n"
)


@IN_MODULE_LOOP
@pytest.mark.parametrize("key", ["ansible_host", "ansible_ssh_host"])
async def test_a_vaulted_host_address_is_refused_at_save(reader: Reader, key: str) -> None:
    """A vaulted address is listed as `{"__ansible_vault": ...}`, which never starts with `-`:
    it was saved, and what it decrypts to reached ssh unchecked. Refused (422 naming the host),
    for a shared inventory and a script's own; nothing stored."""
    client, operator = reader.client, await reader.person(Role.operator)
    content = VAULTED.format(key=key)
    r = await _inventory(client, operator, content=content)
    assert r.status_code == 422, r.text
    error = r.json()["errors"][0]
    assert error["field"] == "content" and f"host web1 ({key}) is encrypted" in error["message"], error
    assert "ssh option" in error["message"]
    r = await _script(client, operator, inventory=content)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "inventory", r.text


@IN_MODULE_LOOP
async def test_a_bad_inventory_line_is_repeated_without_its_values(reader: Reader) -> None:
    """A host line Ansible quotes back may carry a password: the values are cut."""
    client, operator = reader.client, await reader.person(Role.operator)
    content = '[web]\nweb1 ansible_host=192.0.2.10 ansible_password=Hunter2-secret "unclosed\n'
    r = await _inventory(client, operator, content=content)
    assert r.status_code == 422, r.text
    message = r.json()["errors"][0]["message"]
    assert "line 2: Error parsing host definition 'web1 ansible_host=… ansible_password=…" in message, message
    assert "Hunter2-secret" not in r.text and "192.0.2.10" not in r.text


async def test_a_rename_is_audited_with_the_name_it_had(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    inv = (await _inventory(client, operator)).json()
    r = await client.put(f"{PATH}/{inv['id']}", json={"name": inv["name"] + "-new"}, headers=operator.headers)
    assert r.status_code == 200, r.text
    event = next(e for e in await _audit(client, "inventory.update") if e["target_id"] == str(inv["id"]))
    details = event["details"]
    assert (details["name"], details["previous_name"]) == (inv["name"] + "-new", inv["name"]), details


async def test_an_update_with_bad_content_changes_nothing(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    inv = (await _inventory(client, operator)).json()
    body = {"name": inv["name"], "content": "[web\nweb1\n"}
    r = await client.put(f"{PATH}/{inv['id']}", json=body, headers=operator.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "content"
    assert (await client.get(f"{PATH}/{inv['id']}", headers=operator.headers)).json()["content"] == INI


async def test_an_edit_started_from_older_content_does_not_drop_what_was_saved_since(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """Two people editing one inventory: the second save of the whole text used to win silently,
    dropping the host the first had added. With the content it started from, it is a 409."""
    inv = (await _inventory(client, operator)).json()
    started = inv["content_sha256"]
    first = INI.replace("[web]\n", "[web]\nweb2\n")
    url = f"{PATH}/{inv['id']}"
    h = operator.headers
    r = await client.put(url, json={"content": first, "base_content_sha256": started}, headers=h)
    assert r.status_code == 200, r.text
    second = {"content": INI + "\n[db]\ndb1\n", "base_content_sha256": started}
    r = await client.put(f"{PATH}/{inv['id']}", json=second, headers=operator.headers)
    assert r.status_code == 409, r.text
    assert r.json()["errors"][0]["field"] == "content" and "open the inventory again" in r.json()["detail"]
    assert (await client.get(f"{PATH}/{inv['id']}", headers=operator.headers)).json()["content"] == first
    # Other fields save whatever the content is now; a malformed hash is named with the rest.
    r = await client.put(url, json={"description": "db", "base_content_sha256": started}, headers=h)
    assert r.status_code == 200 and r.json()["content"] == first, r.text
    r = await client.put(
        f"{PATH}/{inv['id']}",
        json={"name": "no spaces", "content": first + "\n[db]\ndb1\n", "base_content_sha256": "abc"},
        headers=operator.headers,
    )
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"name", "base_content_sha256"}


async def test_a_script_uses_a_shared_inventory_and_delete_is_refused_while_it_does(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    inv = (await _inventory(client, operator)).json()
    r = await _script(client, operator, inventory_id=inv["id"])
    assert r.status_code == 201, r.text
    script = r.json()
    assert script["inventory_id"] == inv["id"] and script["inventory"] is None
    assert (await client.get(f"{PATH}/{inv['id']}", headers=operator.headers)).json()["used_by"] == [
        script["name"]
    ]
    r = await client.delete(f"{PATH}/{inv['id']}", headers=operator.headers)
    assert r.status_code == 409 and script["name"] in r.json()["detail"]
    # The script lets go (a new version), then the inventory can go.
    r = await client.put(
        f"/api/v1/scripts/{script['id']}", json={"inventory_id": None}, headers=operator.headers
    )
    assert r.status_code == 200 and r.json()["inventory_id"] is None and r.json()["current_version"] == 2
    r = await client.get(f"/api/v1/scripts/{script['id']}/versions/1", headers=operator.headers)
    assert r.json()["run_settings"]["inventory_id"] == inv["id"]
    assert (await client.delete(f"{PATH}/{inv['id']}", headers=operator.headers)).status_code == 204


async def test_a_deleted_script_does_not_hold_an_inventory(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    inv = (await _inventory(client, operator)).json()
    script = (await _script(client, operator, inventory_id=inv["id"])).json()
    assert (
        await client.delete(f"/api/v1/scripts/{script['id']}", headers=operator.headers)
    ).status_code == 204
    assert (await client.delete(f"{PATH}/{inv['id']}", headers=operator.headers)).status_code == 204


async def test_script_inventory_id_rules(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    inv = (await _inventory(client, operator)).json()
    r = await _script(client, operator, inventory_id=inv["id"], inventory=INI)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "inventory_id"
    r = await _script(client, operator, inventory_id=999999)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "inventory_id"
    r = await _script(client, operator, script_type="bash", content="echo hi\n", inventory_id=inv["id"])
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "inventory_id"
    own = (await _script(client, operator, inventory=INI)).json()
    # Switching from the script's own text to a shared inventory: both in the result is refused...
    url = f"/api/v1/scripts/{own['id']}"
    r = await client.put(url, json={"inventory_id": inv["id"]}, headers=operator.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "inventory_id"
    # ...clearing the text in the same change is the switch.
    r = await client.put(url, json={"inventory_id": inv["id"], "inventory": None}, headers=operator.headers)
    assert r.status_code == 200 and r.json()["inventory_id"] == inv["id"], r.text


async def test_rollback_restores_the_inventory_choice(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    inv = (await _inventory(client, operator)).json()
    script = (await _script(client, operator, inventory=INI)).json()
    url = f"/api/v1/scripts/{script['id']}"
    r = await client.put(url, json={"inventory": None, "inventory_id": inv["id"]}, headers=operator.headers)
    assert r.status_code == 200 and r.json()["current_version"] == 2, r.text
    # Back to version 1: its own text again, and no shared inventory next to it.
    r = await client.post(f"{url}/rollback/1", headers=operator.headers)
    assert r.status_code == 200, r.text
    assert r.json()["inventory"] == INI and r.json()["inventory_id"] is None
    # Version 2's inventory is deleted (nothing uses it now): rolling back to it is refused.
    assert (await client.delete(f"{PATH}/{inv['id']}", headers=operator.headers)).status_code == 204
    r = await client.post(f"{url}/rollback/2", headers=operator.headers)
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "inventory_id", r.text
    assert (await client.get(url, headers=operator.headers)).json()["current_version"] == 3


async def test_a_bad_name_and_bad_content_are_named_in_one_422(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """The content is checked by Ansible even when the body refuses the name (create and update)."""
    r = await _inventory(client, operator, name="", content="[web\nweb1\n")
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["name", "content"], r.text
    inv = (await _inventory(client, operator)).json()
    body = {"name": "bad name!", "description": "x" * 5000, "content": "[web\nweb1\n"}
    r = await client.put(f"{PATH}/{inv['id']}", json=body, headers=operator.headers)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["name", "description", "content"], r.text
    assert (await client.get(f"{PATH}/{inv['id']}", headers=operator.headers)).json()["content"] == INI


def test_the_host_names_include_hosts_without_variables() -> None:
    """`ansible-inventory --list` lists a host without variables only in its group."""
    require_service(find_tool("ansible-inventory") is not None, "ansible-inventory (ansible-core)")
    hosts = asyncio.run(inventories.validate("[web]\nweb1\nweb2 http_port=8080\n\n[db]\ndb1\n"))
    assert hosts == ["db1", "web1", "web2"]


@pytest.mark.parametrize(
    ("content", "remote"),
    [
        (INI, True),
        ("[web]\nweb1\n", True),
        ("[web]\nweb1 ansible_connection=local\n", False),
        ("[web]\nweb1\nweb2\n\n[web:vars]\nansible_connection=local\n", False),
        ("[all:vars]\nansible_connection=local\n\n[a]\nx\n\n[b]\ny ansible_connection=ssh\n", True),
        ("all:\n  hosts:\n    サーバー:\n      ansible_connection: local\n", False),
        (
            "all:\n  vars: {ansible_connection: local}\n  children:\n    db:\n      hosts: {db1: {}}\n",
            False,
        ),
        ("[web]\nweb1 ansible_connection=local\nweb2\n", True),
    ],
)
def test_hosts_that_all_connect_locally_need_no_network(content: str, remote: bool) -> None:
    """The run form's network notice asks this: `ansible_connection=local` (the host's own, or a
    group's or `all`'s) runs the host's tasks in the run itself; any other host needs the network."""
    require_service(find_tool("ansible-inventory") is not None, "ansible-inventory (ansible-core)")
    assert asyncio.run(inventories.reaches_network(content)) is remote
    assert asyncio.run(inventories.reaches_network(content)) is remote  # the kept answer


# 20 bytes, a million hosts; 26,000 hosts in YAML; 10,053 in lines of which one is most of
# them. One test for all (a runtime each cost more). (inventory, what the refusal names)
RANGE_BOMBS = [
    ("[web]\nh[0:99][0:99][0:99]\n", "(h[0:99][0:99][0:99] alone is 1,000,000)"),
    (
        "all:\n  children:\n    web:\n      hosts:\n        h[a:z][0:999]: {}\n",
        "(h[a:z][0:999] alone is 26,000)",
    ),
    ("[web]\nweb[01:50]\n[db]\ndb[1:3]\nlb-[0:99].x[0:99]\n", "(lb-[0:99].x[0:99] alone is 10,000)"),
    # A number of 6,000 digits, which Python refuses to write out: a 500.
    ("[web]\nh" + "[0:99]" * 3000 + "\n", "alone is more than 1,000,000,000,000)"),
]


async def test_host_ranges_that_expand_beyond_the_limit_are_refused_before_ansible_reads_them(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """`ansible-inventory --list` writes every host of a range out: `h[0:99][0:99][0:99]` took
    700 MB of the server's memory and the check's whole 60 s. Refused at once (422 naming the
    field), for a shared inventory and a script's own, naming the host name of the most hosts
    (among many lines, "use smaller ranges" left the operator to count each range)."""
    for bomb, named in RANGE_BOMBS:
        started = time.monotonic()
        r = await _inventory(client, operator, content=bomb)
        assert r.status_code == 422, (bomb, r.text)
        error = r.json()["errors"][0]
        assert error["field"] == "content" and "hosts once its host ranges" in error["message"], error
        assert named in error["message"], error
        r = await _script(client, operator, inventory=bomb)
        assert r.status_code == 422 and "inventory" in [e["field"] for e in r.json()["errors"]], r.text
        assert time.monotonic() - started < 20  # Ansible never ran on them
        r = await _inventory(client, operator, content="[web]\nweb[01:50]\n\n[web:vars]\nports=[1:99999]\n")
        assert r.status_code == 201, r.text  # a range of 50; the vars section holds no host


@pytest.mark.parametrize(
    ("text", "hosts"),
    [
        ("[web]\nweb[01:50]\n", 50),
        ("web[a:f]\n[db]\ndb[0:10:5]\n", 6 + 3),
        ("[web]\nh[0:9][a:c] ansible_port=22\n# h[0:999]\n", 30),
        ("[web:vars]\nx=[0:999]\n\n[all:children]\nw[0:999]\n", 0),
        ("[web]\nh[5:1]\nh[:3]\nh[1:x]\n", 1 + 4 + 1),
    ],
)
def test_host_ranges_are_counted_as_ansible_expands_them(text: str, hosts: int) -> None:
    assert inventory_ranges.ini_host_count(text) == hosts


# Host names of the largest inventory (`inventories.MAX_INVENTORY_BYTES`, 64 KiB) shaped against
# the pattern reading a range: a run of colons was split at each one and read to its end (95 s).
RANGE_SHAPES = {
    "colons": "[" + ":" * (inventories.MAX_INVENTORY_BYTES - 1),
    "colons in a section": "[web]\nh[" + ":" * (inventories.MAX_INVENTORY_BYTES - 9),
}


@pytest.mark.parametrize("shape", list(RANGE_SHAPES))
def test_a_largest_host_name_of_any_shape_is_counted_in_linear_time(shape: str) -> None:
    assert_linear(inventory_ranges.ini_host_count, RANGE_SHAPES[shape])


async def test_every_content_is_kept_as_a_version_a_run_can_be_traced_to(
    client: httpx.AsyncClient, operator: LoggedIn, viewer: LoggedIn
) -> None:
    """An inventory's content was replaced for good by an edit: which hosts a past run read was
    known only by a SHA-256. Each content is now a numbered version (name or description changes
    add none, saving the same text adds none), listed newest first and readable by every role,
    and removed with the inventory."""
    inv = (await _inventory(client, operator)).json()
    assert inv["version"] == 1
    url = f"{PATH}/{inv['id']}"
    renamed = await client.put(
        url, json={"name": inv["name"] + "-r", "content": INI}, headers=operator.headers
    )
    assert renamed.status_code == 200 and renamed.json()["version"] == 1, renamed.text
    r = await client.put(url, json={"content": YAML}, headers=operator.headers)
    assert r.status_code == 200 and r.json()["version"] == 2, r.text
    assert (await _audit(client, "inventory.update"))[0]["details"]["version"] == 2
    r = await client.get(f"{url}/versions", headers=viewer.headers)
    assert r.status_code == 200, r.text
    page = r.json()
    assert (page["total"], [v["number"] for v in page["items"]]) == (2, [2, 1])
    sha = {v["number"]: v["content_sha256"] for v in page["items"]}
    assert sha == {n: hashlib.sha256(c.encode()).hexdigest() for n, c in ((1, INI), (2, YAML))}
    assert {v["author_name"] for v in page["items"]} == {operator.username}
    assert "content" not in page["items"][0]
    first = await client.get(f"{url}/versions/1", headers=viewer.headers)
    assert first.status_code == 200 and first.json()["content"] == INI, first.text
    paged = await client.get(f"{url}/versions", params={"skip": 1, "limit": 1}, headers=viewer.headers)
    assert [v["number"] for v in paged.json()["items"]] == [1]
    for missing in (f"{url}/versions/3", f"{PATH}/999999/versions", f"{PATH}/999999/versions/1"):
        r = await client.get(missing, headers=viewer.headers)
        assert r.status_code == 404, (missing, r.text)
    assert (await client.get(f"{url}/versions/0", headers=viewer.headers)).status_code == 422
    assert (await client.delete(url, headers=operator.headers)).status_code == 204
    assert (await client.get(f"{url}/versions/1", headers=viewer.headers)).status_code == 404


async def test_a_run_is_traced_to_the_version_it_read(
    client: httpx.AsyncClient, operator: LoggedIn, viewer: LoggedIn
) -> None:
    """`run_version`: the version whose content has a run's SHA-256, the latest when a content
    came back (saved again after another); None for a content the inventory never had."""
    inv = (await _inventory(client, operator)).json()
    url = f"{PATH}/{inv['id']}"
    for content in (YAML, INI):
        assert (await client.put(url, json={"content": content}, headers=operator.headers)).status_code == 200
    async with runtime.current().db.session() as session:
        actor = Actor(await session.get(User, viewer.id))
        found = [
            await shared_inventories.run_version(
                session, actor, inv["id"], hashlib.sha256(c.encode()).hexdigest()
            )
            for c in (INI, YAML, "other")
        ]
    assert found == [3, 2, None]


# Addresses outside the 32-bit ids (1: the inventory the test made). One test goes through them all.
NO_ROW_ADDRESSES = [(2**31, 1), (1, 2**31), (-1, 1), (1, 0), (10**12, 10**12)]


async def test_a_version_address_no_row_can_have_is_not_found(
    client: httpx.AsyncClient, operator: LoggedIn, viewer: LoggedIn
) -> None:
    """The version page (`/inventories/{id}/versions/{n}`) passes the address's numbers to the
    services unchecked: one outside the databases' 32-bit ids was PostgreSQL's DataError (a 500)."""
    for address_id, number in NO_ROW_ADDRESSES:
        created = (await _inventory(client, operator)).json()
        inventory_id = created["id"] if address_id == 1 else address_id
        async with runtime.current().db.session() as session:
            actor = Actor(await session.get(User, viewer.id))
            with pytest.raises(NotFound):
                await shared_inventories.get_version(session, actor, inventory_id, number)


async def test_an_inventory_save_checks_its_text_before_it_takes_the_write_turn(
    client: httpx.AsyncClient, operator: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A save of a shared inventory and of a script's own inventory took its write turn (on
    SQLite, the database's one write lock) and then ran `ansible-inventory` (seconds: 2-10 s
    under load), so every other write waited as long. The check now runs first: while it is
    held here, another save goes through; the held save then ends as before. (On PostgreSQL the
    turn is a row lock, which never held another inventory's create: passes either way there.)"""
    require_service(find_tool("ansible-inventory"), "ansible-inventory")
    created = await _inventory(client, operator)
    assert created.status_code == 201, created.text
    script = await _script(client, operator, inventory=INI)
    assert script.status_code == 201, script.text
    entered, release = asyncio.Event(), asyncio.Event()
    listing = inventories._listing

    async def held(tool: str, text: str, field: str) -> Any:
        if "held" in text:
            entered.set()
            await release.wait()
        return await listing(tool, text, field)

    monkeypatch.setattr(inventories, "_listing", held)
    for url, body in (
        # Texts of their own: the checks' answers are kept by text for the whole process.
        (f"{PATH}/{created.json()['id']}", {"content": f"{INI}\n[extra]\nheld{time.monotonic_ns()}\n"}),
        (
            f"/api/v1/scripts/{script.json()['id']}",
            {"inventory": f"{INI}\n[extra]\nheld{time.monotonic_ns()}\n"},
        ),
    ):
        entered.clear()
        release.clear()
        save = asyncio.create_task(client.put(url, json=body, headers=operator.headers))
        await asyncio.wait_for(entered.wait(), 60)
        other = await asyncio.wait_for(_inventory(client, operator), 30)  # a write of its own
        assert other.status_code == 201, other.text
        release.set()
        r = await asyncio.wait_for(save, 60)
        assert r.status_code == 200, r.text


@IN_MODULE_LOOP
@pytest.mark.parametrize(
    ("content", "line", "key"),
    [
        # web1's variables written twice: Ansible used the second (tier=hidden), the page shows both.
        ("all:\n  hosts:\n    web1:\n      tier: shown\n    web1:\n      tier: hidden\n", 5, "web1"),
        ("all:\n  children:\n    dbs:\n      vars: {port: 5432, port: 6432}\n", 4, "port"),
        ("all:\n  vars:\n    a: 1\n  vars:\n    a: 2\n", 4, "vars"),
    ],
)
async def test_a_key_written_twice_in_a_yaml_inventory_is_refused(
    reader: Reader, content: str, line: int, key: str
) -> None:
    """Ansible keeps a repeated key's last value ("found a duplicate dict key ... Using last defined
    value only", a warning in the run's output): the first one shown was not the one used. Refused
    at save naming both lines, for a shared inventory and a script's own; a key a merge brings in
    and the mapping overrides stays accepted."""
    client, operator = reader.client, await reader.person(Role.operator)
    r = await _inventory(client, operator, content=content)
    assert r.status_code == 422, r.text
    error = r.json()["errors"][0]
    assert error["field"] == "content", error
    assert f"line {line}: the key '{key}' is written twice in one mapping" in error["message"], error
    r = await _script(client, operator, inventory=content)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "inventory", r.text
    merged = (
        "all:\n  vars:\n    base: &b\n      a: 1\n    over:\n      <<: *b\n      a: 2\n  hosts:\n    web1:\n"
    )
    assert (await _inventory(client, operator, content=merged)).status_code == 201


@IN_MODULE_LOOP
async def test_the_inventory_check_templates_nothing_on_the_server(reader: Reader, tmp_path) -> None:
    """`ansible-inventory --list` (the check at save) prints variables as written: neither Jinja
    nor a `#jinja2:` header choosing other delimiters (which ansible-core 2.19 takes for a
    template, and which its syntax check of playbooks ran: tests/test_script_checks.py) runs."""
    client, operator = reader.client, await reader.person(Role.operator)
    marker = tmp_path / "ran"
    header = "#jinja2:variable_start_string:'[[', variable_end_string:']]'\\n"
    content = (
        "all:\n  hosts:\n    web1:\n"
        f"      a: \"{{{{ lookup('pipe', 'touch {marker}') }}}}\"\n"
        f"      b: \"{header}[[ lookup('pipe', 'touch {marker}') ]]\"\n"
    )
    r = await _inventory(client, operator, content=content)
    assert not marker.exists()
    assert r.status_code == 201, r.text
