"""Submissions racing each other never answer 500 (SQLite and PostgreSQL).

Field report: bench_exec_throughput got an HTTP 500 on submit under heavy load. The cause: a
request holding its database connection asked for a second one (which runners live workers
offer) while a burst held every pooled connection, so all waited until the pool's timeout.
What overload remains beyond the timeouts answers 503 with Retry-After, never 500.
"""

from __future__ import annotations

import asyncio
import sqlite3

import httpx
import pytest
import sqlalchemy.exc
from fastapi import FastAPI

from opscraft.services import auth
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, wait_for


@pytest.fixture
def engine_settings() -> dict[str, object]:
    return {"OPSCRAFT_RATE_LIMIT_API": 100000}


async def test_concurrent_submissions_all_accepted(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    script_id = await make_script(client, admin, "true\n")

    async def submit() -> httpx.Response:
        body = {"script_id": script_id, "runner": "local"}
        return await client.post("/api/v1/executions", json=body, headers=admin.headers)

    responses = await asyncio.gather(*(submit() for _ in range(120)))
    assert [r.status_code for r in responses] == [202] * len(responses), [
        r.text for r in responses if r.status_code != 202
    ][:3]
    for response in responses[-5:]:
        assert (await wait_for(client, admin, response.json()["id"], timeout=120))["status"] == "success"


@pytest.mark.parametrize(
    "busy",
    [
        sqlalchemy.exc.TimeoutError("QueuePool limit of size 5 overflow 10 reached"),
        sqlalchemy.exc.OperationalError("INSERT", {}, sqlite3.OperationalError("database is locked")),
    ],
    ids=["pool-timeout", "sqlite-locked"],
)
async def test_a_busy_database_is_a_503_to_retry_not_a_500(
    api_app: FastAPI, admin: LoggedIn, monkeypatch: pytest.MonkeyPatch, busy: Exception
) -> None:
    """What remains when the database is overloaded beyond its timeouts: a 503 with Retry-After.
    (Stand-in: the overload is raised where the first query of a request would meet it.)"""

    async def overloaded(*_args: object) -> None:
        raise busy

    monkeypatch.setattr(auth, "user_for_access_token", overloaded)
    transport = httpx.ASGITransport(app=api_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        r = await client.get("/api/v1/executions", headers=admin.headers)
    assert r.status_code == 503 and r.headers["Retry-After"] == "1"
    assert r.json() == {"detail": "the server is busy: try again in a moment", "errors": []}
