"""WebSocket `/ws/executions/{id}?token=<access token>[&after=<seq>]`: an execution's output, live.

The token is an access token or a personal access token (`ocp_...`), given as the `token`
query parameter or as an `Authorization: Bearer <token>` header (clients that can set headers
should: query strings end up in proxy logs).

The server first replays the stored output, then streams new output as it is produced, with no
gap and no duplicate (every `log` message has a `seq`; pass the last one as `after` when
reconnecting). Messages are JSON:

- `{"type": "status", "status", "exit_code", "error_message", "started_at", "finished_at"}`
  on connect and on each change;
- `{"type": "log", "seq", "stream": "stdout" | "stderr", "content"}`;
- `{"type": "end", ...the status fields}` once the execution has finished; the server then
  closes with 1000.

Close codes when the connection is refused: 4401 missing, invalid or expired token (log in or
refresh, then reconnect), 4403 your role may not view executions, 4404 no such execution,
4422 a parameter that does not convert (`?after=-1`, an id outside 1-2147483647: the reason
names it, `api/errors.py`), or one it does not take or sent twice (`?afterr=5`, as every
REST route's query: `api/query_check.py`),
4429 past the per-user rate limit. An address no WebSocket route has (`/ws/executions/7/`,
`/api/v1/ws/executions/7`) is closed with 4404 too, saying where the stream is (`install_not_found`).
An open stream lives no longer than its token: the token is
checked again every `token_watch.RECHECK_SECONDS`, and the stream closes with 4401 once it is
expired or revoked, or its user deactivated, deleted or signed out everywhere (a password change).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Annotated

import orjson
from fastapi import APIRouter, FastAPI, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import JSONResponse
from starlette.routing import WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocketState

from opscraft import runtime
from opscraft.api import token_watch
from opscraft.api.errors import CLOSE_INVALID
from opscraft.api.query_check import query_errors
from opscraft.api.schemas import MAX_ID, IdPath
from opscraft.security import ratelimit
from opscraft.services import auth, executions
from opscraft.services.bodies import WHOLE_TEXT
from opscraft.services.errors import Forbidden, NotFound, Unauthorized, retry_text

if TYPE_CHECKING:
    from opscraft.execution.events import Event

router = APIRouter(tags=["websocket"])

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_RATE_LIMITED = 4429
QUERY = frozenset({"token", "after"})  # the query parameters the stream takes
NO_STREAM_HERE = "no WebSocket at this address: a run's live output is at /ws/executions/{id}"
WITHOUT_SLASH = "no WebSocket at this address: connect to it without the trailing slash"
UPGRADE_NEEDED = (
    "this address is a WebSocket: connect with ws:// (wss:// behind HTTPS), which sends "
    "'Upgrade: websocket'; over plain HTTP, POST /api/v1/executions/stream starts a run and "
    "follows it, and GET /api/v1/executions/{id}/logs reads a run's output"
)
WS_PREFIX = "/ws/"


@router.websocket("/ws/executions/{execution_id}")
async def execution_stream(
    websocket: WebSocket,
    execution_id: IdPath,
    token: Annotated[str, Query(max_length=4096)] = "",
    after: Annotated[int, Query(ge=0, le=MAX_ID), WHOLE_TEXT] = 0,
) -> None:
    """An execution's output, live (protocol in this module's docstring; not in the OpenAPI
    document, which has no WebSocket). Needs view_scripts (every role), by `token` or an
    `Authorization: Bearer` header. Replays the stored output after `after`, then streams new output
    with no gap or duplicate, and closes with 1000 after `end`. Refusals close with 4401 (token),
    4403 (role), 4404 (no such execution), 4422 (a bad parameter) or 4429 (rate limit); the stream
    closes with 4401 once its token ends."""
    await websocket.accept()
    if errors := query_errors(websocket, QUERY):  # as every REST route's query (api/query_check.py)
        await websocket.close(CLOSE_INVALID, f"{errors[0]['field'][:40]}: {errors[0]['message']}")
        return
    token = token or token_watch.bearer(websocket.headers)
    events = await _events_or_refusal(websocket, execution_id, token, after)
    if isinstance(events, tuple):
        code, reason = events
        await websocket.close(code, reason[:120])
        return
    sender = asyncio.create_task(_send_events(websocket, events))
    receiver = asyncio.create_task(_until_disconnect(websocket))
    guard = asyncio.create_task(token_watch.until_token_ends(token, _client_ip(websocket)))
    done, _ = await asyncio.wait({sender, receiver, guard}, return_when=asyncio.FIRST_COMPLETED)
    for task in (sender, receiver, guard):
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect):
            await task
    connected = websocket.client_state is websocket.application_state is WebSocketState.CONNECTED
    if connected and (sender in done or guard in done):  # not after `_send_events` closed it (4404)
        code, reason = (CLOSE_UNAUTHORIZED, guard.result()) if guard in done else (1000, "")
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close(code, reason[:120])


def _client_ip(websocket: WebSocket) -> str | None:
    return websocket.client.host if websocket.client else None


async def _events_or_refusal(
    websocket: WebSocket, execution_id: int, token: str, after: int
) -> AsyncGenerator[Event, None] | tuple[int, str]:
    """The execution's events when the token is valid and its user may view executions, else
    (close code, reason). Authentication reads no row while the user cache is warm, and the
    execution's row is read once, by the event stream (a missing one: `_send_events`)."""
    if not token:
        ways = "pass ?token=<token> or 'Authorization: Bearer <token>'"  # a close reason: <= 123 bytes
        return CLOSE_UNAUTHORIZED, token_watch.missing_token(websocket.headers, ways)
    client_ip = _client_ip(websocket)
    rt = runtime.current()
    async with rt.db.session() as session:
        try:
            actor = await auth.actor_for_bearer(session, token, client_ip)
            quota = await ratelimit.count(
                rt.limiter, f"api:user:{actor.user_id}", rt.settings.rate_limit_api_per_minute
            )
            if quota.exceeded:
                return CLOSE_RATE_LIMITED, f"rate limit exceeded: try again in {retry_text(quota.reset)}"
            return executions.follow(actor, execution_id, after)
        except Unauthorized as exc:
            return CLOSE_UNAUTHORIZED, exc.message
        except Forbidden as exc:
            return CLOSE_FORBIDDEN, exc.message


async def _send_events(websocket: WebSocket, events: AsyncGenerator[Event, None]) -> None:
    """Send every event; close with 4404 when the execution does not exist (no event at all)."""
    sent = False
    async with contextlib.aclosing(events):
        async for event in events:
            await websocket.send_text(orjson.dumps(event.message()).decode())
            sent = True
    if not sent:
        await websocket.close(CLOSE_NOT_FOUND, NotFound.gone("execution").message)


async def _until_disconnect(websocket: WebSocket) -> None:
    """Read (and ignore) client messages until the client goes away."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


def _takes(routers: Sequence[APIRouter], path: str) -> bool:
    """Whether a WebSocket route of `routers` has `path`."""
    return any(
        isinstance(route, WebSocketRoute) and route.path_regex.match(path)
        for router in routers
        for route in router.routes
    )


def no_stream_reason(path: str, routers: Sequence[APIRouter]) -> str:
    """The close reason for a WebSocket handshake to `path`, which no route takes:
    `WITHOUT_SLASH` when a WebSocket route of `routers` takes it without its trailing slashes,
    else `NO_STREAM_HERE`. Never the path itself (at most 123 bytes fit in a close reason)."""
    bare = path.rstrip("/")
    return WITHOUT_SLASH if bare != path and _takes(routers, bare) else NO_STREAM_HERE


def install_not_found(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """Answer what no route of `app` takes, where the router's default misled (`routers`: the
    API's):

    - a WebSocket handshake: accepted, then closed with `CLOSE_NOT_FOUND` and
      `no_stream_reason`. Starlette's router (`Router.not_found`) closed it before accepting,
      which a client sees as a bare HTTP 403 ("server rejected WebSocket connection: HTTP 403"),
      read as a refused token (module doc);
    - an HTTP request under `WS_PREFIX`: `426` (RFC 9110, 15.5.22: `Upgrade: websocket`) with
      `UPGRADE_NEEDED` at a WebSocket route's address, else `404` with `NO_STREAM_HERE`, in the
      API's error shape. Both were a bare `404` "Not Found", also for a run that exists (a CI
      job's `curl` of the stream's address).

    Other HTTP requests keep the router's default (the API's JSON 404, the web UI's page)."""
    http_default = app.router.default

    async def default(scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        if scope["type"] == "websocket":
            websocket = WebSocket(scope, receive, send)
            await websocket.accept()
            await websocket.close(CLOSE_NOT_FOUND, no_stream_reason(path, routers))
        elif scope["type"] == "http" and path.startswith(WS_PREFIX):
            upgrade = _takes(routers, path)
            answer = JSONResponse(
                {"detail": UPGRADE_NEEDED if upgrade else NO_STREAM_HERE, "errors": []},
                status_code=HTTPStatus.UPGRADE_REQUIRED if upgrade else HTTPStatus.NOT_FOUND,
                headers={"Upgrade": "websocket"} if upgrade else None,
            )
            await answer(scope, receive, send)
        else:
            await http_default(scope, receive, send)

    app.router.default = default
