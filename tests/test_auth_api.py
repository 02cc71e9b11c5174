"""Auth API: the seed's shapes, first-user admin, closed registration, tokens."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import httpx
import jwt
import pytest
from sqlmodel import col, select, update

from opscraft import runtime
from opscraft.db.models import RefreshToken
from opscraft.db.types import utcnow
from tests.conftest import PASSWORD, LoggedIn

SEED_REGISTER = {
    "username": "admin",
    "email": "admin@example.com",
    "password": "SecurePass123",
    "full_name": "System Administrator",
}


async def test_seed_register_login_me(client: httpx.AsyncClient) -> None:
    r = await client.post("/api/v1/auth/register", json=SEED_REGISTER)
    assert r.status_code == 201, r.text
    assert r.json()["role"] == "admin"
    assert "password" not in r.text and "hashed" not in r.text
    r = await client.post("/api/v1/auth/login", json={"username": "admin", "password": "SecurePass123"})
    assert r.status_code == 200
    body = r.json()
    assert set(body) == {"access_token", "refresh_token", "token_type"} and body["token_type"] == "bearer"
    me = await client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200 and me.json()["username"] == "admin"
    assert me.json()["last_login_at"] is not None


async def test_registration_closed_after_first_user(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    r = await client.post(
        "/api/v1/auth/register", json={**SEED_REGISTER, "username": "john", "email": "j@example.com"}
    )
    assert r.status_code == 403
    assert "closed" in r.json()["detail"]
    r = await client.put("/api/v1/settings", json={"registration_open": True}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["registration_open"] is True
    john = {**SEED_REGISTER, "username": "john", "email": "j@example.com"}
    r = await client.post("/api/v1/auth/register", json={**john, "role": "admin"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "role", "refused, not ignored"
    r = await client.post("/api/v1/auth/register", json=john)
    assert r.status_code == 201 and r.json()["role"] == "viewer"


async def test_login_failure_is_generic_and_audited(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    r = await client.post("/api/v1/auth/login", json={"username": "admin", "password": "wrong-password"})
    assert r.status_code == 401 and r.json()["detail"] == "incorrect username or password"
    r2 = await client.post("/api/v1/auth/login", json={"username": "nobody", "password": "wrong-password"})
    assert r2.json()["detail"] == r.json()["detail"]
    events = await client.get("/api/v1/audit", params={"action": "auth.login_failed"}, headers=admin.headers)
    assert events.json()["total"] == 2
    assert "wrong-password" not in events.text


async def test_refresh_rotates_and_revokes(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    tokens = (
        await client.post("/api/v1/auth/login", json={"username": "admin", "password": "Correct-Horse-9"})
    ).json()
    r = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert r.status_code == 200
    new = r.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    again = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert again.status_code == 401 and "revoked" in again.json()["detail"]
    wrong_type = await client.post("/api/v1/auth/refresh", json={"refresh_token": new["access_token"]})
    assert wrong_type.status_code == 401
    as_access = await client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {new['refresh_token']}"}
    )
    assert as_access.status_code == 401


async def _login(client: httpx.AsyncClient, username: str = "admin") -> dict[str, str]:
    r = await client.post("/api/v1/auth/login", json={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def _refresh(client: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await client.post("/api/v1/auth/refresh", json={"refresh_token": refresh_token})


async def test_a_rotated_refresh_token_presented_again_ends_its_whole_sign_in(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """RFC 6749 10.4 / OAuth 2.0 Security BCP: a refresh token already exchanged, presented again,
    is a stolen copy (or a replay): every refresh token of that sign-in is revoked, the newest the
    thief or the client holds included, it is audited, and the answer says so. It was only
    refused, and the thief's newer token went on working. Another sign-in of the user is kept."""
    first = await _login(client)
    other = await _login(client)
    second = (await _refresh(client, first["refresh_token"])).json()
    third = await _refresh(client, second["refresh_token"])
    assert third.status_code == 200, third.text
    reused = await _refresh(client, first["refresh_token"])
    assert reused.status_code == 401, reused.text
    assert reused.json()["detail"] == (
        "this refresh token was already exchanged for a new one: presented again, it may have been "
        "stolen, so every refresh token of this sign-in is revoked: log in again"
    )
    assert reused.headers["WWW-Authenticate"] == "Bearer"
    newest = await _refresh(client, third.json()["refresh_token"])
    assert newest.status_code == 401 and "used or revoked" in newest.json()["detail"], "the family ended"
    assert (await _refresh(client, other["refresh_token"])).status_code == 200, "another sign-in stays"
    events = await client.get("/api/v1/audit?action=auth.refresh_reused", headers=admin.headers)
    (event,) = events.json()["items"]
    assert event["target_type"] == "user" and event["target_id"] == str(admin.id), event
    assert event["details"]["refresh_tokens_revoked"] == 1, "the newest: the others were rotated"
    # A token revoked otherwise (a logout) is only refused: no theft is assumed.
    fresh = await _login(client)
    me = {"Authorization": f"Bearer {fresh['access_token']}"}
    body = {"refresh_token": fresh["refresh_token"]}
    assert (await client.post("/api/v1/auth/logout", json=body, headers=me)).status_code == 200
    gone = await _refresh(client, fresh["refresh_token"])
    assert gone.status_code == 401 and gone.json()["detail"].startswith("the refresh token has been used")
    events = await client.get("/api/v1/audit?action=auth.refresh_reused", headers=admin.headers)
    assert events.json()["total"] == 1


async def test_no_refresh_outlives_the_sign_in_max_age(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """Refresh tokens slid forever: each refresh gave 7 more days. A sign-in now ends
    `OPSCRAFT_SESSION_MAX_AGE_DAYS` (7) after the password was typed, however often refreshed:
    no token of it expires later, and a refresh past it is a 401 saying so."""
    tokens = await _login(client)
    refreshed = (await _refresh(client, tokens["refresh_token"])).json()
    async with runtime.current().db.session() as session:
        rows = (await session.exec(select(RefreshToken).where(RefreshToken.user_id == admin.id))).all()
        by_family: dict[str, list[RefreshToken]] = {}
        for row in rows:
            by_family.setdefault(row.family_id, []).append(row)
        (family,) = [f for f in by_family.values() if len(f) == 2]
        assert family[0].signed_in_at == family[1].signed_in_at, "the sign-in time is passed on"
        for row in family:
            # (issued a few microseconds after the sign-in time was read)
            assert row.expires_at <= row.signed_in_at + timedelta(days=7, seconds=1)
        # The sign-in was 7 days ago, less a minute: the token expires with it.
        await session.exec(
            update(RefreshToken)
            .where(col(RefreshToken.family_id) == family[0].family_id)
            .values(signed_in_at=utcnow() - timedelta(days=7) + timedelta(seconds=60))
        )
        await session.commit()
    last = await _refresh(client, refreshed["refresh_token"])
    assert last.status_code == 200, last.text
    claims = jwt.decode(last.json()["refresh_token"], options={"verify_signature": False})
    assert claims["exp"] - time.time() <= 61, "no later than the sign-in's end"
    access = jwt.decode(last.json()["access_token"], options={"verify_signature": False})
    assert access["exp"] - time.time() <= 61
    async with runtime.current().db.session() as session:
        await session.exec(update(RefreshToken).values(signed_in_at=utcnow() - timedelta(days=7, seconds=1)))
        await session.commit()
    over = await _refresh(client, last.json()["refresh_token"])
    assert over.status_code == 401
    assert over.json()["detail"] == (
        "your sign-in is over 7 days old (OPSCRAFT_SESSION_MAX_AGE_DAYS): log in again"
    )


async def test_logout_never_answers_logged_out_when_nothing_ended(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn
) -> None:
    """`POST /auth/logout` answered 200 "logged out" to a refresh token that was not the caller's
    (garbage, an access token, another user's: the real one stayed valid for 7 days) and to a
    personal access token (which went on working): the client believed it had ended something."""
    login = {"username": "admin", "password": "Correct-Horse-9"}
    tokens = (await client.post("/api/v1/auth/login", json=login)).json()
    theirs = (await client.post("/api/v1/auth/login", json={**login, "username": "viewer"})).json()
    me = {"Authorization": f"Bearer {tokens['access_token']}"}
    message = "is not a refresh token of yours: send the refresh_token your login (or last refresh) returned"
    for wrong in ("garbage", tokens["access_token"], theirs["refresh_token"]):
        r = await client.post("/api/v1/auth/logout", json={"refresh_token": wrong}, headers=me)
        assert r.status_code == 422, r.text
        assert r.json()["errors"] == [{"field": "refresh_token", "message": message}]
    refreshed = await client.post("/api/v1/auth/refresh", json={"refresh_token": theirs["refresh_token"]})
    assert refreshed.status_code == 200, "another user's refresh token was not touched"
    r = await client.post("/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}, headers=me)
    assert r.status_code == 200 and r.json() == {"detail": "logged out"}
    gone = await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert gone.status_code == 401
    assert (await client.post("/api/v1/auth/logout", headers=me)).status_code == 200, "no body: still fine"
    # Without a body, the sign-in of the access token ends, also from a refreshed pair: its
    # refresh token went on refreshing for 7 days after "logged out". Another sign-in goes on.
    other = (await client.post("/api/v1/auth/login", json=login)).json()
    for refreshes in (0, 1):
        pair = (await client.post("/api/v1/auth/login", json=login)).json()
        for _ in range(refreshes):
            pair = (
                await client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
            ).json()
        bearer = {"Authorization": f"Bearer {pair['access_token']}"}
        r = await client.post("/api/v1/auth/logout", headers=bearer)
        assert r.status_code == 200 and r.json() == {"detail": "logged out"}, r.text
        ended = await client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
        assert ended.status_code == 401 and "has been used or revoked" in ended.text, (refreshes, ended.text)
    kept = await client.post("/api/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert kept.status_code == 200, kept.text

    created = await client.post("/api/v1/tokens", json={"name": "ci"}, headers=admin.headers)
    pat = {"Authorization": f"Bearer {created.json()['token']}"}
    r = await client.post("/api/v1/auth/logout", headers=pat)
    assert r.status_code == 403 and "DELETE /api/v1/tokens/{id}" in r.json()["detail"], r.text
    assert (await client.get("/api/v1/auth/me", headers=pat)).status_code == 200


async def test_change_password_ends_sessions(client: httpx.AsyncClient, viewer: LoggedIn) -> None:
    tokens = (
        await client.post("/api/v1/auth/login", json={"username": "viewer", "password": "Correct-Horse-9"})
    ).json()
    bad = await client.post(
        "/api/v1/auth/change-password",
        json={"current_password": "Correct-Horse-9", "new_password": "short"},
        headers=viewer.headers,
    )
    assert bad.status_code == 422 and "at least 8" in bad.json()["detail"]
    same_as_name = await client.post(
        "/api/v1/auth/change-password",
        json={"current_password": "Correct-Horse-9", "new_password": "viewer"},
        headers=viewer.headers,
    )
    assert same_as_name.status_code == 422
    ok = await client.post(
        "/api/v1/auth/change-password",
        json={"current_password": "Correct-Horse-9", "new_password": "New-Password-42"},
        headers=viewer.headers,
    )
    assert ok.status_code == 200
    assert (await client.get("/api/v1/auth/me", headers=viewer.headers)).status_code == 401
    assert (
        await client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    ).status_code == 401
    login = await client.post(
        "/api/v1/auth/login", json={"username": "viewer", "password": "New-Password-42"}
    )
    assert login.status_code == 200


async def test_validation_errors_name_the_field_and_hide_values(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/api/v1/auth/register",
        json={"username": "x", "email": "not-an-email", "password": "Sup3rSecretValue!", "full_name": ""},
    )
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"username", "email"} <= fields
    assert "Sup3rSecretValue!" not in r.text


async def test_login_rehashes_when_parameters_change(client: httpx.AsyncClient, viewer: LoggedIn) -> None:
    from argon2 import PasswordHasher

    from opscraft import runtime
    from opscraft.db.models import User

    old_hash = PasswordHasher(time_cost=1, memory_cost=512, parallelism=2).hash("Correct-Horse-9")
    async with runtime.current().db.session() as session:
        user = await session.get(User, viewer.id)
        assert user is not None
        user.hashed_password = old_hash
        await session.commit()
    r = await client.post("/api/v1/auth/login", json={"username": "VIEWER", "password": "Correct-Horse-9"})
    assert r.status_code == 200, "usernames ignore case at login"
    async with runtime.current().db.session() as session:
        user = await session.get(User, viewer.id)
        assert user is not None
        assert user.hashed_password != old_hash and user.hashed_password.startswith("$argon2id$")
    again = await client.post(
        "/api/v1/auth/login", json={"username": "viewer", "password": "Correct-Horse-9"}
    )
    assert again.status_code == 200


COMPOSED = "Caf\u00e9-Cr\u00e8me-9"  # é and è as one code point each (NFC)
DECOMPOSED = "Cafe\u0301-Cre\u0300me-9"  # the same password typed as letter + combining accent (NFD)


async def test_a_password_matches_whichever_unicode_form_it_is_typed_in(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """The same password typed composed or decomposed (another keyboard, a paste) signs in: it
    was refused in the form it was not set in (NIST SP 800-63B asks for normalisation)."""
    body = {"username": "accent", "email": "accent@example.com", "password": COMPOSED, "role": "viewer"}
    assert (await client.post("/api/v1/users", json=body, headers=admin.headers)).status_code == 201
    for typed in (COMPOSED, DECOMPOSED):
        r = await client.post("/api/v1/auth/login", json={"username": "accent", "password": typed})
        assert r.status_code == 200, typed
    assert (
        await client.post("/api/v1/auth/login", json={"username": "accent", "password": "Cafe-Creme-9"})
    ).status_code == 401
    headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
    same = {"current_password": COMPOSED, "new_password": DECOMPOSED}
    r = await client.post("/api/v1/auth/change-password", json=same, headers=headers)
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "new_password", "message": "must differ from the current one"}]


async def test_a_hash_of_the_password_as_typed_still_signs_in_and_is_replaced(
    client: httpx.AsyncClient, viewer: LoggedIn
) -> None:
    """A hash made before passwords were normalised (of the decomposed form as typed) still
    verifies with that form, and the login replaces it with the normal form's: both forms work."""
    from opscraft import runtime
    from opscraft.db.models import User
    from opscraft.security import passwords

    old_hash = passwords._hasher.hash(DECOMPOSED)
    async with runtime.current().db.session() as session:
        user = await session.get(User, viewer.id)
        assert user is not None
        user.hashed_password = old_hash
        await session.commit()
    r = await client.post("/api/v1/auth/login", json={"username": viewer.username, "password": DECOMPOSED})
    assert r.status_code == 200
    async with runtime.current().db.session() as session:
        user = await session.get(User, viewer.id)
        assert user is not None and user.hashed_password != old_hash
    r = await client.post("/api/v1/auth/login", json={"username": viewer.username, "password": COMPOSED})
    assert r.status_code == 200


async def test_a_miss_costs_the_same_whether_the_username_exists(
    client: httpx.AsyncClient, viewer: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown username is checked against a dummy hash so that a miss costs one argon2
    verification either way; a password NFKC changes (an accent typed decomposed) cost a known
    user two (the normal form, then the form as typed, for hashes made before the rule) and an
    unknown one still one: the answer's time (about 0.25 s more) told which usernames exist."""
    from argon2 import PasswordHasher

    from opscraft.security import passwords

    counted: list[str] = []

    class Counting(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            counted.append(str(password))
            return super().verify(hash, password)

    monkeypatch.setattr(passwords, "_hasher", Counting())
    cost = {}
    for username in (viewer.username, "nobody-by-this-name"):
        for typed in (DECOMPOSED, "Plain-Wrong-9"):
            counted.clear()
            r = await client.post("/api/v1/auth/login", json={"username": username, "password": typed})
            assert r.status_code == 401, r.text
            cost[username, typed] = len(counted)
    assert cost[viewer.username, DECOMPOSED] == cost["nobody-by-this-name", DECOMPOSED] == 2, cost
    assert cost[viewer.username, "Plain-Wrong-9"] == cost["nobody-by-this-name", "Plain-Wrong-9"] == 1, cost


async def test_two_first_registrations_racing_make_one_admin(client: httpx.AsyncClient) -> None:
    bodies = [{**SEED_REGISTER, "username": f"first{i}", "email": f"first{i}@example.com"} for i in range(2)]
    responses = await asyncio.gather(*(client.post("/api/v1/auth/register", json=b) for b in bodies))
    codes = sorted(r.status_code for r in responses)
    assert codes[0] == 201 and codes[1] in (403, 409), [r.text for r in responses]
    loser = next(r for r in responses if r.status_code != 201)
    assert "administrator" in loser.json()["detail"] or "closed" in loser.json()["detail"]


async def test_change_password_names_every_problem_at_once(
    client: httpx.AsyncClient, viewer: LoggedIn
) -> None:
    """A wrong current password and a new one the rules refuse are both named in one 422 (the
    profile form shows them together); nothing changes."""
    r = await client.post(
        "/api/v1/auth/change-password",
        json={"current_password": "not-mine", "new_password": "short"},
        headers=viewer.headers,
    )
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [
        {"field": "current_password", "message": "incorrect"},
        {"field": "new_password", "message": "must be at least 8 characters, not 5"},
    ]
    r = await client.post(
        "/api/v1/auth/change-password",
        json={"current_password": "not-mine", "new_password": "VIEWER"},
        headers=viewer.headers,
    )
    assert {e["field"] for e in r.json()["errors"]} == {"current_password", "new_password"}, r.text
    assert "the same as the username" in r.json()["detail"]
    assert (await client.get("/api/v1/auth/me", headers=viewer.headers)).status_code == 200, "unchanged"


@pytest.mark.parametrize("blank", [" " * 8, "\t" * 8, " \n" * 6, "\u00a0" * 8, "\u3000" * 10])
async def test_a_password_of_only_blank_characters_is_refused_everywhere(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn, blank: str
) -> None:
    """Eight spaces met the length rule and were a password. Refused with the same message at
    registration, user creation, password change and reset; nothing is written."""
    message = "must not be only spaces or other blank characters"
    attempts = [
        (
            "/api/v1/auth/register",
            {"username": "blanky", "email": "b@example.com", "password": blank},
            {},
            "password",
        ),
        (
            "/api/v1/users",
            {"username": "blanky2", "email": "b2@example.com", "password": blank, "role": "viewer"},
            admin.headers,
            "password",
        ),
        (
            "/api/v1/auth/change-password",
            {"current_password": PASSWORD, "new_password": blank},
            viewer.headers,
            "new_password",
        ),
        (f"/api/v1/users/{viewer.id}/reset-password", {"new_password": blank}, admin.headers, "new_password"),
    ]
    for path, body, headers, field in attempts:
        r = await client.post(path, json=body, headers=headers)
        assert r.status_code == 422, (path, r.text)
        assert {"field": field, "message": message} in r.json()["errors"], (path, r.text)
    listed = (await client.get("/api/v1/users", params={"search": "blanky"}, headers=admin.headers)).json()
    assert listed["total"] == 0, listed
    signed_in = await client.post(
        "/api/v1/auth/login", json={"username": viewer.username, "password": PASSWORD}
    )
    assert signed_in.status_code == 200, "the viewer's password is unchanged"


async def test_a_request_without_a_bearer_token_is_told_what_to_send(client: httpx.AsyncClient) -> None:
    """No token: the 401 says how to send one; credentials of another scheme (HTTP Basic, as a
    script calling with a user name and password sends) are said to be unread, not left unnamed."""
    bare = await client.get("/api/v1/scripts")
    assert bare.status_code == 401
    assert bare.json()["detail"] == "authentication required: send 'Authorization: Bearer <access token>'"
    # A token sent bare (no "Bearer ") is not echoed in the answer.
    bare_token = await client.get("/api/v1/scripts", headers={"Authorization": "eyJhbGciOiJIUzI1NiJ9.e30.x"})
    assert bare_token.status_code == 401
    assert bare_token.json()["detail"] == (
        "authentication required: send 'Authorization: Bearer <access token>'; a header without"
        " 'Bearer ' is not read"
    )
    basic = await client.get("/api/v1/scripts", auth=("admin", PASSWORD))
    assert basic.status_code == 401
    assert basic.json()["detail"] == (
        "authentication required: send 'Authorization: Bearer <access token>'; a Basic header is not read"
    )
