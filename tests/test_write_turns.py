"""No outside work under a write turn (docs/architecture.md, `services.ahead`), on SQLite and
PostgreSQL. A save that takes its write turn (`db.turns`: on SQLite the database's one write
lock; on PostgreSQL its row's lock) and then runs a slow check (an outside tool such as
`ansible-inventory`, the linters or `bash -n`; argon2 hashing) held every other writer, or every
other edit of that row, for the check's seconds. Each test holds the slow check of one save and
shows another write going through meanwhile; the held save then ends as before."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from opscraft.services import inventories, script_checks, users
from opscraft.services.linters import find_tool
from tests.conftest import LoggedIn, require_service
from tests.waiting import scale

PLAYBOOK = "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=hi\n"
INI = "[web]\nweb1 ansible_host=192.0.2.10\n"
# How long the other write may take while a save's check is held: it waited for the whole hold.
MEANWHILE_SECONDS = 20


class Held:
    """Calls of a slow check (an async function) with an argument holding `mark` wait for
    `release` once `active`; `calls` counts them."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> None:
        self.mark = f"held{time.monotonic_ns()}"
        self.active = True
        self.calls = 0
        self.entered, self.release = asyncio.Event(), asyncio.Event()
        check: Callable[..., Awaitable[Any]] = getattr(owner, name)

        async def held(*args: Any) -> Any:
            if self.active and any(isinstance(a, str) and self.mark in a for a in args):
                self.calls += 1
                self.entered.set()
                await self.release.wait()
            return await check(*args)

        monkeypatch.setattr(owner, name, held)

    async def meanwhile(
        self, save: Awaitable[httpx.Response], other: Callable[[], Awaitable[httpx.Response]]
    ) -> httpx.Response:
        """Start `save`, wait until its check is held, then `other()` must answer 2xx without
        waiting for the held check; release it and return the save's response."""
        task = asyncio.ensure_future(save)
        await asyncio.wait_for(self.entered.wait(), 60 * scale())
        try:
            answered = await asyncio.wait_for(other(), MEANWHILE_SECONDS * scale())
            assert answered.is_success, answered.text
        finally:
            self.release.set()
        return await asyncio.wait_for(task, 120 * scale())


async def _script(client: httpx.AsyncClient, who: LoggedIn, **fields: Any) -> dict[str, Any]:
    body = {"name": f"turn-{time.monotonic_ns()}", "script_type": "bash", "content": "echo one\n", **fields}
    r = await client.post("/api/v1/scripts", json=body, headers=who.headers)
    assert r.status_code == 201, r.text
    return dict(r.json())


def _describe(
    client: httpx.AsyncClient, who: LoggedIn, script_id: int
) -> Callable[[], Awaitable[httpx.Response]]:
    """Another edit of the same script (its row: on PostgreSQL its lock was held too)."""
    return lambda: client.put(
        f"/api/v1/scripts/{script_id}", json={"description": "meanwhile"}, headers=who.headers
    )


async def test_a_script_save_checks_its_content_before_it_takes_the_write_turn(
    client: httpx.AsyncClient, operator: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`scripts.update` took the write turn, then ran the content's checks (`bash -n`, the
    linters: ShellCheck, ansible-playbook --syntax-check, terraform validate/fmt; seconds under
    load): another edit of the script waited for them. Checked once, before the turn."""
    script = await _script(client, operator)
    held = Held(monkeypatch, script_checks, "check")
    url = f"/api/v1/scripts/{script['id']}"
    content = f"echo {held.mark}\n"
    save = client.put(url, json={"content": content}, headers=operator.headers)
    r = await held.meanwhile(save, _describe(client, operator, script["id"]))
    assert r.status_code == 200, r.text
    assert r.json()["content"] == content and r.json()["description"] == "meanwhile"
    assert r.json()["current_version"] == 2
    assert held.calls == 1, "checked before the turn, its answer kept under it"


async def test_a_script_save_whose_row_changed_meanwhile_is_checked_again_under_the_turn(
    client: httpx.AsyncClient, operator: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What was checked ahead is what the row read then makes of the body: when another save
    changes what the checks read (here the parameters, which the content's check reads), the
    save is checked again under its turn with the row as it is there."""
    script = await _script(client, operator)
    held = Held(monkeypatch, script_checks, "check")
    url = f"/api/v1/scripts/{script['id']}"
    save = client.put(url, json={"content": f"echo {held.mark}\n"}, headers=operator.headers)
    declared = [{"name": "REGION", "type": "string", "default": "eu"}]
    r = await held.meanwhile(
        save, lambda: client.put(url, json={"parameters": declared}, headers=operator.headers)
    )
    assert r.status_code == 200, r.text
    assert "REGION" in r.json()["parameters"], r.json()["parameters"]
    assert held.calls == 2, "checked again under the turn: the parameters changed meanwhile"


async def test_a_script_inventory_save_checks_it_before_it_takes_the_write_turn(
    client: httpx.AsyncClient, operator: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The script's own inventory, as the content: `ansible-inventory` before the turn."""
    require_service(find_tool("ansible-inventory"), "ansible-inventory")
    script = await _script(client, operator, script_type="ansible", content=PLAYBOOK)
    held = Held(monkeypatch, inventories, "_listing")
    inventory = f"{INI}[extra]\n{held.mark}\n"
    save = client.put(
        f"/api/v1/scripts/{script['id']}", json={"inventory": inventory}, headers=operator.headers
    )
    r = await held.meanwhile(save, _describe(client, operator, script["id"]))
    assert r.status_code == 200, r.text
    assert r.json()["inventory"] == inventory and held.calls == 1


@pytest.mark.parametrize("what", ["content", "inventory"])
async def test_a_rollback_checks_the_version_before_it_takes_the_write_turn(
    client: httpx.AsyncClient, operator: LoggedIn, monkeypatch: pytest.MonkeyPatch, what: str
) -> None:
    """`scripts.rollback` took the write turn, then checked the version's content (as a save
    does) and its own inventory (`ansible-inventory`, by today's rules): both now run first."""
    if what == "inventory":
        require_service(find_tool("ansible-inventory"), "ansible-inventory")
        held = Held(monkeypatch, inventories, "_listing")
        monkeypatch.setattr(inventories, "_checks", OrderedDict())  # its answer is not known yet
        first = {"script_type": "ansible", "content": PLAYBOOK, "inventory": f"{INI}[extra]\n{held.mark}\n"}
        second = {"inventory": INI}
    else:
        held = Held(monkeypatch, script_checks, "check")
        first, second = {"content": f"echo {held.mark}\n"}, {"content": "echo two\n"}
    held.active = False
    script = await _script(client, operator, **first)
    url = f"/api/v1/scripts/{script['id']}"
    r = await client.put(url, json=second, headers=operator.headers)
    assert r.status_code == 200 and r.json()["current_version"] == 2, r.text
    if what == "inventory":
        inventories._checks.clear()
    held.active = True
    rollback = client.post(f"{url}/rollback/1", headers=operator.headers)
    r = await held.meanwhile(rollback, _describe(client, operator, script["id"]))
    assert r.status_code == 200, r.text
    assert r.json()["current_version"] == 3 and r.json()["description"] == "meanwhile"
    assert r.json()[what] == first[what] and held.calls == 1


async def test_the_first_registration_hashes_the_password_before_it_takes_the_write_turn(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first registration claimed the administrator's place (a write: on SQLite the turn),
    then hashed the password (argon2: about 0.25 s of CPU, seconds under load): every other
    writer waited, such as a failed login's audit event. The hash now comes first. (On PostgreSQL
    the claim is a row of its own, which never held another write: passes either way there.)"""
    entered, release = threading.Event(), threading.Event()
    hashing = users.hash_password

    def held(password: str) -> str:
        entered.set()
        release.wait(120 * scale())
        return hashing(password)

    monkeypatch.setattr(users, "hash_password", held)
    body = {"username": "first", "email": "first@example.com", "password": "Correct-Horse-9"}
    task = asyncio.ensure_future(client.post("/api/v1/auth/register", json=body))
    try:
        assert await asyncio.to_thread(entered.wait, 60 * scale()), "the registration hashed nothing"
        wrong = {"username": "nobody", "password": "Not-The-One-9"}
        failed = await asyncio.wait_for(
            client.post("/api/v1/auth/login", json=wrong), MEANWHILE_SECONDS * scale()
        )
        assert failed.status_code == 401, failed.text  # its audit event written meanwhile
    finally:
        release.set()
    r = await asyncio.wait_for(task, 120 * scale())
    assert r.status_code == 201 and r.json()["role"] == "admin", r.text
