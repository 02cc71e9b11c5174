"""A 409 of an edit that started before another save says who saved, and when: the same user's
other tab was told "changed by someone else since your edit started" (two tabs of one operator
editing one script's description). Now: "by you in another tab, window or API client" when the
row's last saver (`partial.SAVED_BY`) is the caller, "by someone else" when another user, both
possibilities for a row that records no saver; with the time of that save (UTC)."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx

from opscraft.db.models import Role
from tests.conftest import LoggedIn, make_user

YOU = "changed by you in another tab, window or API client since your edit started (saved at "
OTHER = "changed by someone else since your edit started (saved at "
EITHER = "changed by someone else, or by you in another tab, window or API client since your edit started"
AT = re.compile(r" at \d\d:\d\d UTC\)")


async def _refusal(client: httpx.AsyncClient, who: LoggedIn, url: str, body: dict[str, Any]) -> str:
    """The message of the 409 that `who`'s `PUT` of `body` to `url` gets (its one field error)."""
    r = await client.put(url, json=body, headers=who.headers)
    assert r.status_code == 409, r.text
    (error,) = r.json()["errors"]
    assert AT.search(error["message"]) or EITHER in error["message"], error
    return str(error["message"])


async def _ok(client: httpx.AsyncClient, who: LoggedIn, url: str, body: dict[str, Any]) -> None:
    r = await client.put(url, json=body, headers=who.headers)
    assert r.status_code == 200, r.text


async def test_a_script_edit_says_whether_you_or_someone_else_saved_since(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    other = await make_user(client, Role.operator)
    body = {"name": f"who-{time.monotonic_ns()}", "script_type": "bash", "content": "echo 1\n"}
    created = await client.post("/api/v1/scripts", json=body, headers=operator.headers)
    assert created.status_code == 201, created.text
    url = f"/api/v1/scripts/{created.json()['id']}"
    base = {"description": ""}
    # Two tabs of the operator: the first saves, the second is told it was them.
    await _ok(client, operator, url, {"description": "tab A", "base": base})
    said = await _refusal(client, operator, url, {"description": "tab B", "base": base})
    assert said.startswith(YOU), said
    # Another operator saves: now it was someone else.
    await _ok(client, other, url, {"description": "other", "base": {"description": "tab A"}})
    said = await _refusal(client, operator, url, {"description": "tab B", "base": {"description": "tab A"}})
    assert said.startswith(OTHER), said
    # The version guard says who saved the version the edit did not start from.
    await _ok(client, operator, url, {"content": "echo 2\n", "base_version": 1})
    said = await _refusal(client, operator, url, {"content": "echo 3\n", "base_version": 1})
    assert said.startswith("the script is at version 2 (saved by you in another tab, window or API "), said
    said = await _refusal(client, other, url, {"content": "echo 3\n", "base_version": 1})
    assert said.startswith("the script is at version 2 (saved by someone else at "), said


async def _you_then_someone_else(
    client: httpx.AsyncClient,
    who: LoggedIn,
    other: LoggedIn,
    url: str,
    saved: dict[str, Any],
    stale: dict[str, Any],
    prefix: str = "",
) -> None:
    """`who` saves `saved`, then `stale` (an edit from before that save) is told, `who`'s
    own other tab did it; `other`'s same edit is told someone else did."""
    await _ok(client, who, url, saved)
    said = await _refusal(client, who, url, stale)
    assert said.startswith(prefix + YOU), said
    said = await _refusal(client, other, url, stale)
    assert said.startswith(prefix + OTHER), said


async def test_inventories_schedules_secrets_and_profiles_say_who_saved_since(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    other = await make_user(client, Role.admin)
    name = f"who-{time.monotonic_ns()}"
    made = await client.post(
        "/api/v1/inventories", json={"name": name, "content": "web1\n"}, headers=admin.headers
    )
    assert made.status_code == 201, made.text
    url, sha = f"/api/v1/inventories/{made.json()['id']}", made.json()["content_sha256"]
    saved, stale = (
        {"content": "web2\n", "base_content_sha256": sha},
        {"content": "web3\n", "base_content_sha256": sha},
    )
    await _you_then_someone_else(client, admin, other, url, saved, stale, prefix="was ")

    script = await client.post(
        "/api/v1/scripts",
        json={"name": name, "script_type": "bash", "content": "true\n", "status": "active"},
        headers=admin.headers,
    )
    assert script.status_code == 201, script.text
    schedule = await client.post(
        f"/api/v1/scripts/{script.json()['id']}/schedules",
        json={"name": "who", "cron": "0 3 * * *"},
        headers=admin.headers,
    )
    assert schedule.status_code == 201, schedule.text
    url = f"/api/v1/scripts/{script.json()['id']}/schedules/{schedule.json()['id']}"
    base = {"cron": "0 3 * * *"}
    saved, stale = {"cron": "0 4 * * *", "base": base}, {"cron": "0 5 * * *", "base": base}
    await _you_then_someone_else(client, admin, other, url, saved, stale)

    secret = await client.post(
        "/api/v1/secrets", json={"name": f"WHO_{time.monotonic_ns()}", "value": "v"}, headers=admin.headers
    )
    assert secret.status_code == 201, secret.text
    url = f"/api/v1/secrets/{secret.json()['id']}"
    base = {"description": ""}
    saved, stale = {"description": "a", "base": base}, {"description": "b", "base": base}
    await _you_then_someone_else(client, admin, other, url, saved, stale)

    # A profile records no saver (an admin may have changed it): both possibilities are said.
    await _ok(client, admin, "/api/v1/auth/me", {"full_name": "A", "base": {"full_name": ""}})
    said = await _refusal(client, admin, "/api/v1/auth/me", {"full_name": "B", "base": {"full_name": ""}})
    assert said.startswith(EITHER), said
