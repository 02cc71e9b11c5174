"""The query string follows the bodies' rule (services/bodies.py): a parameter the route does not
take, or one sent twice, is a `422` naming it, never silently dropped.

Before, `GET /api/v1/scripts?serach=deploy` (a typo) answered every script as if filtered,
`GET /api/v1/inventories?limit=1` every inventory, and `?limit=1&limit=2` read the last value: a
client acting on such a list (deleting what a filter returned) acted on more than it asked for.

Machine callers whose query strings OpsCraft does not choose keep theirs: inbound webhooks (a
sender may add its own parameters), Terraform's state backend and the health probe (a load
balancer may add a cache-busting parameter; the route reads none, so nothing is misread).
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends
from starlette.requests import HTTPConnection

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


async def check_query(connection: HTTPConnection) -> None:
    """A route dependency: `Invalid` (422) naming every query parameter of the request that its
    route does not take, and every one sent more than once. WebSockets and the exempt prefixes
    pass."""
    path = connection.url.path
    route = connection.scope.get("route")
    if (
        connection.scope["type"] != "http"
        or not path.startswith(API_PREFIX)
        or path.startswith(EXEMPT_PREFIXES)
    ):
        return
    if route is None or getattr(route, "dependant", None) is None:
        return
    key = (str(getattr(route, "path", "")), frozenset(getattr(route, "methods", None) or ()))
    taken = _taken.get(key)
    if taken is None:
        taken = _taken.setdefault(key, _query_names(route))
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
    if errors:
        summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:5])
        raise Invalid(f"invalid input: {summary}", details=errors[:20])


QUERY_CHECK = Depends(check_query)
