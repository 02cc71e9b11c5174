"""The API's own middleware stack: `/api/`, `/ws/` and `/metrics` requests skip the web UI's middlewares.

NiceGUI wraps every request in middlewares that only its pages use: a signed session cookie
(`SessionMiddleware`), per-browser storage created for each new session (`RequestTrackingMiddleware`,
which for a cookie-less API client means a new storage object on every request), a redirect
prefix and cache headers (the last three are `BaseHTTPMiddleware`s, each running the rest of the
request in a task of its own). An API call authenticates with a bearer token and needs none of
them, yet paid for all of them (issue 15: most of the server's CPU per execution outside the
database). Every middleware the API relies on still runs on its path: the server error and
body-limit layers of FastAPI, compression, the start-up gate, request metrics, security headers,
CORS, the internal-error handler and the request limits (`opscraft.api.install_api`).

NiceGUI's versioned files (`/_nicegui/<version>/`, its JS, CSS, fonts and components; not its
per-request `dynamic_resources/`) take the same lean stack with one more, pure ASGI layer,
`VersionedFileHeaders`, doing what the two UI-only middlewares that act on them did: NiceGUI's
`Cache-Control` (immutable) and its `X-Forwarded-Prefix` on a redirect. A fresh page load fetches
about 17 of them, and each went through three `BaseHTTPMiddleware`s and a session (which, for a
browser without a cookie yet, also made a per-browser storage). Their answers no longer carry the
session cookie (the page's own answer sets and renews it) nor `Vary: Cookie`.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opscraft.api.client_gone import ClientGoneMiddleware
from opscraft.api.metrics import METRICS_PATH
from opscraft.security.http import SecureCookiesMiddleware

LEAN_PREFIXES = ("/api/", "/ws/")
# Paths outside those prefixes that only API clients ask for: Prometheus scrapes `/metrics` without
# a cookie, and each scrape made a NiceGUI session and its per-browser storage (on a team service a
# Redis subscription), closed again 10-20 s later.
LEAN_PATHS = frozenset({METRICS_PATH})
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


class VersionedFileHeaders:
    """What NiceGUI's `SetCacheControlMiddleware` and `RedirectWithPrefixMiddleware` (both
    `BaseHTTPMiddleware`s) do to an answer under its versioned prefix, as plain ASGI: `Cache-Control`
    set to `cache_control()` (NiceGUI's `app.config.cache_control_directives`, read per answer),
    and a `Location` starting with `/` prefixed with the request's `X-Forwarded-Prefix`."""

    def __init__(self, app: ASGIApp, cache_control: Callable[[], str]) -> None:
        self.app = app
        self.cache_control = cache_control

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry: add the Cache-Control header of versioned files to every response, and prefix
        relative redirects' Location with the proxy's X-Forwarded-Prefix.
        """
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                headers = MutableHeaders(scope=message)
                location = headers.get("location", "")
                if location.startswith("/"):
                    headers["location"] = Headers(scope=scope).get("x-forwarded-prefix", "") + location
                headers["cache-control"] = self.cache_control()
            await send(message)

        await self.app(scope, receive, send_with_headers)


def is_lean(path: str) -> bool:
    """Whether a request for `path` takes the lean stack: under `LEAN_PREFIXES` or in `LEAN_PATHS`."""
    return path.startswith(LEAN_PREFIXES) or path in LEAN_PATHS


class PathDispatch:
    """Send HTTP and WebSocket requests for lean paths (`is_lean`) to `lean`, those under
    `versioned_prefix` but not `per_request_prefix` (NiceGUI's files) to `versioned`, everything
    else (pages, NiceGUI's socket and dynamic resources, the lifespan) to `full`."""

    def __init__(
        self,
        lean: ASGIApp,
        full: ASGIApp,
        versioned: ASGIApp,
        versioned_prefix: str,
        per_request_prefix: str,
    ) -> None:
        self.lean = lean
        self.full = full
        self.versioned = versioned
        self.versioned_prefix = versioned_prefix
        self.per_request_prefix = per_request_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry: send the request to the lean app (API prefixes), the versioned-file app, or the full
        app (everything else, and lifespan events).
        """
        if scope["type"] == "lifespan":
            await self.full(scope, receive, send)
            return
        path = scope["path"]
        if is_lean(path):
            await self.lean(scope, receive, send)
        elif path.startswith(self.versioned_prefix) and not path.startswith(self.per_request_prefix):
            await self.versioned(scope, receive, send)
        else:
            await self.full(scope, receive, send)


def install(app: FastAPI, versioned_prefix: str, cache_control: Callable[[], str]) -> None:
    """Make `app` build three middleware stacks from its middleware list (when it first serves,
    after NiceGUI's `ui.run` has added its own): the full one; one without the UI-only
    middlewares for `/api/` and `/ws/`; the same with `VersionedFileHeaders(cache_control)`
    outermost for `versioned_prefix` (NiceGUI's `/_nicegui/<version>/`), its `dynamic_resources/`
    excepted. Each ends (innermost) with `ClientGoneMiddleware`, and they are wrapped in one more,
    so that a request its client abandoned ends quietly whatever the middlewares between; the
    full one is wrapped in `SecureCookiesMiddleware`. Call once, before the app serves."""
    build_full = app.build_middleware_stack

    def build() -> ASGIApp:
        every = app.user_middleware
        api_only = [m for m in every if not _is_ui_only(m)]
        try:
            app.user_middleware = [*every, CLIENT_GONE]
            full = build_full()
            app.user_middleware = [*api_only, CLIENT_GONE]
            lean = build_full()
            headers = Middleware(VersionedFileHeaders, cache_control=cache_control)
            app.user_middleware = [headers, *api_only, CLIENT_GONE]
            versioned = build_full()
        finally:
            app.user_middleware = every
        # Outermost as well: a layer between the two (compression holds the response's start until
        # its body) may drop the start the app sent before the client left, and a
        # `BaseHTTPMiddleware` above it then raises "No response returned.".
        # The pages' cookies get `Secure` over HTTPS outside NiceGUI's `SessionMiddleware`, which
        # sets the session cookie (`SecureCookiesMiddleware`).
        dispatch = PathDispatch(
            lean,
            SecureCookiesMiddleware(full),
            versioned,
            versioned_prefix,
            per_request_prefix=f"{versioned_prefix}dynamic_resources/",
        )
        return ClientGoneMiddleware(dispatch)

    app.build_middleware_stack = build  # type: ignore[method-assign]
