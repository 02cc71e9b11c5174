"""The access-token user cache (services/user_cache.py, issue 15): a change to a user is seen by
that user's very next request, though the row is cached for `TTL_SECONDS`."""

from __future__ import annotations

import httpx
import pytest

from opscraft import runtime
from opscraft.db.models import User
from opscraft.services import user_cache
from tests.conftest import LoggedIn


@pytest.fixture(autouse=True)
def long_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    """A TTL far longer than the test, so only invalidation can explain a fresh answer."""
    monkeypatch.setattr(user_cache, "TTL_SECONDS", 3600.0)


async def me(client: httpx.AsyncClient, who: LoggedIn) -> httpx.Response:
    return await client.get("/api/v1/auth/me", headers=who.headers)


async def test_a_role_change_is_seen_by_the_next_request(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn
) -> None:
    assert (await me(client, operator)).json()["role"] == "operator"  # now cached
    changed = await client.put(f"/api/v1/users/{operator.id}", json={"role": "viewer"}, headers=admin.headers)
    assert changed.status_code == 200, changed.text
    assert (await me(client, operator)).json()["role"] == "viewer"
    script = {"name": "refused", "script_type": "bash", "content": "echo hi\n"}
    refused = await client.post("/api/v1/scripts", json=script, headers=operator.headers)
    assert refused.status_code == 403, refused.text


async def test_deactivation_and_password_change_end_the_token_at_once(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, viewer: LoggedIn
) -> None:
    assert (await me(client, operator)).status_code == 200
    assert (await me(client, viewer)).status_code == 200
    off = await client.put(f"/api/v1/users/{operator.id}", json={"is_active": False}, headers=admin.headers)
    assert off.status_code == 200, off.text
    assert (await me(client, operator)).status_code == 401
    reset = await client.post(
        f"/api/v1/users/{viewer.id}/reset-password",
        json={"new_password": "Another-Pass-42"},
        headers=admin.headers,
    )
    assert reset.status_code in (200, 204), reset.text
    assert (await me(client, viewer)).status_code == 401, "the token version changed"


async def test_a_change_outside_the_api_is_seen_too(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    """Any ORM update of the row (the CLI, the UI, a service) drops the entry."""
    assert (await me(client, operator)).json()["full_name"] in ("", None)
    async with runtime.current().db.session() as session:
        user = await session.get(User, operator.id)
        assert user is not None
        user.full_name = "Renamed Elsewhere"
        await session.commit()
    assert (await me(client, operator)).json()["full_name"] == "Renamed Elsewhere"


async def test_a_rolled_back_change_is_not_cached_as_committed(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    async with runtime.current().db.session() as session:
        user = await session.get(User, operator.id)
        assert user is not None
        user.role = "viewer"
        await session.flush()  # dropped at flush: a read now sees the committed row
        await session.rollback()
    assert (await me(client, operator)).json()["role"] == "operator"


async def test_entries_are_kept_apart_per_database(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    """One process may serve several databases (the tests do): the key includes the engine."""
    assert (await me(client, operator)).status_code == 200
    assert (runtime.current().db.engine, operator.id) in user_cache._entries

    async def not_loaded(_user_id: int) -> User | None:
        return None

    assert await user_cache.get(object(), operator.id, not_loaded) is None
