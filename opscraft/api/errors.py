"""Every error leaves the API as JSON `{detail, errors}` with a 4xx status, never a stack trace."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError, WebSocketRequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.orm.exc import StaleDataError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opscraft.api.lean_path import is_lean
from opscraft.api.methods import API_PREFIX, NOT_FOUND_MESSAGE, allowed_methods, not_allowed_message
from opscraft.db import unreachable
from opscraft.db.engine import is_busy
from opscraft.db.unreachable import brief, is_disk_full, is_unreachable
from opscraft.services.conflicts import GONE_MEANWHILE
from opscraft.services.errors import (
    Invalid,
    RateLimited,
    ServiceError,
    Unavailable,
    input_message,
    input_summary,
)

Handler = Callable[[Request, Exception], Awaitable[Response]]
log = logging.getLogger(__name__)


def _loc(loc: tuple[object, ...] | list[object]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    return ".".join(parts) or "body"


async def _service_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited | Unavailable) else None
    if exc.status_code == 401:
        headers = {"WWW-Authenticate": "Bearer"}
    detail = exc.detail if isinstance(exc, Invalid) else exc.message
    return JSONResponse(
        {"detail": detail, "errors": exc.details}, status_code=exc.status_code, headers=headers
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = [{"field": _loc(e.get("loc", ())), "message": input_message(e)} for e in exc.errors()]
    return JSONResponse({"detail": input_summary(errors), "errors": errors}, status_code=422)


# The WebSocket's close code for an address it cannot read (the HTTP status 422 in the 4000 range,
# as 4401, 4403, 4404 are 401, 403, 404).
CLOSE_INVALID = 4422
CLOSE_REASON_BYTES = 123  # the WebSocket protocol's limit for a close reason (RFC 6455, 5.5)


async def _websocket_validation_error(websocket: WebSocket, exc: Exception) -> None:
    """A WebSocket address whose parameters do not convert (`?after=-1`, `/ws/executions/abc`):
    accepted, then closed with `CLOSE_INVALID` and the first problem as the reason
    (`after: must be at least 0`). FastAPI closed before accepting,
    which a client sees as a bare HTTP 403, as if it were not allowed."""
    assert isinstance(exc, WebSocketRequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    reason = f"{_loc(first.get('loc', ()))}: {input_message(first)}"
    await websocket.accept()
    cut = reason.encode()[:CLOSE_REASON_BYTES].decode(errors="ignore")
    await websocket.close(CLOSE_INVALID, cut)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    return JSONResponse(
        {"detail": str(exc.detail), "errors": []}, status_code=exc.status_code, headers=exc.headers
    )


def _routing_error(routers: Sequence[APIRouter]) -> Handler:
    """`_http_error`, with the router's own `404` and `405` (bare "Not Found" and "Method Not
    Allowed") saying what to fix: every method the path takes, also in `Allow` (api/methods.py)."""

    async def handler(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        routing = request.url.path.startswith(API_PREFIX) and exc.detail == HTTPStatus(exc.status_code).phrase
        allowed = allowed_methods(routers, request.url.path) if routing and exc.status_code == 405 else []
        if allowed:
            exc = StarletteHTTPException(
                405, not_allowed_message(request.method, allowed), headers={"Allow": ", ".join(allowed)}
            )
        elif routing and exc.status_code == 404:
            exc = StarletteHTTPException(404, NOT_FOUND_MESSAGE)
        return await _http_error(request, exc)

    return handler


BUSY_RETRY_SECONDS = 1
UNREACHABLE_MESSAGE = f"{unreachable.MESSAGE} (GET /api/v1/health shows its state)"
DISK_FULL_MESSAGE = (
    f"{unreachable.DISK_FULL}; nothing was saved: send the request again once an administrator "
    "has freed space (the server log says so)"
)


async def _internal_error(_request: Request, exc: Exception) -> JSONResponse:
    if is_busy(exc):  # overload, not a fault: the request may be sent again as it is
        return JSONResponse(
            {"detail": "the server is busy: try again in a moment", "errors": []},
            status_code=503,
            headers={"Retry-After": str(BUSY_RETRY_SECONDS)},
        )
    if is_disk_full(exc):  # nothing was written: the request may be sent again once there is room
        return JSONResponse(
            {"detail": DISK_FULL_MESSAGE, "errors": []},
            status_code=503,
            headers={"Retry-After": str(unreachable.RETRY_AFTER_SECONDS)},
        )
    if is_unreachable(exc):  # an outage, not a fault of this request: it may be sent again later
        return JSONResponse(
            {"detail": UNREACHABLE_MESSAGE, "errors": []},
            status_code=503,
            headers={"Retry-After": str(unreachable.RETRY_AFTER_SECONDS)},
        )
    # The server logs the traceback; the client learns nothing about the internals.
    return JSONResponse({"detail": "internal error: the server log has the details", "errors": []}, 500)


async def _gone_meanwhile(_request: Request, _exc: Exception) -> JSONResponse:
    """409 for a `StaleDataError`: an UPDATE or DELETE of a row matched none, as another request
    deleted it after this one read it (a schedule updated, or a user's password reset, while it
    is deleted). A race the client may resolve by reloading, not a fault: no traceback (it was a
    500), and nothing was written (the session rolls back)."""
    return JSONResponse({"detail": GONE_MEANWHILE, "errors": []}, 409)


def _api_first(previous: Any, api_handler: Handler) -> Handler:
    """Use `api_handler` on the lean paths (`lean_path.is_lean`: /api/, /ws/, where no page can be
    built outside the UI's middlewares, and `/metrics`, read by Prometheus, not a person: it got
    NiceGUI's bare "Internal Server Error"), and the handler already installed (NiceGUI's pages) elsewhere."""

    async def handler(request: Request, exc: Exception) -> Response:
        path = request.url.path
        if previous is None or is_lean(path):
            return await api_handler(request, exc)
        result = previous(request, exc)
        return await result if inspect.isawaitable(result) else result

    return handler


def install_error_handlers(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """JSON errors for the API; `routers` are the API's, to name the methods a path takes."""
    routing_error = _routing_error(routers)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(WebSocketRequestValidationError, _websocket_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, routing_error)
    # NiceGUI renders HTML pages for 404 and 500; API clients get the JSON error shape instead.
    app.add_exception_handler(404, _api_first(app.exception_handlers.get(404), routing_error))
    page_error = app.exception_handlers.get(Exception)
    app.add_exception_handler(Exception, _api_first(page_error, _internal_error))
    app.add_exception_handler(StaleDataError, _api_first(page_error, _gone_meanwhile))


class InternalErrorMiddleware:
    """Answer an unhandled exception with the app's 500 handler, and keep the connection open.

    Starlette's own `ServerErrorMiddleware` sends the 500 and then re-raises, so that the server
    logs it; uvicorn then sees an exception after the response started and closes the connection,
    and a client reusing that keep-alive connection gets `Connection reset by peer` on its *next*
    request. Here the traceback is logged (method and path only: query strings may carry tokens)
    and the error never reaches the server. When the response had already started nothing else can
    be sent: the exception goes on and the server closes the connection, as it must; when it had
    been sent whole, the error (in the clean-up after it, such as the rollback closing a session
    whose connection the database just dropped) is only logged. A database that does not answer
    (`db.unreachable.is_unreachable`) is a warning of one line, not a traceback.

    `handlers` is the app's `exception_handlers` mapping, read at request time (the `Exception`
    entry: JSON under /api/, NiceGUI's error page elsewhere).
    """

    def __init__(self, app: ASGIApp, handlers: Mapping[Any, Any]) -> None:
        self.app = app
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry: turn an unhandled exception into the app's JSON 500 answer (or 503 when the database
        is unreachable, through the registered Exception handler).

        Logs one warning line for an unreachable database, a traceback otherwise. When the response had
        already started but not finished, the error is re-raised (the server drops the connection); when it
        had finished, it is only logged.
        """
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = sent = False

        async def tracking_send(message: Message) -> None:
            nonlocal started, sent
            started = started or message["type"] == "http.response.start"
            sent = sent or (message["type"] == "http.response.body" and not message.get("more_body", False))
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            if started and not sent:
                raise
            method, path = scope.get("method"), scope.get("path")
            if is_unreachable(exc):  # one line per request during an outage, not a traceback
                log.warning("%s %s: the database is unreachable (%s)", method, path, brief(exc))
            elif is_disk_full(exc):  # one line: the operator's to fix, not a fault of the code
                log.error("%s %s: %s (%s)", method, path, unreachable.disk_full(), brief(exc))
            else:
                log.error("unhandled error in %s %s", method, path, exc_info=exc)
            if sent:
                return
            handler = self.handlers.get(Exception, _internal_error)
            response = handler(Request(scope), exc)
            response = await response if inspect.isawaitable(response) else response
            await response(scope, receive, send)
