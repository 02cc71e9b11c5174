"""Build the routes' request-handling state once the server is up, not at the first request.

FastAPI (0.165) builds the state of each route of an included router (its dependency tree, the
pydantic validators of its parameters, body and response) lazily, for a whole router at a time,
when a request is first matched against that router. For OpsCraft's API that is about 0.6 s of
CPU, and it was paid by the first API request after every start (measured: the first
`GET /api/v1/workers` after a start 450 ms, the next ones 4 ms), so the first run a user
started, or the first call of a CI job, waited for it. `build_ahead` pays it right after the
start, one router per turn of the event loop (at most about 150 ms each), while nobody waits.
"""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.types import Scope

_NO_ROUTE: Scope = {
    "type": "http",
    "method": "GET",
    "path": "/\x00opscraft-route-state",  # no route has this path: nothing is matched or run
    "root_path": "",
    "query_string": b"",
    "headers": [],
}


async def build_ahead(app: Starlette) -> None:
    """Match a path no route has against each of `app`'s top-level routes, yielding to the event
    loop between them; each match builds its router's state (FastAPI caches it on the app).
    Requests served meanwhile are unaffected: a router not built yet is built by its first
    request, as before. Raises nothing of its own."""
    for route in list(app.router.routes):
        route.matches(dict(_NO_ROUTE))
        await asyncio.sleep(0)
