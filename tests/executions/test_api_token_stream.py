"""A personal access token on the WebSocket: as `?token=` or as an `Authorization: Bearer` header."""

from __future__ import annotations

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.conftest import LoggedIn
from tests.executions.conftest import run
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
