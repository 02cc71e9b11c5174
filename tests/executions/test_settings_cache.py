"""The run-time settings cache (services/app_settings.py, issue 15): a submission reads the
`local_runner_role` setting from it, yet a change to any setting is seen by the very next read
of this process, and a rolled-back change is never served (SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from opscraft import runtime
from opscraft.db.models import AppSetting
from opscraft.services import app_settings
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, start, statements_on


@pytest.fixture
def engine_settings() -> dict[str, Any]:
    return {"OPSCRAFT_LOCAL_RUNNER_ROLE": None}  # the role comes from the setting (default operator)


@pytest.fixture(autouse=True)
def long_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache age far longer than the test, so only invalidation can explain a fresh answer."""
    monkeypatch.setattr(app_settings, "CACHE_SECONDS", 3600.0)


@pytest.fixture
def settings_reads() -> Iterator[list[str]]:
    """The statements reading `app_settings`, as they run."""
    with statements_on(Engine, lambda statement: "FROM app_settings" in statement) as seen:
        yield seen


async def test_a_role_change_applies_to_the_next_submission(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, settings_reads: list[str]
) -> None:
    script_id = await make_script(client, admin, "true\n")
    await start(client, operator, script_id, "local")
    settings_reads.clear()
    await start(client, operator, script_id, "local")
    assert settings_reads == [], "a second submission reads the setting from the cache"

    changed = await client.put("/api/v1/settings", json={"local_runner_role": "admin"}, headers=admin.headers)
    assert changed.status_code == 200, changed.text
    refused = await client.post(
        "/api/v1/executions", json={"script_id": script_id, "runner": "local"}, headers=operator.headers
    )
    assert refused.status_code == 403, refused.text
    assert "local_runner_role" in refused.json()["detail"]

    back = await client.put("/api/v1/settings", json={"local_runner_role": "operator"}, headers=admin.headers)
    assert back.status_code == 200, back.text
    await start(client, operator, script_id, "local")


async def test_a_change_outside_the_api_is_seen_and_a_rolled_back_one_is_not(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    db = runtime.current().db
    async with db.session() as session:
        assert await app_settings.get(session, "local_runner_role") == "operator"  # now cached

    async with db.session() as session:  # an ORM change made by any service, the CLI, the UI
        session.add(AppSetting(key="local_runner_role", value="viewer"))
        await session.commit()
    async with db.session() as session:
        assert await app_settings.get(session, "local_runner_role") == "viewer"

    async with db.session() as session:
        row = await session.get(AppSetting, "local_runner_role")
        assert row is not None
        row.value = "admin"
        await session.flush()
        # Read inside the uncommitted change: its own value, which must not outlive the rollback.
        assert await app_settings.get(session, "local_runner_role") == "admin"
        await session.rollback()
    async with db.session() as session:
        assert await app_settings.get(session, "local_runner_role") == "viewer"

    async with db.session() as session:
        await session.delete(await session.get(AppSetting, "local_runner_role"))
        await session.commit()
    async with db.session() as session:
        assert await app_settings.get(session, "local_runner_role") == "operator", "back to the default"


async def test_concurrent_submissions_with_a_stale_cache_read_the_setting_once(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, settings_reads: list[str]
) -> None:
    """A burst's submissions found the entry stale together and each read the setting (issue
    15): now the first reads it and the others share that read or find it cached."""
    script_id = await make_script(client, admin, "true\n")
    app_settings.forget()
    settings_reads.clear()
    body = {"script_id": script_id, "runner": "local"}
    sent = await asyncio.gather(
        *(client.post("/api/v1/executions", json=body, headers=operator.headers) for _ in range(12))
    )
    assert [response.status_code for response in sent] == [202] * 12, [r.text for r in sent]
    assert len(settings_reads) == 1, settings_reads
