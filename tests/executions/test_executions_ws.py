"""The WebSocket: authentication close codes, replay then live, every line exactly once."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from opscraft import runtime
from opscraft.api import ws
from opscraft.db.models import Role
from opscraft.security.tokens import issue_token
from opscraft.services import permissions
from opscraft.services.errors import GONE_WHY
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, output, run, start, wait_for
from tests.waiting import scale, until


@pytest.fixture
def backend() -> str:
    return "sqlite"


def url(live_api: str, execution_id: int, token: str | None, **params: object) -> str:
    query = "&".join(f"{k}={v}" for k, v in {"token": token, **params}.items() if v is not None)
    return f"ws://{live_api}/ws/executions/{execution_id}?{query}"


def token_of(who: LoggedIn) -> str:
    return who.headers["Authorization"].removeprefix("Bearer ")


async def collect(
    ws: ClientConnection, *, delay: float = 0, within: float = 120
) -> tuple[list[dict[str, Any]], int]:
    """Every message until the server closes; returns (messages, close code). AssertionError,
    with the messages so far, when the server has not closed within `within` seconds (times
    `tests.waiting.scale()`): a stream that never ends fails here, not at the test's timeout."""
    messages = []
    try:
        async with asyncio.timeout(within * scale()):
            while True:
                messages.append(json.loads(await ws.recv()))
                if delay:
                    await asyncio.sleep(delay)
    except ConnectionClosed as closed:
        return messages, closed.rcvd.code if closed.rcvd else -1
    except TimeoutError:
        raise AssertionError(f"the server did not close within {within} s: {messages[-5:]}") from None


async def close_code(address: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    async with connect(address, additional_headers=headers) as ws:
        try:
            await ws.recv()
        except ConnectionClosed as closed:
            assert closed.rcvd is not None
            return closed.rcvd.code, closed.rcvd.reason
    raise AssertionError("the server should have closed the connection")


async def test_refusals_have_distinct_close_codes(
    client: httpx.AsyncClient,
    live_api: str,
    viewer: LoggedIn,
    admin: LoggedIn,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    final, _ = await run(client, admin, "echo hi\n", "local")
    execution_id = final["id"]
    secret_key = runtime.current().settings.secret_key
    assert secret_key is not None
    expired, _ = issue_token(secret_key, viewer.id, "access", 0, timedelta(seconds=-5), "k")
    refresh, _ = issue_token(secret_key, viewer.id, "refresh", 0, timedelta(days=1), "k")

    assert await close_code(url(live_api, execution_id, None)) == (
        4401,
        "authentication required: pass ?token=<token> or 'Authorization: Bearer <token>'",
    )
    # Credentials of another scheme are said to be unread (they were met with "pass ?token=").
    basic = {"Authorization": "Basic " + base64.b64encode(b"viewer:password").decode()}
    assert await close_code(url(live_api, execution_id, None), basic) == (
        4401,
        "authentication required: pass ?token=<token> or 'Authorization: Bearer <token>'; a Basic"
        " header is not read",
    )
    assert (await close_code(url(live_api, execution_id, "not-a-jwt")))[0] == 4401
    code, reason = await close_code(url(live_api, execution_id, expired))
    assert (code, reason) == (
        4401,
        "the access token has expired: get a new one (POST /api/v1/auth/refresh) or log in again",
    )
    assert await close_code(url(live_api, execution_id, refresh)) == (
        4401,
        "this is a refresh token, not an access token: send the access_token of the login response",
    )
    gone = (4404, f"this execution was not found: {GONE_WHY}")  # it said its id ("execution 987654")
    assert await close_code(url(live_api, 987654, token_of(viewer))) == gone

    monkeypatch.setitem(permissions.ROLE_PERMISSIONS, Role.viewer, frozenset())
    code, reason = await close_code(url(live_api, execution_id, token_of(viewer)))
    assert code == 4403 and "may not view scripts" in reason


async def test_a_bad_address_is_refused_with_a_close_code_saying_what_to_fix(
    client: httpx.AsyncClient, live_api: str, admin: LoggedIn
) -> None:
    """Field report: `?after=-1` (or `abc`) was refused at the handshake with a bare HTTP 403,
    which reads as "not allowed", and an id beyond SQLite's integers (10**20) crashed the
    endpoint (1006, a traceback in the server log). Both now close with a code and a reason."""
    final, _ = await run(client, admin, "echo hi\n", "local")
    token = token_of(admin)
    # outside every id (1-2147483647): a 4422 naming it, as GET /executions/{id} answers 422 (it
    # was 4404 "not found")
    for execution_id in (0, -1, 2**31, 10**20):
        code, reason = await close_code(url(live_api, execution_id, token))
        assert code == 4422 and reason.startswith("execution_id: must be "), (execution_id, reason)
    # a parameter the stream does not take, or one sent twice, as every REST route's query: a
    # typo (`afterr`) replayed everything from the start without a word
    taken = "unknown query parameter: this route takes after, token"
    for params, field, message in [
        ({"afterr": 5}, "afterr", taken),
        ({"after": "1&after=2"}, "after", "sent more than once: send each query parameter once"),
        ({"after": f"1&token={token}"}, "token", "sent more than once: send each query parameter once"),
    ]:
        assert await close_code(url(live_api, final["id"], token, **params)) == (4422, f"{field}: {message}")
    for after in ("-1", "abc", "5.0", str(2**31)):
        code, reason = await close_code(url(live_api, final["id"], token, after=after))
        assert code == 4422 and reason.startswith("after: "), (after, code, reason)
    code, reason = await close_code(url(live_api, "abc", token))  # type: ignore[arg-type]
    assert code == 4422 and reason == "execution_id: must be a whole number (it is text)"
    code, reason = await close_code(url(live_api, final["id"], "x" * 5000))
    assert code == 4422 and reason.startswith("token: "), reason


async def test_an_address_without_a_websocket_is_closed_saying_where_the_stream_is(live_api: str) -> None:
    """Field report (a CI job following a run with websocat, a Python client): an address no
    WebSocket route has, such as the stream's with a trailing slash (`/ws/executions/7/`), under
    the API's prefix like every other address (`/api/v1/ws/executions/7`) or misspelt, was refused
    at the handshake with a bare HTTP 403, which reads as a refused token: the job's author
    checked the token, not the address. It is closed with 4404 and a reason saying where to
    connect, as an address whose parameters do not convert is closed with 4422."""
    slash = await close_code(f"ws://{live_api}/ws/executions/7/?token=x")
    assert slash == (4404, "no WebSocket at this address: connect to it without the trailing slash")
    for path in ("/api/v1/ws/executions/7", "/ws/execution/7", "/ws/executions", "/ws", "/api/v1/scripts/"):
        assert await close_code(f"ws://{live_api}{path}?token=x") == (4404, ws.NO_STREAM_HERE), path


async def test_replay_of_a_finished_execution(
    client: httpx.AsyncClient, live_api: str, viewer: LoggedIn, admin: LoggedIn
) -> None:
    final, text = await run(client, admin, "echo one\necho two >&2\nexit 3\n", "local")
    async with connect(url(live_api, final["id"], token_of(viewer))) as ws:
        messages, code = await collect(ws)
    assert code == 1000
    assert messages[0]["type"] == "status" and messages[0]["status"] == "failed"
    logs = [m for m in messages if m["type"] == "log"]
    assert "".join(m["content"] for m in logs) == text
    assert {m["stream"] for m in logs} == {"stdout", "stderr"}
    assert messages[-1] == {**messages[-1], "type": "end", "status": "failed", "exit_code": 3}
    # Times as the REST API writes them (`Z`, not `+00:00`): one parser for both.
    stored = (await client.get(f"/api/v1/executions/{final['id']}", headers=viewer.headers)).json()
    for message in (messages[0], messages[-1]):
        assert (message["started_at"], message["finished_at"]) == (
            stored["started_at"],
            stored["finished_at"],
        )
        assert message["finished_at"].endswith("Z"), message


async def test_the_token_comes_as_a_bearer_header_or_the_query_which_wins_when_both_come(
    client: httpx.AsyncClient, live_api: str, viewer: LoggedIn, admin: LoggedIn
) -> None:
    final, _ = await run(client, admin, "echo hi\n", "local")
    header = {"Authorization": f"Bearer {token_of(viewer)}"}
    async with connect(url(live_api, final["id"], None), additional_headers=header) as ws:
        messages, code = await collect(ws)
    assert code == 1000 and messages[-1]["type"] == "end"

    # Both: the query's token is the one checked (docs/executions.md, "WebSocket").
    async with connect(url(live_api, final["id"], "not-a-jwt"), additional_headers=header) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    bad_header = {"Authorization": "Bearer not-a-jwt"}
    async with connect(url(live_api, final["id"], token_of(viewer)), additional_headers=bad_header) as ws:
        messages, code = await collect(ws)
    assert code == 1000 and messages[-1]["type"] == "end"


LINES = 3000
SLOW_PRINTER = (
    f'for i in $(seq 1 {LINES}); do echo "line $i"; [ $((i % 100)) -eq 0 ] && sleep 0.05; done; true\n'
)
EXPECTED = "".join(f"line {i}\n" for i in range(1, LINES + 1))


def check_exactly_once(messages: list[dict[str, Any]], after: int = 0) -> str:
    logs = [m for m in messages if m["type"] == "log"]
    seqs = [m["seq"] for m in logs]
    assert seqs == list(range(after + 1, after + 1 + len(seqs))), "no gap, no duplicate, in order"
    assert messages[-1]["type"] == "end"
    return "".join(m["content"] for m in logs)


@pytest.mark.parametrize("runner_name", ["local", "docker"], indirect=True)
async def test_watcher_attached_mid_run_gets_every_line_once(
    client: httpx.AsyncClient, live_api: str, viewer: LoggedIn, admin: LoggedIn, runner_name: str
) -> None:
    script_id = await make_script(client, admin, SLOW_PRINTER)
    started = await start(client, viewer, script_id, runner_name)
    early = await connect(url(live_api, started["id"], token_of(viewer)))
    await wait_for(client, viewer, started["id"], {"running"})
    await until(lambda: output(client, viewer, started["id"]), "the first lines stored (mid-run)")
    async with connect(url(live_api, started["id"], token_of(viewer))) as late, early:
        (early_messages, early_code), (late_messages, late_code) = await asyncio.gather(
            collect(early), collect(late)
        )
    assert early_code == late_code == 1000
    assert check_exactly_once(early_messages) == EXPECTED
    assert check_exactly_once(late_messages) == EXPECTED
    assert early_messages[0]["status"] == "queued" or early_messages[0]["status"] == "running"
    assert any(m["type"] == "status" and m["status"] == "running" for m in early_messages)


async def test_resume_after_a_sequence_number(
    client: httpx.AsyncClient, live_api: str, admin: LoggedIn
) -> None:
    final, _ = await run(client, admin, SLOW_PRINTER, "local")
    async with connect(url(live_api, final["id"], token_of(admin))) as ws:
        everything, _ = await collect(ws)
    logs = [m for m in everything if m["type"] == "log"]
    middle = logs[len(logs) // 2]["seq"]
    async with connect(url(live_api, final["id"], token_of(admin), after=middle)) as ws:
        rest, _ = await collect(ws)
    assert check_exactly_once(rest, after=middle) == "".join(m["content"] for m in logs if m["seq"] > middle)


async def test_slow_watcher_catches_up_from_storage(
    client: httpx.AsyncClient, live_api: str, admin: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A watcher that falls behind is cut from the live feed and re-attaches: still exactly once."""
    worker = runtime.current().worker
    assert worker is not None
    monkeypatch.setattr(worker.bus, "_max_queued", 20_000)
    script_id = await make_script(client, admin, "seq 1 200000\n")
    started = await start(client, admin, script_id, "local")
    async with connect(url(live_api, started["id"], token_of(admin))) as ws:
        messages, code = await collect(ws, delay=0.01)
    assert code == 1000
    assert check_exactly_once(messages) == "".join(f"{i}\n" for i in range(1, 200001))
