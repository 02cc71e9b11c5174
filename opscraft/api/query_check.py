"""The query string follows the bodies' rule (services/bodies.py): a parameter the route does not
take, or one sent twice, is a `422` naming it, never silently dropped.

Before, `GET /api/v1/scripts?serach=deploy` (a typo) answered every script as if filtered,
`GET /api/v1/inventories?limit=1` every inventory (when that list did not page yet), and
`?limit=1&limit=2` read the last value: a client acting on such a list (deleting what a filter
returned) acted on more than it asked for.

An emptied filter is no filter (`EmptyQueryMiddleware`): `GET /api/v1/scripts?status=` was a 422
"must be one of" while `?search=` of the same route, and `?status=` of the executions, listed
everything; a form's emptied filter box sends `name=`. The web UI's list pages read their
addresses the same way (ui/address.py, `parse`).

Machine callers whose query strings OpsCraft does not choose keep theirs: inbound webhooks (a
sender may add its own parameters), Terraform's state backend and the health probe (a load
balancer may add a cache-busting parameter; the route reads none, so nothing is misread).
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from opscraft.security.http import HOOKS_PREFIX, RAW_JSON_PREFIX
from opscraft.services.errors import Invalid

API_PREFIX = "/api/"
EXEMPT_PREFIXES = (HOOKS_PREFIX, RAW_JSON_PREFIX, "/api/v1/health")
REPEATED = "sent more than once: send each query parameter once"
# (path template, methods) -> the query parameters that route takes (its own and its dependencies')
_taken: dict[tuple[str, frozenset[str]], frozenset[str]] = {}


def _query_names(route: Any) -> frozenset[str]:
    """The query parameters `route` (a FastAPI route) reads, through all its dependencies."""
    names: set[str] = set()
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        names |= {param.alias for param in dependant.query_params}
        stack.extend(dependant.dependencies)
    return frozenset(names)


def unknown_message(taken: frozenset[str]) -> str:
    """What to fix about a query parameter the route does not take."""
    if not taken:
        return "unknown query parameter: this route takes none"
    return f"unknown query parameter: this route takes {', '.join(sorted(taken))}"


def query_errors(connection: HTTPConnection, taken: frozenset[str]) -> list[dict[str, str]]:
    """`{field, message}` for each query parameter of `connection` (a request or a WebSocket)
    that is not one of `taken`, or is sent more than once; each name once, in the order sent."""
    errors: list[dict[str, str]] = []
    seen: set[str] = set()
    for name, _value in connection.query_params.multi_items():
        if name not in taken:
            message = unknown_message(taken)
        elif name in seen:
            message = REPEATED
        else:
            seen.add(name)
            continue
        if not any(e["field"] == name for e in errors):
            errors.append({"field": name, "message": message})
    return errors


async def check_query(connection: HTTPConnection) -> None:
    """A route dependency: `Invalid` (422) naming every query parameter of the request that its
    route does not take, and every one sent more than once. WebSockets (which check theirs
    themselves, api/ws.py, closing with 4422), the exempt prefixes and a request without a query
    string pass. Read from the ASGI scope: `connection.url` parses the Host header and rebuilds
    the whole address on every request (issue 15: about a tenth of a submission's event-loop
    time in a burst)."""
    scope = connection.scope
    path: str = scope["path"]
    if (
        scope["type"] != "http"
        or not scope.get("query_string")
        or not path.startswith(API_PREFIX)
        or path.startswith(EXEMPT_PREFIXES)
    ):
        return
    route = scope.get("route")
    if route is None or getattr(route, "dependant", None) is None:
        return
    key = (str(getattr(route, "path", "")), frozenset(getattr(route, "methods", None) or ()))
    taken = _taken.get(key)
    if taken is None:
        taken = _taken.setdefault(key, _query_names(route))
    errors = query_errors(connection, taken)
    if errors:
        raise Invalid.inputs(errors)


QUERY_CHECK = Depends(check_query)


def without_empty(query_string: bytes) -> bytes:
    """`query_string` (raw, percent-encoded) without its parameters whose value is empty
    (`status=`, or `status` alone); the others kept as sent, in their order."""
    kept = [pair for pair in query_string.split(b"&") if pair.partition(b"=")[2]]
    return b"&".join(kept)


class EmptyQueryMiddleware:
    """For `GET` under `/api/` (a `HEAD` too: it runs as its `GET` by then), a query parameter
    sent with an empty value is as if not sent: an emptied filter is no filter, and an emptied
    `skip`, `limit` or `tz` takes its default, on every route alike (docs/api.md). The exempt
    prefixes keep their query as sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry: drop empty query parameters (`?status=`) from API GET requests, except under
        EXEMPT_PREFIXES, so they mean "no filter" instead of failing validation.
        """
        query: bytes = scope.get("query_string", b"")
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and query
            and scope["path"].startswith(API_PREFIX)
            and not scope["path"].startswith(EXEMPT_PREFIXES)
        ):
            scope = {**scope, "query_string": without_empty(query)}
        await self.app(scope, receive, send)
