"""Personal access tokens: shown once, hashed, role-capped, expiring, revocable, stopped with
their owner; `Authorization: Bearer ocp_...` on the API and the WebSocket."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import select, update

from opscraft import runtime
from opscraft.db.models import ApiToken, AuditEvent, User
from opscraft.services import api_tokens
from opscraft.services.actor import Actor
from opscraft.services.errors import Invalid, Unauthorized
from tests.conftest import PASSWORD, LoggedIn, make_user


async def create(client: httpx.AsyncClient, who: LoggedIn, **body: Any) -> httpx.Response:
    return await client.post("/api/v1/tokens", json={"name": "ci", **body}, headers=who.headers)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_token_is_shown_once_and_stored_as_a_hash(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    response = await create(client, operator)
    assert response.status_code == 201, response.text
    body = response.json()
    token = body["token"]
    assert token.startswith("ocp_") and len(token) > 40
    assert body["role"] == "operator" and body["expires_at"] is None and body["active"]
    assert token.startswith(body["prefix"])
    listed = (await client.get("/api/v1/tokens", headers=operator.headers)).json()
    assert [t["id"] for t in listed["items"]] == [body["id"]] and listed["total"] == 1
    assert token not in str(listed)
    async with runtime.current().db.session() as session:
        row = await session.get(ApiToken, body["id"])
        assert row is not None
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        events = (await session.exec(select(AuditEvent).where(AuditEvent.action == "api_token.create"))).all()
        assert len(events) == 1 and token not in str(events[0].details)


async def test_bearer_token_acts_as_owner_with_capped_role(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    full = (await create(client, admin)).json()["token"]
    viewer_token = (await create(client, admin, role="viewer", name="read-only")).json()["token"]
    me = await client.get("/api/v1/auth/me", headers=bearer(full))
    assert me.status_code == 200 and me.json()["username"] == "admin"
    assert (await client.get("/api/v1/users", headers=bearer(full))).status_code == 200
    assert (await client.get("/api/v1/users", headers=bearer(viewer_token))).status_code == 403
    assert (await client.get("/api/v1/scripts", headers=bearer(viewer_token))).status_code == 200
    async with runtime.current().db.session() as session:
        row = (await session.exec(select(ApiToken).where(ApiToken.name == "ci"))).one()
        assert row.last_used_at is not None and row.last_used_ip == "127.0.0.1"
    # the stored account keeps its role
    assert (await client.get("/api/v1/auth/me", headers=admin.headers)).json()["role"] == "admin"
    # PUT /auth/me answers the user as GET /auth/me does, with the token's role (it answered the
    # stored row's: the same token read viewer from GET and admin from PUT)
    seen = (await client.get("/api/v1/auth/me", headers=bearer(viewer_token))).json()
    changed = await client.put("/api/v1/auth/me", json={"full_name": "Ada"}, headers=bearer(viewer_token))
    assert changed.status_code == 200, changed.text
    assert seen["role"] == changed.json()["role"] == "viewer" and changed.json()["full_name"] == "Ada"


async def test_role_above_own_is_refused(client: httpx.AsyncClient, viewer: LoggedIn) -> None:
    response = await create(client, viewer, role="admin")
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "role"


async def test_owner_demoted_caps_the_token(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """The token acts as the lower role, and its listing says so (`acts_as`): it read only
    `role: admin` while every request made with it was a viewer's."""
    other = await make_user(client, "admin", "second-admin")
    created = (await create(client, other)).json()
    token = created["token"]
    assert (created["role"], created["acts_as"]) == ("admin", "admin")
    assert (await client.get("/api/v1/users", headers=bearer(token))).status_code == 200
    r = await client.put(f"/api/v1/users/{other.id}", json={"role": "viewer"}, headers=admin.headers)
    assert r.status_code == 200, r.text
    assert (await client.get("/api/v1/users", headers=bearer(token))).status_code == 403
    listed = await client.get("/api/v1/tokens", params={"all": "true"}, headers=admin.headers)
    (mine,) = [t for t in listed.json()["items"] if t["id"] == created["id"]]
    assert (mine["role"], mine["acts_as"]) == ("admin", "viewer"), mine


async def test_expiry_rules(client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn) -> None:
    past = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    r = await create(client, viewer, expires_at=past)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "expires_at"
    r = await client.put("/api/v1/settings", json={"api_tokens_require_expiry": True}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["api_tokens_require_expiry"] is True
    r = await create(client, viewer)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "expires_at"
    soon = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    r = await create(client, viewer, expires_at=soon)
    assert r.status_code == 201, r.text
    token = r.json()["token"]
    assert (await client.get("/api/v1/auth/me", headers=bearer(token))).status_code == 200
    async with runtime.current().db.session() as session:
        await session.exec(
            update(ApiToken)
            .where(ApiToken.id == r.json()["id"])
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
        await session.commit()
    r = await client.get("/api/v1/auth/me", headers=bearer(token))
    assert r.status_code == 401 and "expired" in r.json()["detail"]


async def test_revoke_and_admin_oversight(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, viewer: LoggedIn
) -> None:
    mine = (await create(client, operator)).json()
    theirs = (await create(client, viewer)).json()
    # someone else's token is invisible to a non-admin
    assert (
        await client.delete(f"/api/v1/tokens/{theirs['id']}", headers=operator.headers)
    ).status_code == 404
    assert (await client.get("/api/v1/tokens?all=true", headers=operator.headers)).status_code == 403
    everyone = (await client.get("/api/v1/tokens?all=true", headers=admin.headers)).json()
    assert {t["username"] for t in everyone["items"]} == {"operator", "viewer"}
    # 204 without a body, as every DELETE of the API (it answered 200 with the token)
    r = await client.delete(f"/api/v1/tokens/{theirs['id']}", headers=admin.headers)
    assert r.status_code == 204 and r.content == b"", r.text
    listed = (await client.get("/api/v1/tokens?all=true", headers=admin.headers)).json()["items"]
    (revoked,) = [t for t in listed if t["id"] == theirs["id"]]
    assert revoked["revoked_at"] and not revoked["active"]
    assert (await client.get("/api/v1/auth/me", headers=bearer(theirs["token"]))).status_code == 401
    assert (await client.delete(f"/api/v1/tokens/{mine['id']}", headers=operator.headers)).status_code == 204
    # again: nothing changes, the same answer (idempotent)
    assert (await client.delete(f"/api/v1/tokens/{mine['id']}", headers=operator.headers)).status_code == 204
    assert (await client.get("/api/v1/auth/me", headers=bearer(mine["token"]))).status_code == 401


async def test_the_list_pages_like_every_list(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """`GET /api/v1/tokens` answered a bare array of every token while every other list answers
    `{items, total, skip, limit}`: it pages with `skip` and `limit` (at most 500), newest first."""
    ids = [(await create(client, admin, name=f"ci-{n}")).json()["id"] for n in range(5)]
    newest_first = ids[::-1]
    first = await client.get("/api/v1/tokens", params={"limit": 2}, headers=admin.headers)
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["total"], body["skip"], body["limit"]) == (5, 0, 2)
    assert [t["id"] for t in body["items"]] == newest_first[:2]
    last = (await client.get("/api/v1/tokens?skip=4&limit=2&all=true", headers=admin.headers)).json()
    assert [t["id"] for t in last["items"]] == newest_first[4:] and last["total"] == 5
    r = await client.get("/api/v1/tokens?limit=501", headers=admin.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "limit"
    async with runtime.current().db.session() as session:
        actor = Actor(await session.get(User, admin.id))
        rows, total = await api_tokens.list_tokens(session, actor, skip=1, limit=3)
        assert [i.token.id for i in rows] == newest_first[1:4] and total == 5


async def test_deactivated_owner_stops_at_once(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn
) -> None:
    token = (await create(client, operator)).json()["token"]
    assert (await client.get("/api/v1/auth/me", headers=bearer(token))).status_code == 200
    r = await client.put(f"/api/v1/users/{operator.id}", json={"is_active": False}, headers=admin.headers)
    assert r.status_code == 200, r.text
    r = await client.get("/api/v1/auth/me", headers=bearer(token))
    assert r.status_code == 401 and "deactivated" in r.json()["detail"]


async def test_a_token_cannot_manage_tokens(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    created = (await create(client, admin)).json()
    token = created["token"]
    assert (await create(client, LoggedIn(admin.id, "admin", admin.role, bearer(token)))).status_code == 403
    assert (await client.get("/api/v1/tokens", headers=bearer(token))).status_code == 403
    assert (await client.delete(f"/api/v1/tokens/{created['id']}", headers=bearer(token))).status_code == 403


async def test_unknown_or_malformed_token_is_401(client: httpx.AsyncClient) -> None:
    for value in ("ocp_nope", "ocp_" + "a" * 43, "not-a-jwt"):
        assert (await client.get("/api/v1/auth/me", headers=bearer(value))).status_code == 401
    r = await client.post("/api/v1/tokens", json={"name": ""}, headers=bearer("ocp_x"))
    assert r.status_code == 401


async def test_a_token_request_records_trigger_api_token(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    from tests.executions.conftest import make_script

    script_id = await make_script(client, admin, "true\n")
    token = (await create(client, admin)).json()["token"]
    body = {"script_id": script_id, "runner": "local"}
    via_token = await client.post("/api/v1/executions", json=body, headers=bearer(token))
    via_login = await client.post("/api/v1/executions", json=body, headers=admin.headers)
    assert via_token.status_code == via_login.status_code == 202, via_token.text
    assert (via_token.json()["trigger"], via_login.json()["trigger"]) == ("api_token", "api")
    assert via_token.json()["triggered_by_name"] == "admin"


async def test_the_audit_trail_names_the_token_an_action_was_requested_with(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """What a leaked token did read as its owner's own doing: the audit trail could not tell a
    token from the password sign-in, nor which token it was, when the token was revoked."""
    created = (await create(client, admin)).json()
    via_token = await client.put(
        "/api/v1/auth/me", json={"full_name": "By Token"}, headers=bearer(created["token"])
    )
    via_login = await client.put("/api/v1/auth/me", json={"full_name": "By Login"}, headers=admin.headers)
    assert via_token.status_code == via_login.status_code == 200, via_token.text
    events = await client.get("/api/v1/audit", params={"action": "user.update"}, headers=admin.headers)
    by_login, by_token = events.json()["items"][:2]  # newest first
    assert by_token["details"]["api_token_id"] == created["id"], by_token
    assert by_token["details"]["changes"]["full_name"]["to"] == "By Token"
    assert "api_token_id" not in by_login["details"], by_login
    assert by_token["actor_name"] == by_login["actor_name"] == "admin"


@pytest.mark.parametrize("name", ["x" * 65, "   "])
async def test_a_bad_token_name_is_worded_as_on_the_tokens_page(
    client: httpx.AsyncClient, admin: LoggedIn, name: str
) -> None:
    """The API answered pydantic's "String should have at most 64 characters" where the page
    (the service) said "must be 1 to 64 characters": one message, from the service, which names
    the length sent as every limit's message does ("must be at most 64 characters, not 65")."""
    r = await client.post("/api/v1/tokens", json={"name": name}, headers=admin.headers)
    assert r.status_code == 422, r.text
    async with runtime.current().db.session() as s:
        with pytest.raises(Invalid) as refused:
            await api_tokens.create(s, Actor(await s.get(User, admin.id)), name)
    assert r.json()["errors"] == refused.value.details


async def test_a_password_reset_ends_every_credential_of_the_old_password(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """An admin's reset revokes the user's personal tokens as well as their JWTs (access and
    refresh): a token minted by someone who knew the old password stops with it (audited with
    the count)."""
    user = await make_user(client, "operator", "reset-me")
    login = await client.post("/api/v1/auth/login", json={"username": "reset-me", "password": PASSWORD})
    refresh = login.json()["refresh_token"]
    token = (await create(client, user)).json()["token"]
    assert (await client.get("/api/v1/auth/me", headers=bearer(token))).status_code == 200
    r = await client.post(
        f"/api/v1/users/{user.id}/reset-password",
        json={"new_password": "Another-pass-42"},
        headers=admin.headers,
    )
    assert r.status_code == 200, r.text
    assert (await client.get("/api/v1/auth/me", headers=bearer(token))).status_code == 401, "token revoked"
    assert (await client.get("/api/v1/auth/me", headers=user.headers)).status_code == 401, "JWT ended"
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh})
    assert r.status_code == 401, "refresh token revoked"
    listed = (await client.get("/api/v1/tokens?all=true", headers=admin.headers)).json()
    assert [t["active"] for t in listed["items"] if t["username"] == "reset-me"] == [False]
    async with runtime.current().db.session() as session:
        (event,) = (
            await session.exec(select(AuditEvent).where(AuditEvent.action == "user.reset_password"))
        ).all()
    assert event.details["api_tokens_revoked"] == 1


@pytest.mark.parametrize("ending", ["reset-password", "deactivate"])
async def test_a_token_minted_by_a_sign_in_that_ended_meanwhile_is_not_stored(
    client: httpx.AsyncClient, admin: LoggedIn, ending: str
) -> None:
    """A token request authenticated just before an admin's reset (or a deactivation) committed,
    and stored just after it, outlived the reset that revoked the owner's tokens (reproduced on
    PostgreSQL with 20 concurrent mints). It is refused (401) and nothing is stored."""
    user = await make_user(client, "operator", "racer")
    async with runtime.current().db.session() as session:
        signed_in = await session.get(User, user.id)
        assert signed_in is not None
        session.expunge(signed_in)  # the account as the token request authenticated it
    url = f"/api/v1/users/{user.id}"
    if ending == "reset-password":
        r = await client.post(
            f"{url}/reset-password", json={"new_password": "Another-pass-42"}, headers=admin.headers
        )
    else:
        r = await client.put(url, json={"is_active": False}, headers=admin.headers)
    assert r.status_code == 200, r.text
    async with runtime.current().db.session() as session:
        with pytest.raises(Unauthorized, match="session ended while the token was being created"):
            await api_tokens.create(session, Actor(signed_in), "late")
    async with runtime.current().db.session() as session:
        assert (await session.exec(select(ApiToken).where(ApiToken.user_id == user.id))).all() == []


async def test_one_owner_minting_tokens_at_once_gets_them_all(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """Concurrent creations by one owner each check the sign-in on the owner's row: with a lock
    taken after the insert's foreign-key lock they deadlocked on PostgreSQL (500s)."""
    answers = await asyncio.gather(*(create(client, operator, name=f"ci-{i}") for i in range(8)))
    assert [a.status_code for a in answers] == [201] * 8, [a.text for a in answers if a.status_code != 201]


async def test_deactivation_revokes_tokens_a_role_change_and_own_password_change_do_not(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """Deactivation revokes the tokens (reactivating does not bring them back); a demotion caps
    them at the new role at once, and the owner's own password change keeps them (docs/api.md)."""
    user = await make_user(client, "operator", "tokens-kept")
    token = (await create(client, user)).json()["token"]
    r = await client.put(f"/api/v1/users/{user.id}", json={"role": "viewer"}, headers=admin.headers)
    assert r.status_code == 200, r.text
    assert (await client.get("/api/v1/auth/me", headers=bearer(token))).json()["role"] == "viewer"
    assert (
        await client.post("/api/v1/secrets", json={"name": "X", "value": "y"}, headers=bearer(token))
    ).status_code == 403
    relogin = await client.post("/api/v1/auth/login", json={"username": "tokens-kept", "password": PASSWORD})
    headers = {"Authorization": f"Bearer {relogin.json()['access_token']}"}
    r = await client.post(
        "/api/v1/auth/change-password",
        json={"current_password": PASSWORD, "new_password": "Changed-pass-42"},
        headers=headers,
    )
    assert r.status_code == 200, r.text
    assert (await client.get("/api/v1/auth/me", headers=bearer(token))).status_code == 200, "kept"
    for active in (False, True):
        r = await client.put(f"/api/v1/users/{user.id}", json={"is_active": active}, headers=admin.headers)
        assert r.status_code == 200, r.text
    assert (await client.get("/api/v1/auth/me", headers=bearer(token))).status_code == 401, "revoked for good"
