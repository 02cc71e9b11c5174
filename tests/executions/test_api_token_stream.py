"""A personal access token on the WebSocket: as `?token=` or as an `Authorization: Bearer` header."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update
from sqlmodel import col
from websockets.asyncio.client import connect

from opscraft import runtime
from opscraft.api import token_watch
from opscraft.db.models import ApiToken
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, run, start, wait_for
from tests.executions.test_executions_ws import close_code, collect, url


@pytest.fixture
def backend() -> str:
    return "sqlite"


async def test_personal_token_streams_output(
    client: httpx.AsyncClient, live_api: str, admin: LoggedIn
) -> None:
    final, _ = await run(client, admin, "echo via-token\n", "local")
    created = await client.post("/api/v1/tokens", json={"name": "ws"}, headers=admin.headers)
    token = created.json()["token"]
    async with connect(
        url(live_api, final["id"], None), additional_headers={"Authorization": f"Bearer {token}"}
    ) as ws:
        messages, code = await collect(ws)
    assert code == 1000 and "via-token" in "".join(m.get("content", "") for m in messages)
    async with connect(url(live_api, final["id"], token)) as ws:
        messages, code = await collect(ws)
    assert code == 1000 and messages[-1]["type"] == "end"
    await client.delete(f"/api/v1/tokens/{created.json()['id']}", headers=admin.headers)
    assert (await close_code(url(live_api, final["id"], token)))[0] == 4401


@pytest.mark.parametrize("ending", ["revoked", "expired", "owner deactivated"])
async def test_an_open_stream_ends_with_its_token(
    client: httpx.AsyncClient,
    live_api: str,
    admin: LoggedIn,
    operator: LoggedIn,
    monkeypatch: pytest.MonkeyPatch,
    ending: str,
) -> None:
    """A stream opened with a token kept streaming after the token expired or was revoked, or
    its owner was deactivated (the output of an hours-long run, to whoever held it): it now
    closes with 4401 once the token no longer authenticates, while the run goes on."""
    monkeypatch.setattr(token_watch, "RECHECK_SECONDS", 0.2)
    script_id = await make_script(client, admin, "while :; do echo tick; sleep 0.2; done\n")
    started = await start(client, admin, script_id, "local")
    await wait_for(client, admin, started["id"], {"running"})
    # Expiring once the stream is open (a row update, as the clock would): an expiry 3 s ahead
    # passed before the connection on a loaded machine.
    expires = (datetime.now(UTC) + timedelta(days=1)).isoformat() if ending == "expired" else None
    created = await client.post(
        "/api/v1/tokens", json={"name": "ws", "expires_at": expires}, headers=operator.headers
    )
    assert created.status_code == 201, created.text
    async with connect(url(live_api, started["id"], created.json()["token"])) as stream:
        assert json.loads(await stream.recv())["type"] == "status", "authenticated and streaming"
        if ending == "revoked":
            r = await client.delete(f"/api/v1/tokens/{created.json()['id']}", headers=operator.headers)
            assert r.status_code == 204, r.text
        elif ending == "owner deactivated":
            r = await client.put(
                f"/api/v1/users/{operator.id}", json={"is_active": False}, headers=admin.headers
            )
            assert r.status_code == 200, r.text
        elif ending == "expired":
            async with runtime.current().db.session() as session:
                await session.exec(
                    update(ApiToken)
                    .where(col(ApiToken.id) == created.json()["id"])
                    .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
                )
                await session.commit()
        messages, code = await asyncio.wait_for(collect(stream), timeout=30)
    assert code == 4401, messages[-3:]
    assert any(m.get("content") == "tick\n" for m in messages)
    running = await client.get(f"/api/v1/executions/{started['id']}", headers=admin.headers)
    assert running.json()["status"] == "running", "the stream ended, not the run"
    r = await client.post(f"/api/v1/executions/{started['id']}/cancel", headers=admin.headers)
    assert r.status_code in (200, 202), r.text
    await wait_for(client, admin, started["id"])
