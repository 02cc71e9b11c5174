"""A run followed in the answer to the request that started it: Server-Sent Events.

`POST /api/v1/executions/stream` starts a run as `POST /api/v1/executions` does and answers with
an event stream (`text/event-stream`, the WHATWG HTML standard's "Server-sent events" format):
one client round trip from submit to output, no WebSocket to open afterwards (`curl -N`, a CI
job, a CLI). Each event is one JSON object on one `data:` line, named by `event:`:

- `execution`: the run as created (the body `POST /api/v1/executions` answers with), first;
- `status`, `log`, `end`: exactly the WebSocket's messages (`ws.py`), with the same guarantees
  (stored output first, then live, no gap, no duplicate, `seq` order); a `log` event also
  carries its `seq` as the event's `id:`; the stream ends after `end`;
- `error`: `{"type": "error", "status": 401, "detail": ...}` when the caller's token stopped
  authenticating while the stream was open (`token_watch`); the stream ends, the run goes on;
  `{"type": "error", "status": 503, ...}` when the server stops (`EventStreamResponse`).

A comment line (`: keep-alive`) follows each passed token check (`token_watch.RECHECK_SECONDS`),
so proxies do not cut a quiet run's stream. A client that goes away ends the stream, not the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import orjson
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from opscraft.api import token_watch
from opscraft.execution.events import Event, LogEvent

log = logging.getLogger(__name__)

MEDIA_TYPE = "text/event-stream"
# No cache may keep it; nginx passes it on as it comes (docs/deployment.md).
HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
KEEP_ALIVE = b": keep-alive\n\n"
# How long a stopping server lets open answers (these streams above all) go on before it cuts
# them (uvicorn's `timeout_graceful_shutdown`, set by `opscraft serve`). Unset, uvicorn waited
# for every open stream to end, so one stream of a two-hour run held a restart for two hours.
SERVER_STOP_SECONDS = 5
STOPPING = {
    "type": "error",
    "status": 503,
    "detail": "the server is stopping: the stream ends here, the run is the worker's "
    "(docs/deployment.md); read the rest of its output after the last id "
    "(GET /api/v1/executions/{id}/logs?offset=<id>, or the WebSocket with ?after=<id>)",
}
# Events buffered for a slow client before the run's event stream waits for it (it then catches
# up from storage, as a slow WebSocket client does).
BUFFERED_EVENTS = 64


def _range_weight(media_range: str) -> tuple[str, float]:
    """(`type/subtype`, q) of one `Accept` element (RFC 9110, 12.5.1); q is 1 unless given, 0
    when unreadable."""
    kind, *params = (part.strip() for part in media_range.split(";"))
    q = 1.0
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value)
            except ValueError:
                q = 0.0
    return kind.lower(), q


def accepts_event_stream(accept: str | None) -> bool:
    """Whether a request's `Accept` header lets the answer be `MEDIA_TYPE`: no header, or the
    most specific range that matches it (`text/event-stream`, `text/*`, `*/*`) with a q above 0
    (RFC 9110, 12.5.1). `Accept: application/json` is False: such a client cannot read the
    stream, and is told so before a run starts."""
    if accept is None or not accept.strip():
        return True
    weights = dict(_range_weight(r) for r in accept.split(",") if r.strip())
    for kind in (MEDIA_TYPE, "text/*", "*/*"):
        if kind in weights:
            return weights[kind] > 0
    return False


# Characters that JSON leaves as they are and that line readers other than the event-stream
# format's own (CR and LF) end a line at: Python's `str.splitlines`, so httpx's `aiter_lines`
# and the clients built on it. A script's output holding one cut its `data:` line in two there.
_UNICODE_BREAKS = ((b"\xc2\x85", b"\\u0085"), (b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"))


def frame(event: str, data: dict[str, Any], event_id: int | None = None) -> bytes:
    """One event in the event-stream format: `event:`, optional `id:`, one `data:` line (compact
    JSON holds no newline, and NEL, U+2028 and U+2029 are written as JSON escapes:
    `_UNICODE_BREAKS`), a blank line."""
    head = f"event: {event}\n" if event_id is None else f"event: {event}\nid: {event_id}\n"
    body = orjson.dumps(data)
    if b"\xc2\x85" in body or b"\xe2\x80" in body:
        for raw, escaped in _UNICODE_BREAKS:
            body = body.replace(raw, escaped)
    return head.encode() + b"data: " + body + b"\n\n"


def event_frame(event: Event) -> bytes:
    """A run event as the WebSocket's message, named by its `type`."""
    message = event.message()
    return frame(message["type"], message, event.seq if isinstance(event, LogEvent) else None)


async def run_stream(
    created: dict[str, Any], events: AsyncGenerator[Event, None], token: str, client_ip: str | None
) -> AsyncIterator[bytes]:
    """The answer's body: `created` as the `execution` event, then every run event, until `end`,
    or an `error` event once `token` stops authenticating (see the module docstring)."""
    yield frame("execution", created)
    frames: asyncio.Queue[bytes | None] = asyncio.Queue(BUFFERED_EVENTS)

    async def relay() -> None:
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    await frames.put(event_frame(event))
        except Exception:  # the answer has started: no status left to send, end the stream
            log.exception("the event stream of execution %s failed", created.get("id"))
        await frames.put(None)

    async def guard() -> None:
        reason = await token_watch.until_token_ends(token, client_ip, lambda: frames.put(KEEP_ALIVE))
        await frames.put(frame("error", {"type": "error", "status": 401, "detail": reason}))
        await frames.put(None)

    tasks = (asyncio.create_task(relay()), asyncio.create_task(guard()))
    try:
        while (item := await frames.get()) is not None:
            yield item
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


class EventStreamResponse(StreamingResponse):
    """A `StreamingResponse` of `MEDIA_TYPE` that a stopping server ends with an event.

    uvicorn cancels the answers still open `SERVER_STOP_SECONDS` after a stop began; a plain
    streaming answer then died mid-stream (the client saw the chunked body cut: curl's exit 18)
    and uvicorn logged the cancellation as "Exception in ASGI application" with a traceback. This
    one takes the cancellation as the end: it sends `STOPPING` as an `error` event (status 503)
    and completes the body. A client that left is not a cancellation of the task (Starlette ends
    the answer inside), so only a stop reaches the handler below."""

    media_type = MEDIA_TYPE

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry: stream the events; when the server stops (the task is cancelled), end the answer with
        an `error` event saying so, waiting at most 1 second to send it.
        """
        try:
            await super().__call__(scope, receive, send)
        except asyncio.CancelledError:
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()  # handled here: the answer ends, the stop goes on
            last = {"type": "http.response.body", "body": frame("error", STOPPING), "more_body": False}
            with contextlib.suppress(Exception):  # a connection already gone: nothing to tell
                async with asyncio.timeout(1):  # never let a full socket hold the stop
                    await send(last)
