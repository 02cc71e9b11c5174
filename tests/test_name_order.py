"""Lists by name are in alphabetical order ignoring case, on SQLite and PostgreSQL alike, and
their searches ignore surrounding blanks.

A plain ORDER BY on the name compared code points (SQLite, PostgreSQL's C collation), so every
capital came first: the users page listed `Bob`, `Zed`, then `admin`, `alice`
(`services/names.name_order`)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.conftest import PASSWORD, LoggedIn


async def _names(client: httpx.AsyncClient, who: LoggedIn, path: str, **params: Any) -> list[str]:
    r = await client.get(path, params=params, headers=who.headers)
    assert r.status_code == 200, r.text
    return [item.get("username", item.get("name")) for item in r.json()["items"]]


async def test_users_are_listed_ignoring_case(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    for name in ("Zed", "alice", "Bob", "carol"):
        body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
        assert (await client.post("/api/v1/users", json=body, headers=admin.headers)).status_code == 201
    everyone = await _names(client, admin, "/api/v1/users")
    assert [n for n in everyone if n != admin.username] == ["alice", "Bob", "carol", "Zed"]
    assert await _names(client, admin, "/api/v1/users", skip=1, limit=2) == everyone[1:3], "pages follow it"


async def test_scripts_secrets_and_channels_are_listed_ignoring_case(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    for name in ("Zulu", "alpha", "Bravo"):
        body = {"name": name, "script_type": "bash", "content": "true\n"}
        assert (await client.post("/api/v1/scripts", json=body, headers=admin.headers)).status_code == 201
    assert await _names(client, admin, "/api/v1/scripts", sort="name") == ["alpha", "Bravo", "Zulu"]
    assert await _names(client, admin, "/api/v1/scripts", sort="-name") == ["Zulu", "Bravo", "alpha"]

    # Secret names are case-sensitive: `db` and `DB` are two secrets, the capital one first.
    for name in ("db", "API_KEY", "DB", "b_token"):
        body = {"name": name, "value": "v"}
        assert (await client.post("/api/v1/secrets", json=body, headers=admin.headers)).status_code == 201
    assert await _names(client, admin, "/api/v1/secrets") == ["API_KEY", "b_token", "DB", "db"]

    full_width_beta = "\uff22eta"  # ordered by its folded form, "beta"
    for name in ("Zeta hook", "alerts", full_width_beta):
        body = {"name": name, "kind": "webhook", "config": {"url": "https://hooks.example.com/x"}}
        r = await client.post("/api/v1/notifications/channels", json=body, headers=admin.headers)
        assert r.status_code == 201, r.text
    channels = await _names(client, admin, "/api/v1/notifications/channels")
    assert channels == ["alerts", full_width_beta, "Zeta hook"]


async def test_a_search_drops_surrounding_blanks_as_the_ui_boxes_do(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """The UI trimmed its search boxes; the API searched for ` alice` as typed (nobody), and a
    blank search matched nothing instead of everything (`like.trimmed`, in the services)."""
    body = {"username": "alice", "email": "alice@example.com", "password": PASSWORD}
    assert (await client.post("/api/v1/users", json=body, headers=admin.headers)).status_code == 201
    body = {"name": "ALICE_KEY", "value": "v"}
    assert (await client.post("/api/v1/secrets", json=body, headers=admin.headers)).status_code == 201
    assert await _names(client, admin, "/api/v1/users", search="  alice ") == ["alice"]
    assert len(await _names(client, admin, "/api/v1/users", search="   ")) == 2
    assert await _names(client, admin, "/api/v1/secrets", search=" alice_key ") == ["ALICE_KEY"]
    assert await _names(client, admin, "/api/v1/secrets", search=" ") == ["ALICE_KEY"]
