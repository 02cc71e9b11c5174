"""`POST /api/v1/executions/stream`: a run started and followed in one answer (Server-Sent Events).

Served by a real uvicorn (`live_api`), read by a real HTTP client as it streams."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.pool import QueuePool

from opscraft import runtime
from opscraft.api import token_watch
from opscraft.services import user_cache
from tests.conftest import LoggedIn, start_server, stop_server
from tests.executions.conftest import first_admin, make_script, output, wait_for
from tests.executions.test_secrets_injection import VALUE, assert_no_value, secret_with_script


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
async def http(live_api: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://{live_api}", timeout=60) as client:
        yield client


async def events_of(response: httpx.Response) -> AsyncIterator[tuple[str, dict[str, Any] | None, str | None]]:
    """(event name, JSON data, id) of each event, and ("comment", None, text) for comment lines,
    parsed by the event-stream rules (WHATWG HTML, "Server-sent events")."""
    name, data, event_id = "message", None, None
    async for line in response.aiter_lines():
        if line.startswith(":"):
            yield "comment", None, line[1:].strip()
        elif line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("id: "):
            event_id = line.removeprefix("id: ")
        elif line.startswith("data: "):
            data = json.loads(line.removeprefix("data: "))
        elif line == "" and data is not None:
            yield name, data, event_id
            name, data, event_id = "message", None, None


async def stream_run(
    http: httpx.AsyncClient, who: LoggedIn, body: dict[str, Any]
) -> tuple[httpx.Response, list[tuple[str, dict[str, Any] | None, str | None]]]:
    async with http.stream("POST", "/api/v1/executions/stream", json=body, headers=who.headers) as response:
        if response.status_code != 200:
            await response.aread()
            return response, []
        return response, [event async for event in events_of(response)]


async def test_one_request_starts_the_run_and_streams_it_to_its_end(
    client: httpx.AsyncClient, http: httpx.AsyncClient, viewer: LoggedIn, admin: LoggedIn
) -> None:
    script_id = await make_script(client, admin, "echo one\necho two >&2\nexit 3\n")
    response, events = await stream_run(http, viewer, {"script_id": script_id, "runner": "local"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-store"
    names = [name for name, _, _ in events if name != "comment"]
    assert names[0] == "execution" and names[1] == "status" and names[-1] == "end", names
    created = events[0][1]
    assert created is not None and created["script_id"] == script_id
    assert created["status"] in {"queued", "running"}  # `running`: claimed in its submission
    assert created["triggered_by"] == viewer.id and created["trigger"] == "api"
    logs = [(data, event_id) for name, data, event_id in events if name == "log"]
    assert [d["seq"] for d, _ in logs] == sorted({d["seq"] for d, _ in logs}), "seq order, once each"
    assert all(event_id == str(d["seq"]) for d, event_id in logs), "each log event's id is its seq"
    assert "".join(d["content"] for d, _ in logs if d["stream"] == "stdout") == "one\n"
    assert "".join(d["content"] for d, _ in logs if d["stream"] == "stderr") == "two\n"
    end = events[-1][1]
    assert end is not None and end["status"] == "failed" and end["exit_code"] == 3
    row = await wait_for(client, admin, created["id"])
    assert row["exit_code"] == 3, "the stream ended with the run the API shows"
    assert await output(client, admin, created["id"]) == "one\ntwo\n"


@pytest.mark.parametrize(
    "body, status",
    [
        ({"script_id": 987654}, 404),
        ({"script_id": "SCRIPT", "parameters": {"NOPE": "x"}}, 422),
        ({"script_id": "SCRIPT", "runner": "nowhere"}, 422),
        ({"script_id": "SCRIPT", "extra": 1}, 422),
        ({"script_id": "DRAFT"}, 409),
    ],
)
async def test_refusals_are_those_of_a_plain_start(
    client: httpx.AsyncClient,
    http: httpx.AsyncClient,
    admin: LoggedIn,
    body: dict[str, Any],
    status: int,
) -> None:
    """Same body, same rules, same answer as `POST /api/v1/executions`, before any event."""
    ids = {
        "SCRIPT": await make_script(client, admin, "echo hi\n"),
        "DRAFT": await make_script(client, admin, "echo hi\n", status="draft"),
    }
    body = {k: ids.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
    plain = await http.post("/api/v1/executions", json=body, headers=admin.headers)
    streamed, events = await stream_run(http, admin, body)
    assert (plain.status_code, streamed.status_code) == (status, status), plain.text
    assert streamed.json() == plain.json() and events == []
    assert streamed.headers["content-type"] == "application/json"


async def test_a_missing_or_invalid_token_is_401(
    http: httpx.AsyncClient, client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    script_id = await make_script(client, admin, "echo hi\n")
    r = await http.post("/api/v1/executions/stream", json={"script_id": script_id})
    assert r.status_code == 401 and "authentication required" in r.json()["detail"]
    r = await http.post(
        "/api/v1/executions/stream",
        json={"script_id": script_id},
        headers={"Authorization": "Bearer not-a-jwt"},
    )
    assert r.status_code == 401


async def test_secrets_are_masked_in_the_stream(
    client: httpx.AsyncClient, http: httpx.AsyncClient, operator: LoggedIn
) -> None:
    _, script_id = await secret_with_script(client, operator, 'echo "pw=$DB_PASSWORD"\n')
    response, events = await stream_run(http, operator, {"script_id": script_id, "runner": "local"})
    assert response.status_code == 200
    text = "".join(data["content"] for name, data, _ in events if name == "log" and data)
    assert "pw=" in text and VALUE not in text
    assert_no_value(json.dumps(events))


async def test_output_with_unicode_line_separators_keeps_each_event_on_one_line(
    client: httpx.AsyncClient, http: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """NEL, U+2028 and U+2029 in a script's output: JSON leaves them as they are, and a line
    reader that ends lines where Python's `splitlines` does (httpx's `aiter_lines`, which
    `events_of` reads with, as clients built on httpx do) cut the `data:` line in two there: the
    event's JSON did not parse. They come as JSON escapes; the content is what was printed."""
    printed = "next\u0085line sep\u2028par sep\u2029end \u2026\n"
    script_id = await make_script(client, admin, f"printf '%s' '{printed}'\n")
    response, events = await stream_run(http, admin, {"script_id": script_id, "runner": "local"})
    assert response.status_code == 200 and events[-1][0] == "end", events
    logs = [data for name, data, _ in events if name == "log" and data is not None]
    assert "".join(data["content"] for data in logs) == printed
    created = events[0][1]
    assert created is not None and await output(client, admin, created["id"]) == printed


async def test_a_quiet_run_gets_keep_alives_and_a_token_revoked_meanwhile_ends_the_stream(
    client: httpx.AsyncClient,
    http: httpx.AsyncClient,
    admin: LoggedIn,
    operator: LoggedIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The stream lives no longer than its token (as the WebSocket): `error` 401, then the end of
    the answer; the run goes on. Before that, each passed check sends a keep-alive comment."""
    monkeypatch.setattr(token_watch, "RECHECK_SECONDS", 0.2)
    script_id = await make_script(client, admin, "echo started\nwhile :; do sleep 0.2; done\n")
    created = await client.post("/api/v1/tokens", json={"name": "sse"}, headers=operator.headers)
    assert created.status_code == 201, created.text
    headers = {"Authorization": f"Bearer {created.json()['token']}"}
    seen: list[tuple[str, dict[str, Any] | None, str | None]] = []
    body = {"script_id": script_id, "runner": "local"}
    async with http.stream("POST", "/api/v1/executions/stream", json=body, headers=headers) as response:
        assert response.status_code == 200
        revoked = False
        async for event in events_of(response):
            seen.append(event)
            keep_alives = sum(1 for name, _, text in seen if name == "comment" and text == "keep-alive")
            if not revoked and keep_alives >= 2:
                r = await client.delete(f"/api/v1/tokens/{created.json()['id']}", headers=operator.headers)
                assert r.status_code == 204, r.text
                revoked = True
    name, data, _ = seen[-1]
    assert name == "error" and data is not None and data["status"] == 401, seen[-3:]
    assert "revoked" in data["detail"]
    assert any(n == "log" and d and d["content"] == "started\n" for n, d, _ in seen)
    execution_id = seen[0][1]["id"] if seen[0][1] else 0
    row = await client.get(f"/api/v1/executions/{execution_id}", headers=admin.headers)
    assert row.json()["status"] == "running", "the stream ended, not the run"
    r = await client.post(f"/api/v1/executions/{execution_id}/cancel", headers=admin.headers)
    assert r.status_code in (200, 202), r.text
    await wait_for(client, admin, execution_id)


async def test_a_client_that_leaves_ends_the_stream_not_the_run(
    client: httpx.AsyncClient, http: httpx.AsyncClient, admin: LoggedIn
) -> None:
    script_id = await make_script(client, admin, "echo first\nsleep 60\necho last\n")
    body = {"script_id": script_id, "runner": "local"}
    async with http.stream("POST", "/api/v1/executions/stream", json=body, headers=admin.headers) as response:
        async for name, data, _ in events_of(response):
            if name == "execution" and data:
                execution_id = data["id"]
            if name == "log":
                break  # leave in the middle of the run
    row = await wait_for(client, admin, execution_id, {"running"})
    assert row["status"] == "running"
    r = await client.post(f"/api/v1/executions/{execution_id}/cancel", headers=admin.headers)
    assert r.status_code in (200, 202), r.text
    final = await wait_for(client, admin, execution_id)
    assert final["status"] == "cancelled"
    assert "first\n" in await output(client, admin, execution_id)


async def test_open_streams_hold_no_database_connection(
    client: httpx.AsyncClient, http: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """A stream may last hours: the request's session gives its connection back once the run is
    created, so streams open at once do not starve other requests of the pool."""
    pool = runtime.current().db.engine.sync_engine.pool
    assert isinstance(pool, QueuePool), type(pool)
    script_id = await make_script(client, admin, "echo up\nsleep 30\n")
    body = {"script_id": script_id, "runner": "local"}
    async with contextlib.AsyncExitStack() as stack:
        ids = []
        for _ in range(3):
            user_cache.clear()  # authentication reads the user's row: the session begins a transaction
            response = await stack.enter_async_context(
                http.stream("POST", "/api/v1/executions/stream", json=body, headers=admin.headers)
            )
            async for name, data, _ in events_of(response):
                if name == "execution" and data:
                    ids.append(data["id"])
                if name == "log":
                    break
        async with asyncio.timeout(30):  # background writers hold one for moments only
            while pool.checkedout() > 0:
                await asyncio.sleep(0.02)
        for execution_id in ids:
            await client.post(f"/api/v1/executions/{execution_id}/cancel", headers=admin.headers)
    for execution_id in ids:
        assert (await wait_for(client, admin, execution_id))["status"] == "cancelled"


@pytest.mark.parametrize("method", ["GET", "HEAD", "PUT", "DELETE"])
async def test_other_methods_on_the_stream_path_are_405(
    http: httpx.AsyncClient, admin: LoggedIn, method: str
) -> None:
    """Only POST starts a stream. GET was taken by `GET /executions/{execution_id}` and answered
    422 "execution_id: must be a whole number"; it is 405 with `Allow: POST` like the others."""
    r = await http.request(method, "/api/v1/executions/stream", headers=admin.headers)
    assert r.status_code == 405, r.text
    assert r.headers["allow"] == "POST"
    if method == "GET":
        assert "POST /api/v1/executions/stream" in r.json()["detail"]


@pytest.mark.parametrize(
    "accept, status",
    [
        ("application/json", 406),
        ("text/event-stream;q=0, application/json", 406),
        ("text/html, */*;q=0", 406),
        ("text/event-stream", 200),
        ("application/json, text/event-stream;q=0.5", 200),
        ("text/*", 200),
        ("*/*", 200),
    ],
)
async def test_a_client_that_refuses_an_event_stream_is_406_and_no_run_starts(
    client: httpx.AsyncClient, http: httpx.AsyncClient, admin: LoggedIn, accept: str, status: int
) -> None:
    """`Accept: application/json` got an event stream (and a run) it could not read; now it is
    told before anything starts (RFC 9110, 12.5.1), and pointed at `POST /executions`."""
    script_id = await make_script(client, admin, "echo hi\n")
    headers = {**admin.headers, "Accept": accept}
    body = {"script_id": script_id, "runner": "local"}
    async with http.stream("POST", "/api/v1/executions/stream", json=body, headers=headers) as response:
        assert response.status_code == status
        if status == 200:
            events = [event async for event in events_of(response)]
            assert events[-1][0] == "end"
        else:
            await response.aread()
            assert "POST /api/v1/executions" in response.json()["detail"]
    runs = await client.get(f"/api/v1/executions?script_id={script_id}", headers=admin.headers)
    assert runs.json()["total"] == (1 if status == 200 else 0)


async def test_a_stopping_server_ends_an_open_stream_with_an_error_event(tmp_path: Path) -> None:
    """`opscraft serve` on SIGTERM waited for every open answer to end: a stream of a long run held
    the stop for the whole run (measured: 120 s for `sleep 120`). It now ends open streams after
    `sse.SERVER_STOP_SECONDS` with an `error` event (503), a complete answer, and no traceback."""
    server = start_server(tmp_path / "server", {"OPSCRAFT_LOCAL_RUNNER": "true"})
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            who = await first_admin(client)
            script_id = await make_script(client, who, "echo up\nsleep 600\n")
            body = {"script_id": script_id, "runner": "local"}
            seen: list[tuple[str, dict[str, Any] | None, str | None]] = []
            path = "/api/v1/executions/stream"
            # The timeout only keeps a regression (a stream as long as the run) from hanging.
            async with (
                asyncio.timeout(120),
                client.stream("POST", path, json=body, headers=who.headers) as response,
            ):
                async for event in events_of(response):
                    seen.append(event)
                    if event[0] == "log":
                        stopped_at = time.monotonic()
                        server.process.terminate()
        name, data, _ = seen[-1]
        assert name == "error" and data is not None and data["status"] == 503, seen[-3:]
        assert "the server is stopping" in data["detail"]
        server.process.wait(timeout=120)
        assert time.monotonic() - stopped_at < 120
        assert "Traceback" not in server.log() and "Exception in ASGI application" not in server.log()
    finally:
        stop_server(server)
