"""The API's own middleware stack: `/api/` and `/ws/` requests skip the web UI's middlewares.

NiceGUI wraps every request in middlewares that only its pages use: a signed session cookie
(`SessionMiddleware`), per-browser storage created for each new session (`RequestTrackingMiddleware`,
which for a cookie-less API client means a new storage object on every request), a redirect
prefix and cache headers (the last three are `BaseHTTPMiddleware`s, each running the rest of the
request in a task of its own). An API call authenticates with a bearer token and needs none of
them, yet paid for all of them (issue 15: most of the server's CPU per execution outside the
database). Every middleware the API relies on still runs on its path: the server error and
body-limit layers of FastAPI, compression, the start-up gate, request metrics, security headers,
CORS, the internal-error handler and the request limits (`opscraft.api.install_api`).
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Receive, Scope, Send

from opscraft.api.client_gone import ClientGoneMiddleware
from opscraft.security.http import SecureCookiesMiddleware

LEAN_PREFIXES = ("/api/", "/ws/")
UI_ONLY_MIDDLEWARE = frozenset(
    {
        "SessionMiddleware",
        "RequestTrackingMiddleware",
        "RedirectWithPrefixMiddleware",
        "SetCacheControlMiddleware",
    }
)
CLIENT_GONE = Middleware(ClientGoneMiddleware)


def _is_ui_only(middleware: Middleware) -> bool:
    """One of `UI_ONLY_MIDDLEWARE`, or a subclass of one (`ui.redis_storage`'s request tracking)."""
    classes = getattr(middleware.cls, "__mro__", ())
    return any(getattr(cls, "__name__", "") in UI_ONLY_MIDDLEWARE for cls in classes)


class PathDispatch:
    """Send HTTP and WebSocket requests under `LEAN_PREFIXES` to `lean`, everything else (pages,
    NiceGUI's assets and socket, the lifespan) to `full`."""

    def __init__(self, lean: ASGIApp, full: ASGIApp) -> None:
        self.lean = lean
        self.full = full

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan" and scope["path"].startswith(LEAN_PREFIXES):
            await self.lean(scope, receive, send)
        else:
            await self.full(scope, receive, send)


def install(app: FastAPI) -> None:
    """Make `app` build two middleware stacks from its middleware list (when it first serves,
    after NiceGUI's `ui.run` has added its own): the full one, and one without the UI-only
    middlewares for `/api/` and `/ws/`. Both end (innermost) with `ClientGoneMiddleware`, and the
    two are wrapped in one more, so that a request its client abandoned ends quietly whatever
    the middlewares between; the full one is wrapped in `SecureCookiesMiddleware`. Call once,
    before the app serves."""
    build_full = app.build_middleware_stack

    def build() -> ASGIApp:
        every = app.user_middleware
        try:
            app.user_middleware = [*every, CLIENT_GONE]
            full = build_full()
            app.user_middleware = [*(m for m in every if not _is_ui_only(m)), CLIENT_GONE]
            lean = build_full()
        finally:
            app.user_middleware = every
        # Outermost as well: a layer between the two (compression holds the response's start until
        # its body) may drop the start the app sent before the client left, and a
        # `BaseHTTPMiddleware` above it then raises "No response returned.".
        # The pages' cookies get `Secure` over HTTPS outside NiceGUI's `SessionMiddleware`, which
        # sets the session cookie (`SecureCookiesMiddleware`).
        return ClientGoneMiddleware(PathDispatch(lean, SecureCookiesMiddleware(full)))

    app.build_middleware_stack = build  # type: ignore[method-assign]
