"""The HTTP methods each API path takes, as a client meets them (RFC 9110):

- a `405`'s `Allow` header and message list every method of the path, from all its routes (the
  router named only those of the first route it found: `PATCH /api/v1/scripts/1` said
  `Allow: GET`, though `PUT` and `DELETE` are there too), and a `404` for a path no route has says
  where the routes are listed;
- `HEAD` is answered wherever `GET` is, as the `GET` without its body (9.3.2: every server
  supports both); it was a `405`, so a load balancer's `HEAD /api/v1/health` probe failed.

The methods are those the OpenAPI schema documents (routes hidden from it, such as the `GET`
that explains `POST /api/v1/executions/stream`, are left out).
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_PREFIX = "/api/"
ROUTES_LISTED = "the API's routes are listed at /docs and /openapi.json"


def allowed_methods(routers: Sequence[APIRouter], path: str) -> list[str]:
    """The methods (upper case, sorted) that `routers` answer at `path` with a documented route:
    each method is the first matching route's (the router's order), so a hidden route that takes a
    method to explain it (`GET /api/v1/executions/stream`) removes it. Empty when no route has the
    path; `HEAD` wherever `GET` is."""
    decided: dict[str, bool] = {}
    for router in routers:
        for route in router.routes:
            route_methods: set[str] | None = getattr(route, "methods", None)
            if route_methods and route.path_regex.match(path):  # type: ignore[attr-defined]
                documented = bool(getattr(route, "include_in_schema", False))
                for method in route_methods:
                    decided.setdefault(method, documented)
    methods = {method for method, documented in decided.items() if documented}
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def not_allowed_message(method: str, allowed: Sequence[str]) -> str:
    """The detail of a `405`: the method sent and the ones to use (never the path: it may hold a
    webhook's token)."""
    return f"{method} is not allowed on this path: use {', '.join(allowed)} ({ROUTES_LISTED})"


NOT_FOUND_MESSAGE = f"no route has this path: check it ({ROUTES_LISTED})"


class HeadAsGetMiddleware:
    """Under `/api/`, a `HEAD` request to a path with a `GET` runs as that `GET` (same status and
    headers, `Content-Length` included) and its body is not sent. Elsewhere it goes on as `HEAD`
    (a path without a `GET` answers `405` naming its methods)."""

    def __init__(self, app: ASGIApp, routers: Sequence[APIRouter]) -> None:
        self.app = app
        self.routers = routers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry: answer HEAD on an API path that allows GET by running the GET and dropping the body
        (RFC 9110 section 9.3.2); other requests pass through.
        """
        if (
            scope["type"] != "http"
            or scope["method"] != "HEAD"
            or not scope["path"].startswith(API_PREFIX)
            or "GET" not in allowed_methods(self.routers, scope["path"])
        ):
            await self.app(scope, receive, send)
            return

        async def without_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, without_body)
