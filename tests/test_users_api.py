"""Users administration API on SQLite and PostgreSQL: list, create, get, update, reset, delete."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable

import httpx
import pytest
from sqlmodel import col, select

from opscraft import runtime
from opscraft.db.models import Role, User
from opscraft.services import users
from opscraft.services.actor import Actor
from opscraft.services.errors import Forbidden
from tests.conftest import PASSWORD, LoggedIn, make_user

NEW_USER = {
    "username": "carol",
    "email": "Carol@Example.com",
    "password": "Carol-Pass-123",
    "full_name": "Carol Jones",
    "role": "operator",
}


async def _login(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    return await client.post("/api/v1/auth/login", json={"username": username, "password": password})


async def test_create_get_and_no_secret_in_responses(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    r = await client.post("/api/v1/users", json=NEW_USER, headers=admin.headers)
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["username"] == "carol" and body["role"] == "operator" and body["is_active"] is True
    assert body["email"] == "carol@example.com"
    assert "password" not in r.text and "Carol-Pass-123" not in r.text
    got = await client.get(f"/api/v1/users/{body['id']}", headers=admin.headers)
    assert got.status_code == 200 and got.json() == body
    assert (await _login(client, "carol", "Carol-Pass-123")).status_code == 200


async def test_create_rejects_duplicates_and_bad_input(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    assert (await client.post("/api/v1/users", json=NEW_USER, headers=admin.headers)).status_code == 201
    same_name = {**NEW_USER, "username": "CAROL", "email": "other@example.com"}
    r = await client.post("/api/v1/users", json=same_name, headers=admin.headers)
    assert r.status_code == 409 and "username" in r.json()["detail"]
    same_email = {**NEW_USER, "username": "carol2", "email": "carol@EXAMPLE.com"}
    r = await client.post("/api/v1/users", json=same_email, headers=admin.headers)
    assert r.status_code == 409
    cases = {
        "role": {**NEW_USER, "username": "x1", "email": "x1@example.com", "role": "root"},
        "username": {**NEW_USER, "username": "-bad name", "email": "x2@example.com"},
        "password": {**NEW_USER, "username": "x3", "email": "x3@example.com", "password": "short"},
        "extra": {**NEW_USER, "username": "x4", "email": "x4@example.com", "is_superuser": True},
    }
    for field, payload in cases.items():
        r = await client.post("/api/v1/users", json=payload, headers=admin.headers)
        assert r.status_code == 422, (field, r.text)
        assert r.json()["errors"], field
        assert payload["password"] not in r.text
    same_as_name = {**NEW_USER, "username": "dave1234", "email": "d@example.com", "password": "DAVE1234"}
    r = await client.post("/api/v1/users", json=same_as_name, headers=admin.headers)
    assert r.status_code == 422 and "username" in r.json()["detail"]
    listing = await client.get("/api/v1/users", headers=admin.headers)
    assert listing.json()["total"] == 2, "a rejected create must not leave a row"


async def test_an_email_in_full_width_letters_is_refused_not_a_second_account(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn
) -> None:
    """`admin@example.com` in full-width letters was accepted beside `admin@example.com`: two
    accounts whose addresses look the same. Refused wherever an address is written."""
    look_alike = "".join(chr(ord(c) + 0xFEE0) for c in "admin") + "@example.com"
    ligature = "\ufb01nance@example.com"  # the "fi" ligature
    for email in (look_alike, ligature):
        body = {**NEW_USER, "email": email}
        r = await client.post("/api/v1/users", json=body, headers=admin.headers)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "email", r.text
        assert "plain characters" in r.json()["errors"][0]["message"]
        r = await client.put(f"/api/v1/users/{viewer.id}", json={"email": email}, headers=admin.headers)
        assert r.status_code == 422, r.text
        r = await client.put("/api/v1/auth/me", json={"email": email}, headers=viewer.headers)
        assert r.status_code == 422, r.text
    accented = {**NEW_USER, "email": "caf\u00e9@example.com"}  # plain: letters of another script stay
    assert (await client.post("/api/v1/users", json=accented, headers=admin.headers)).status_code == 201


@pytest.mark.parametrize(
    ("email", "why"),
    [
        ("nope", "must be an email address: An email address must have an @-sign."),
        ("x@localhost", "must be an email address: The part after the @-sign is not valid."),
        # pydantic's EmailStr read this first and kept the address: taken, stored as j@...
        ("Jo <jo@example.com>", "must be an email address: A display name and angle brackets"),
        ("c" * 65 + "@example.com", "must be an email address: The email address is too long before"),
    ],
)
async def test_an_accounts_email_is_read_once_and_refused_in_one_wording(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn, email: str, why: str
) -> None:
    """An account's address went through pydantic's `EmailStr` and then email-validator's strict
    reading: two checks, two wordings ("value is not a valid email address: ..." or the strict
    one's), and a display-name form EmailStr took. One check now, that of a notification
    channel's sender too (`email_addresses.checked`)."""
    for method, url, body in (
        ("POST", "/api/v1/users", {**NEW_USER, "email": email}),
        ("PUT", f"/api/v1/users/{viewer.id}", {"email": email}),
    ):
        r = await client.request(method, url, json=body, headers=admin.headers)
        assert r.status_code == 422, r.text
        assert r.json()["errors"] == [{"field": "email", "message": r.json()["errors"][0]["message"]}], r.text
        assert r.json()["errors"][0]["message"].startswith(why), r.text


async def test_an_email_past_rfc_5321s_lengths_is_refused_wherever_an_address_is_written(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn
) -> None:
    """A local part of 65 characters was stored (email-validator checks RFC 5321's 64-octet
    bound only in its strict mode), and a mail server refuses such an address."""
    longest = "a" * 64 + "@example.com"
    too_long = "b" * 65 + "@example.com"
    body = {**NEW_USER, "email": too_long}
    r = await client.post("/api/v1/users", json=body, headers=admin.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "email", r.text
    assert "too long before the @-sign (1 character too many)" in r.json()["errors"][0]["message"], r.text
    r = await client.put(f"/api/v1/users/{viewer.id}", json={"email": too_long}, headers=admin.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "email", r.text
    r = await client.put("/api/v1/auth/me", json={"email": too_long}, headers=viewer.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "email", r.text
    r = await client.post("/api/v1/users", json={**NEW_USER, "email": longest}, headers=admin.headers)
    assert r.status_code == 201 and r.json()["email"] == longest, r.text


async def test_list_is_paginated_and_searchable(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    for i in range(5):
        r = await client.post(
            "/api/v1/users",
            json={
                "username": f"team{i}",
                "email": f"t{i}@corp.example",
                "password": "Team-Pass-123",
                "full_name": f"Member {i}",
            },
            headers=admin.headers,
        )
        assert r.status_code == 201
    page = await client.get("/api/v1/users", params={"skip": 2, "limit": 2}, headers=admin.headers)
    body = page.json()
    assert body["total"] == 6 and body["skip"] == 2 and body["limit"] == 2
    assert [u["username"] for u in body["items"]] == ["team1", "team2"]
    found = await client.get("/api/v1/users", params={"search": "CORP.example"}, headers=admin.headers)
    assert found.json()["total"] == 5
    by_name = await client.get("/api/v1/users", params={"search": "member 3"}, headers=admin.headers)
    assert [u["username"] for u in by_name.json()["items"]] == ["team3"]
    # Every cased letter folds, on SQLite too (its lower() folds A-Z only: db/fold.py).
    r = await client.post(
        "/api/v1/users",
        json={
            "username": "emile",
            "email": "e@corp.example",
            "password": "Team-Pass-123",
            "full_name": "ÉMILE Ångström",
        },
        headers=admin.headers,
    )
    assert r.status_code == 201, r.text
    for search in ("émile", "ångström", "ÅNGSTRÖM"):
        found = await client.get("/api/v1/users", params={"search": search}, headers=admin.headers)
        assert [u["username"] for u in found.json()["items"]] == ["emile"], (search, found.text)
    wildcard = await client.get("/api/v1/users", params={"search": "%"}, headers=admin.headers)
    assert wildcard.json()["total"] == 0, "LIKE wildcards are matched literally"
    for params in ({"limit": 0}, {"limit": 1000}, {"skip": -1}):
        assert (await client.get("/api/v1/users", params=params, headers=admin.headers)).status_code == 422


async def test_update_role_details_and_validation(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn
) -> None:
    url = f"/api/v1/users/{viewer.id}"
    r = await client.put(
        url,
        json={"role": "operator", "full_name": "Val Viewer", "email": "val@example.com"},
        headers=admin.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["role"] == "operator" and r.json()["email"] == "val@example.com"
    me = await client.get("/api/v1/auth/me", headers=viewer.headers)
    assert me.json()["role"] == "operator", "a role change applies to the next request"
    assert (await client.put(url, json={}, headers=admin.headers)).status_code == 422
    assert (await client.put(url, json={"password": "x" * 10}, headers=admin.headers)).status_code == 422
    assert (await client.put(url, json={"email": "nope"}, headers=admin.headers)).status_code == 422
    taken = await client.put(url, json={"email": "admin@example.com"}, headers=admin.headers)
    assert taken.status_code == 409
    events = await client.get(
        "/api/v1/audit",
        params={"action": "user.update", "target_type": "user", "target_id": viewer.id},
        headers=admin.headers,
    )
    changes = events.json()["items"][0]["details"]["changes"]
    assert changes["role"] == {"from": "viewer", "to": "operator"}


async def test_an_update_that_changes_nothing_is_not_audited(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn
) -> None:
    """Deactivating an inactive user, or sending the stored values (an unchanged form's Save),
    recorded a `user.update` with `changes: {}` (and revoked the sessions again): the audit
    trail said a change happened where none did."""
    url = f"/api/v1/users/{viewer.id}"

    async def updates() -> list[dict[str, object]]:
        params = {"action": "user.update", "target_type": "user", "target_id": viewer.id}
        return list((await client.get("/api/v1/audit", params=params, headers=admin.headers)).json()["items"])

    for _ in range(2):
        r = await client.put(url, json={"is_active": False}, headers=admin.headers)
        assert r.status_code == 200 and r.json()["is_active"] is False
    stored = r.json()
    same = {"role": "viewer", "email": stored["email"].upper(), "full_name": stored["full_name"]}
    r = await client.put(url, json=same, headers=admin.headers)
    assert r.status_code == 200 and r.json()["updated_at"] == stored["updated_at"]
    assert [e["details"]["changes"] for e in await updates()] == [
        {"is_active": {"from": "True", "to": "False"}}
    ]


async def test_unknown_and_out_of_range_ids(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    assert (await client.get("/api/v1/users/999999", headers=admin.headers)).status_code == 404
    for bad in ("99999999999999999999", "0", "abc"):
        r = await client.get(f"/api/v1/users/{bad}", headers=admin.headers)
        assert r.status_code == 422, (bad, r.text)
    r = await client.put("/api/v1/users/999999", json={"full_name": "x"}, headers=admin.headers)
    assert r.status_code == 404
    assert (await client.delete("/api/v1/users/999999", headers=admin.headers)).status_code == 404


async def test_deactivation_ends_sessions_and_refresh_tokens(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn
) -> None:
    tokens = (await _login(client, "operator")).json()
    r = await client.put(f"/api/v1/users/{operator.id}", json={"is_active": False}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["is_active"] is False
    assert (await client.get("/api/v1/auth/me", headers=operator.headers)).status_code == 401
    refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 401
    login = await _login(client, "operator")
    assert login.status_code == 401 and "deactivated" in login.json()["detail"]
    wrong = await _login(client, "operator", "not-the-password")
    assert wrong.json()["detail"] == "incorrect username or password", "no hint without the password"
    await client.put(f"/api/v1/users/{operator.id}", json={"is_active": True}, headers=admin.headers)
    assert (await _login(client, "operator")).status_code == 200


async def test_reset_password(client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn) -> None:
    url = f"/api/v1/users/{viewer.id}/reset-password"
    refused = await client.post(url, json={"new_password": "viewer"}, headers=admin.headers)
    assert refused.status_code == 422
    # Named as the body's key (it said `password`, which is not in the body).
    detail = refused.json()["detail"]
    assert detail.startswith("invalid input: new_password: must be at least 8 characters, not 6"), detail
    assert {e["field"] for e in refused.json()["errors"]} == {"new_password"}
    r = await client.post(url, json={"new_password": "Reset-Pass-456"}, headers=admin.headers)
    assert r.status_code == 200 and "Reset-Pass-456" not in r.text
    assert (await client.get("/api/v1/auth/me", headers=viewer.headers)).status_code == 401
    assert (await _login(client, "viewer")).status_code == 401
    assert (await _login(client, "viewer", "Reset-Pass-456")).status_code == 200
    events = await client.get(
        "/api/v1/audit", params={"action": "user.reset_password"}, headers=admin.headers
    )
    assert events.json()["total"] == 1 and "Reset-Pass-456" not in events.text


async def test_an_admin_cannot_reset_their_own_password(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """An admin's reset asks for no current password: on their own account, a stolen access
    token was enough to take it over (200, the password changed). Refused (403) pointing to
    the change that asks for the current one; nothing changed, nothing audited."""
    url = f"/api/v1/users/{admin.id}/reset-password"
    r = await client.post(url, json={"new_password": "Taken-Over-456"}, headers=admin.headers)
    assert r.status_code == 403, r.text
    assert r.json()["detail"].startswith("you cannot reset your own password: change it in your profile")
    assert "/api/v1/auth/change-password" in r.json()["detail"]
    assert (await client.get("/api/v1/auth/me", headers=admin.headers)).status_code == 200, "session kept"
    assert (await _login(client, admin.username, "Taken-Over-456")).status_code == 401
    assert (await _login(client, admin.username)).status_code == 200
    events = await client.get(
        "/api/v1/audit", params={"action": "user.reset_password"}, headers=admin.headers
    )
    assert events.json()["total"] == 0


async def test_delete_user_ends_access(client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn) -> None:
    tokens = (await _login(client, "viewer")).json()
    assert (await client.delete(f"/api/v1/users/{viewer.id}", headers=admin.headers)).status_code == 204
    assert (await client.get("/api/v1/auth/me", headers=viewer.headers)).status_code == 401
    refresh = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 401
    assert (await client.get(f"/api/v1/users/{viewer.id}", headers=admin.headers)).status_code == 404
    events = await client.get("/api/v1/audit", params={"action": "user.delete"}, headers=admin.headers)
    assert events.json()["items"][0]["details"]["username"] == "viewer"


async def test_never_yourself(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    url = f"/api/v1/users/{admin.id}"
    r = await client.delete(url, headers=admin.headers)
    assert r.status_code == 403 and "your own account" in r.json()["detail"]
    refusals = {
        "role": "you cannot remove your own admin role: another admin can",
        "is_active": "you cannot deactivate yourself: another admin can",
    }
    for change in ({"role": "operator"}, {"is_active": False}):
        r = await client.put(url, json=change, headers=admin.headers)
        assert r.status_code == 403, change
        # The field is named, so that the users page shows the refusal under it.
        (field,) = change
        assert r.json()["errors"] == [{"field": field, "message": refusals[field]}]
    r = await client.put(url, json={"full_name": "Still Admin"}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["role"] == "admin"


async def test_admins_keep_at_least_one_active_admin(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    second = await make_user(client, "admin", "second")
    demote = await client.put(f"/api/v1/users/{second.id}", json={"role": "viewer"}, headers=admin.headers)
    assert demote.status_code == 200
    # `admin` is now the only active admin: it can neither demote, deactivate nor delete itself.
    for change in ({"role": "viewer"}, {"is_active": False}):
        assert (
            await client.put(f"/api/v1/users/{admin.id}", json=change, headers=admin.headers)
        ).status_code == 403
    assert (await client.delete(f"/api/v1/users/{admin.id}", headers=admin.headers)).status_code == 403
    listing = await client.get("/api/v1/users", params={"search": "admin"}, headers=admin.headers)
    admins = [u for u in listing.json()["items"] if u["role"] == "admin" and u["is_active"]]
    assert [u["username"] for u in admins] == ["admin"]


async def test_users_can_read_only_themselves(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn
) -> None:
    assert (await client.get(f"/api/v1/users/{viewer.id}", headers=viewer.headers)).status_code == 200
    assert (await client.get(f"/api/v1/users/{admin.id}", headers=viewer.headers)).status_code == 403
    r = await client.put(f"/api/v1/users/{viewer.id}", json={"role": "admin"}, headers=viewer.headers)
    assert r.status_code == 403 and "viewer" in r.json()["detail"]


@pytest.mark.parametrize(
    ("full_name", "message"),
    [
        ("Eve\u0007", "control characters (U+0007)"),
        ("Eve\nAdmin", "control characters (U+000A)"),
        ("\u202eeve", "must start with a visible letter, digit or symbol (U+202E prints as nothing)"),
        ("Ev\u202ee", "or reorder the text (U+202E)"),
        ("Ev\u200be", "print as nothing or as blank space, or reorder the text (U+200B)"),
        ("Eve\u3164", "print as nothing or as blank space, or reorder the text (U+3164)"),
    ],
)
async def test_a_full_name_refuses_control_and_invisible_characters(
    client: httpx.AsyncClient, admin: LoggedIn, full_name: str, message: str
) -> None:
    """A full name is shown to others (the header, the users list, who asked for an approval): a
    newline, a bell or a right-to-left override in it spoofs what they read, as in other names."""
    body = {
        "username": "eve",
        "email": "eve@example.com",
        "password": "SecurePass123",
        "full_name": full_name,
    }
    r = await client.post("/api/v1/users", json=body, headers=admin.headers)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == ["full_name"]
    assert message in r.json()["errors"][0]["message"]
    r = await client.put(f"/api/v1/users/{admin.id}", json={"full_name": full_name}, headers=admin.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "full_name", r.text


async def test_a_full_name_is_trimmed_and_may_be_empty(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    for given, stored in (("  Zoë Brontë  ", "Zoë Brontë"), ("", ""), ("   ", "")):
        body = {
            "username": f"zed{len(given)}",
            "email": f"zed{len(given)}@example.com",
            "password": "SecurePass123",
        }
        r = await client.post("/api/v1/users", json={**body, "full_name": given}, headers=admin.headers)
        assert r.status_code == 201 and r.json()["full_name"] == stored, r.text


async def test_a_username_is_trimmed_as_at_sign_in(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """The browser's form trimmed the username and sign-in ignores surrounding spaces, but the API
    refused ` yan ` (422): the rule lives in the service's model now, for both."""
    body = {"username": "  yan\t", "email": "yan@example.com", "password": "SecurePass123"}
    r = await client.post("/api/v1/users", json=body, headers=admin.headers)
    assert r.status_code == 201 and r.json()["username"] == "yan", r.text
    long = {"username": " " + "y" * 64 + " ", "email": "y64@example.com", "password": "SecurePass123"}
    r = await client.post("/api/v1/users", json=long, headers=admin.headers)
    assert r.status_code == 201 and r.json()["username"] == "y" * 64, r.text
    taken = {**body, "username": " YAN ", "email": "yan2@example.com"}
    r = await client.post("/api/v1/users", json=taken, headers=admin.headers)
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "username", r.text


async def test_users_change_their_own_email_and_full_name(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn
) -> None:
    """The seed's self-service "profile management": `PUT /api/v1/auth/me`, any role; the role and
    the active state are not part of it (422), a taken email is a 409 naming `email`."""
    body = {"email": "Viewer.New@Example.com", "full_name": "  Vera Viewer "}
    r = await client.put("/api/v1/auth/me", json=body, headers=viewer.headers)
    assert r.status_code == 200, r.text
    assert (r.json()["email"], r.json()["full_name"], r.json()["role"]) == (
        "viewer.new@example.com",
        "Vera Viewer",
        "viewer",
    )
    me = (await client.get("/api/v1/auth/me", headers=viewer.headers)).json()
    assert (me["email"], me["full_name"]) == ("viewer.new@example.com", "Vera Viewer")
    for refused in ({"role": "admin"}, {"is_active": False}, {"username": "root"}):
        r = await client.put("/api/v1/auth/me", json=refused, headers=viewer.headers)
        assert r.status_code == 422, r.text
        assert [e["field"] for e in r.json()["errors"]] == list(refused)
    assert (await client.get("/api/v1/auth/me", headers=viewer.headers)).json()["role"] == "viewer"
    r = await client.put("/api/v1/auth/me", json={}, headers=viewer.headers)
    assert r.status_code == 422, r.text
    r = await client.put("/api/v1/auth/me", json={"email": "not-an-email"}, headers=viewer.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "email", r.text
    r = await client.put("/api/v1/auth/me", json={"full_name": "Eve\u202e"}, headers=viewer.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "full_name", r.text
    admin_email = (await client.get("/api/v1/auth/me", headers=admin.headers)).json()["email"]
    r = await client.put("/api/v1/auth/me", json={"email": admin_email.upper()}, headers=viewer.headers)
    assert r.status_code == 409 and r.json()["errors"][0]["field"] == "email", r.text
    audit = (
        await client.get("/api/v1/audit", params={"action": "user.update"}, headers=admin.headers)
    ).json()
    assert [e["actor_id"] for e in audit["items"] if e["target_id"] == str(viewer.id)] == [viewer.id]


async def test_a_field_changed_since_the_edit_started_is_not_undone(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn
) -> None:
    """Two admins' tabs (or an admin and the user's Profile page) change the same field of one
    account: the later save put back its own value without a word. With `base` (what the edit
    started from) it is a 409 naming the field, nothing written; fields sent as they started
    keep what was saved meanwhile; emails compare ignoring case, as they are stored."""
    url = f"/api/v1/users/{viewer.id}"
    shown = (await client.get(url, headers=admin.headers)).json()
    base = {key: shown[key] for key in ("email", "full_name", "role", "is_active")}
    r = await client.put(url, json={"role": "operator", "base": base}, headers=admin.headers)
    assert r.status_code == 200, r.text
    r = await client.put(
        url, json={"role": "admin", "full_name": "Vera", "base": base}, headers=admin.headers
    )
    assert r.status_code == 409 and [e["field"] for e in r.json()["errors"]] == ["role"], r.text
    assert (await client.get(url, headers=admin.headers)).json()["full_name"] == shown["full_name"]
    # The role as it started: the stored one stays, the full name is saved.
    body = {"role": base["role"], "full_name": "Vera", "base": base}
    r = await client.put(url, json=body, headers=admin.headers)
    assert r.status_code == 200 and (r.json()["role"], r.json()["full_name"]) == ("operator", "Vera"), r.text
    profile = {"email": shown["email"].upper(), "full_name": shown["full_name"]}
    r = await client.put("/api/v1/auth/me", json={"full_name": "V.", "base": profile}, headers=viewer.headers)
    assert r.status_code == 409 and [e["field"] for e in r.json()["errors"]] == ["full_name"], r.text
    body = {"email": "vera@example.com", "base": profile}
    r = await client.put("/api/v1/auth/me", json=body, headers=viewer.headers)
    assert r.status_code == 200 and (r.json()["email"], r.json()["full_name"]) == ("vera@example.com", "Vera")
    for refused in (
        {"full_name": "V.", "base": {"role": "admin"}},
        {"role": "viewer", "base": {"email": None}},
    ):
        r = await client.put(
            "/api/v1/auth/me" if "full_name" in refused else url, json=refused, headers=admin.headers
        )
        assert r.status_code == 422 and r.json()["errors"][0]["field"].startswith("base."), r.text


@pytest.mark.parametrize("change", ["demote", "deactivate", "delete"])
async def test_two_admins_removing_each_other_at_once_leave_one(
    client: httpx.AsyncClient, admin: LoggedIn, change: str
) -> None:
    """Two admins who demote, deactivate or delete each other at the same moment: one wins, the
    other is refused (each used to count two admins and both succeeded, leaving none). When both
    requests are past their sign-in check the refusal is the last-admin 409; when one ended
    before the other was signed in (a loaded machine), the other's admin is gone already: 403
    (demoted), 401 (deactivated or deleted)."""
    first, second = await make_user(client, "admin", "first"), await make_user(client, "admin", "second")
    demoted = await client.put(f"/api/v1/users/{admin.id}", json={"role": "viewer"}, headers=first.headers)
    assert demoted.status_code == 200

    def remove(actor: LoggedIn, target: LoggedIn) -> Awaitable[httpx.Response]:
        url = f"/api/v1/users/{target.id}"
        if change == "delete":
            return client.delete(url, headers=actor.headers)
        body = {"role": "viewer"} if change == "demote" else {"is_active": False}
        return client.put(url, json=body, headers=actor.headers)

    answers = await asyncio.gather(remove(first, second), remove(second, first))
    codes = sorted(a.status_code for a in answers)
    assert codes[0] == (204 if change == "delete" else 200) and codes[1] in (401, 403, 409), [
        a.text for a in answers
    ]
    refused = next(a for a in answers if a.status_code >= 400)
    if refused.status_code == 409:
        assert "last active admin" in refused.json()["detail"]
    async with runtime.current().db.session() as session:
        admins = (await session.exec(select(User).where(User.role == Role.admin, col(User.is_active)))).all()
    assert len(admins) == 1


@pytest.mark.parametrize("change", ["demote", "delete"])
async def test_an_admin_demoted_mid_request_removes_no_admin(
    client: httpx.AsyncClient, admin: LoggedIn, change: str
) -> None:
    """A request authorized while its admin still was one (the demotion committed just after)
    may not then demote or delete another admin: 403, and that admin stays."""
    acting, target = await make_user(client, "admin", "acting"), await make_user(client, "admin", "target")
    async with runtime.current().db.session() as session:
        stale = await session.get(User, acting.id)
        assert stale is not None
        session.expunge(stale)  # the acting user as the request saw it: still an admin
    demoted = await client.put(f"/api/v1/users/{acting.id}", json={"role": "viewer"}, headers=admin.headers)
    assert demoted.status_code == 200
    async with runtime.current().db.session() as session:
        with pytest.raises(Forbidden, match="admin role was removed"):
            if change == "delete":
                await users.delete(session, Actor(stale), target.id)
            else:
                await users.update_user(session, Actor(stale), target.id, users.UserUpdate(role=Role.viewer))
    async with runtime.current().db.session() as session:
        kept = await session.get(User, target.id)
    assert kept is not None and kept.role == Role.admin and kept.is_active
