"""`GET /api/v1/audit` filters and pagination, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlmodel import col, update

from opscraft import runtime
from opscraft.db.models import AuditEvent
from tests.conftest import LoggedIn


async def _events(client: httpx.AsyncClient, admin: LoggedIn, **params: object) -> dict:
    r = await client.get("/api/v1/audit", params=params, headers=admin.headers)
    assert r.status_code == 200, r.text
    return r.json()


async def _seed(client: httpx.AsyncClient, admin: LoggedIn) -> int:
    """Three user creations by the admin and one failed login; returns the id of the first user."""
    ids = []
    for name in ("ann", "ben", "cid"):
        r = await client.post(
            "/api/v1/users",
            json={"username": name, "email": f"{name}@example.com", "password": "Some-Pass-123"},
            headers=admin.headers,
        )
        ids.append(r.json()["id"])
    await client.post("/api/v1/auth/login", json={"username": "ann", "password": "wrong-wrong"})
    return ids[0]


async def test_filters(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    ann = await _seed(client, admin)
    everything = await _events(client, admin)
    actions = [e["action"] for e in everything["items"]]
    assert actions[0] == "auth.login_failed", "newest first"
    assert actions.count("user.create") == 4  # the admin fixture itself, then three
    assert (await _events(client, admin, action="user.create"))["total"] == 4
    by_actor = await _events(client, admin, actor_id=admin.id, action="user.create")
    assert by_actor["total"] == 3 and {e["actor_name"] for e in by_actor["items"]} == {"admin"}
    assert (await _events(client, admin, actor_name="admin", action="user.create"))["total"] == 3
    # Usernames ignore case (signing in as ADMIN is signing in as admin): so does the filter.
    assert (await _events(client, admin, actor_name="ADMIN", action="user.create"))["total"] == 3
    assert (await _events(client, admin, actor_name="Ann", action="auth.login_failed"))["total"] == 1
    target = await _events(client, admin, target_type="user", target_id=ann)
    assert {e["action"] for e in target["items"]} == {"user.create", "auth.login_failed"}
    failed = (await _events(client, admin, action="auth.login_failed"))["items"][0]
    assert failed["client_ip"] == "127.0.0.1" and failed["details"]["reason"] == "bad password"
    assert failed["actor_id"] is None and failed["actor_name"] == "ann"
    assert (await _events(client, admin, action="no.such.action"))["total"] == 0


async def test_time_range(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    await _seed(client, admin)
    old = datetime(2020, 1, 1, 12, tzinfo=UTC)
    async with runtime.current().db.session() as s:
        await s.exec(update(AuditEvent).where(col(AuditEvent.action) == "auth.login_failed").values(time=old))
        await s.commit()
    total = (await _events(client, admin))["total"]
    assert (await _events(client, admin, until="2020-01-02T00:00:00Z"))["total"] == 1
    assert (await _events(client, admin, since="2020-01-02T00:00:00Z"))["total"] == total - 1
    window = await _events(client, admin, since="2020-01-01T11:00:00", until="2020-01-01T13:00:00+00:00")
    assert [e["action"] for e in window["items"]] == ["auth.login_failed"], "a time without zone is UTC"
    now = datetime.now(UTC)
    later = (now + timedelta(days=1)).isoformat()
    r = await client.get(
        "/api/v1/audit", params={"since": later, "until": now.isoformat()}, headers=admin.headers
    )
    assert r.status_code == 422 and "since" in r.json()["detail"]
    r = await client.get("/api/v1/audit", params={"since": "yesterday"}, headers=admin.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "since"


async def test_pagination(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    await _seed(client, admin)
    full = await _events(client, admin)
    page = await _events(client, admin, skip=1, limit=2)
    assert page["total"] == full["total"] and page["skip"] == 1 and page["limit"] == 2
    assert [e["id"] for e in page["items"]] == [e["id"] for e in full["items"][1:3]]
    for params in ({"limit": 0}, {"limit": 501}, {"skip": -1}, {"actor_id": 0}):
        r = await client.get("/api/v1/audit", params=params, headers=admin.headers)
        assert r.status_code == 422, params


async def test_a_wrong_current_password_in_a_password_change_is_audited(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn
) -> None:
    """A password change checks the current password, so a wrong one is a guess, as a failed login
    is: someone holding a signed-in browser or an access token guessed without a trace. Only the
    wrong current password is recorded (not a new password the rules refuse), never a value."""
    for body in (
        {"current_password": "guess-one-1", "new_password": "Whatever-123"},
        {"current_password": "guess-two-2", "new_password": "short"},
        {"current_password": "Correct-Horse-9", "new_password": "short"},
    ):
        r = await client.post("/api/v1/auth/change-password", json=body, headers=viewer.headers)
        assert r.status_code == 422, r.text
    failed = await _events(client, admin, action="user.change_password_failed")
    assert failed["total"] == 2, failed
    for event in failed["items"]:
        assert (event["actor_name"], event["target_type"]) == ("viewer", "user"), event
        assert event["target_id"] == str(viewer.id) and event["details"] == {"reason": "bad password"}
    assert "guess-" not in str(failed) and "Whatever" not in str(failed)
    assert (await client.get("/api/v1/auth/me", headers=viewer.headers)).status_code == 200, "unchanged"


async def test_login_register_and_password_events(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    await client.put("/api/v1/settings", json={"registration_open": True}, headers=admin.headers)
    await client.post(
        "/api/v1/auth/register",
        json={"username": "self", "email": "self@example.com", "password": "Self-Pass-123", "full_name": ""},
    )
    login = await client.post("/api/v1/auth/login", json={"username": "self", "password": "Self-Pass-123"})
    token = login.json()["access_token"]
    await client.post(
        "/api/v1/auth/change-password",
        json={"current_password": "Self-Pass-123", "new_password": "Self-Pass-456"},
        headers={"Authorization": f"Bearer {token}"},
    )
    listing = await _events(client, admin, actor_name="self")
    assert {e["action"] for e in listing["items"]} == {"user.register", "auth.login", "user.change_password"}
    settings_events = await _events(client, admin, action="setting.update")
    assert settings_events["items"][0]["details"] == {"value": True}
    assert "Self-Pass" not in str(listing) + str(settings_events)
