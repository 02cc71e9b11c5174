"""A request the client abandoned ends quietly: no traceback in the log, no 500.

A browser aborts requests all the time: a page left while it loads, the socket's polling request
cut by a navigation, a download cancelled. The app under the request then sees
`http.disconnect` where it expected the body. Some apps return without answering (Starlette's
`BaseHTTPMiddleware`, three of which wrap every page request, then raises `RuntimeError("No
response returned.")`); others fail on the missing request (Engine.IO's polling endpoint raises
`KeyError: 'REQUEST_METHOD'`, a route reading the body raises `ClientDisconnect`). Each used to
leave a traceback in the server log, and the error handlers answered with a 500 nobody read.
"""

from __future__ import annotations

import logging

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger(__name__)

# nginx's "client closed request": counted in the request metrics, never seen by the client.
CLIENT_CLOSED = 499


class ClientGoneMiddleware:
    """Innermost middleware and outermost one (`lean_path.install` puts it at both ends).

    Once the app has received `http.disconnect`, or raised `ClientDisconnect`, an exception from
    it is logged at DEBUG (the client caused it and cannot see any answer) instead of going on to
    the error handlers; and if no response had started, a bodiless `CLIENT_CLOSED` one is sent
    so that the middlewares outside have a response to pass on (the server drops it: the
    connection is gone). A request whose client is still there is left alone, errors and all.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry: run the app, and when the client disconnected before any response started, answer 499
        (client closed request) instead of raising.

        An error raised after the client left (or a starlette ClientDisconnect) is logged at debug level and
        swallowed; any other error is re-raised.
        """
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gone = False
        started = False

        async def watching_receive() -> Message:
            nonlocal gone
            message = await receive()
            gone = gone or message["type"] == "http.disconnect"
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, watching_receive, tracking_send)
        except Exception as exc:
            if not (gone or isinstance(exc, ClientDisconnect)):
                raise
            log.debug("client left %s %s: %r", scope.get("method"), scope.get("path"), exc)
            gone = True
        if gone and not started:
            await send({"type": "http.response.start", "status": CLIENT_CLOSED, "headers": []})
            await send({"type": "http.response.body", "body": b""})
