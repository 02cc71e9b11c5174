"""The access-token user cache (services/user_cache.py, issue 15): a change to a user is seen by
that user's very next request, though the row is cached for `TTL_SECONDS`."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from opscraft import runtime
from opscraft.db.models import User
from opscraft.db.rows import new_row
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


def _user(role: str = "operator") -> User:
    """A user row as a load returns it (not in any database: the cache only copies it)."""
    return new_row(
        User,
        id=7,
        username="herd",
        email="herd@example.com",
        hashed_password="x",
        role=role,
        account_key="k" * 32,
    )


async def test_concurrent_misses_share_one_load_and_each_gets_its_own_copy() -> None:
    """A burst's requests on many connections found the entry stale together and each loaded the
    user (32 loads a second in a 1,000-run burst, issue 15): now the first loads, the rest wait
    for it and get detached copies of its row."""
    database, release, calls = object(), asyncio.Event(), []

    async def slow_load(user_id: int) -> User | None:
        calls.append(user_id)
        await release.wait()
        return _user()

    waiting = [asyncio.create_task(user_cache.get(database, 7, slow_load)) for _ in range(20)]
    await asyncio.sleep(0)  # every task has reached the cache
    release.set()
    users = await asyncio.gather(*waiting)
    assert calls == [7], "one load for twenty concurrent misses"
    assert {user.role for user in users} == {"operator"}
    assert len({id(user) for user in users}) == 20, "no two callers share one object"
    assert (database, 7) in user_cache._entries and not len(user_cache._loading)


async def test_a_load_begun_before_a_change_is_not_shared_with_a_request_after_it() -> None:
    """A user changed while a load is under way: a request after the change must not get that
    load's (older) row; it loads again and sees the change."""
    database, release, roles = object(), asyncio.Event(), iter(["operator", "viewer"])

    async def load(user_id: int) -> User | None:
        role = next(roles)
        if role == "operator":
            await release.wait()
        return _user(role)

    before = asyncio.create_task(user_cache.get(database, 7, load))
    await asyncio.sleep(0)
    user_cache.forget(7)  # the role change's commit
    after = await user_cache.get(database, 7, load)
    release.set()
    assert after.role == "viewer" and (await before).role == "operator"
    assert user_cache._entries[(database, 7)][1]["role"] == "viewer", "the older row is not cached"


async def test_a_failed_or_empty_shared_load_leaves_the_waiters_to_their_own() -> None:
    database, release = object(), asyncio.Event()
    calls: list[str] = []

    async def failing(_user_id: int) -> User | None:
        calls.append("failing")
        await release.wait()
        raise ConnectionError("database gone")

    async def fine(_user_id: int) -> User | None:
        calls.append("fine")
        return _user()

    first = asyncio.create_task(user_cache.get(database, 7, failing))
    await asyncio.sleep(0)
    second = asyncio.create_task(user_cache.get(database, 7, fine))
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(ConnectionError):
        await first
    assert (await second).role == "operator" and calls == ["failing", "fine"]

    async def nobody(_user_id: int) -> User | None:
        await asyncio.sleep(0)
        return None

    gone = object()
    assert await asyncio.gather(*(user_cache.get(gone, 8, nobody) for _ in range(3))) == [None] * 3
    assert (gone, 8) not in user_cache._entries
