"""The REST API under `/api/v1` (and the WebSocket under `/ws`): thin routers over `services`."""

from __future__ import annotations

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from opscraft.api import (
    approvals,
    audit,
    auth,
    chains,
    draft_runs,
    executions,
    health,
    inventories,
    metrics,
    notifications,
    schedules,
    scripts,
    secrets,
    settings,
    terraform,
    tokens,
    users,
    warm_pools,
    webhooks,
    workers,
    ws,
)
from opscraft.api.errors import InternalErrorMiddleware, install_error_handlers
from opscraft.api.methods import HeadAsGetMiddleware
from opscraft.api.query_check import QUERY_CHECK, EmptyQueryMiddleware
from opscraft.api.schemas import REQUEST_CHECKS, error_responses
from opscraft.api.trailing_slash import TrailingSlashMiddleware
from opscraft.config import Settings
from opscraft.security.http import (
    RateLimitHeadersMiddleware,
    RequestLimitsMiddleware,
    SecurityHeadersMiddleware,
)
from opscraft.services.errors import input_summary

# Health first: FastAPI builds an included router's routes when a request is first matched
# against it, so a health probe after start-up builds only this one (docs/benchmarks.md). Then
# the run path's routers: FastAPI tries routers in this order, so submitting and watching a run
# no longer first tries a hundred other routes (issue 15). No route of a later router is
# shadowed by theirs (tests/test_api_route_order.py).
HOT_ROUTERS: list[APIRouter] = [executions.router, ws.router]
ROUTERS: list[APIRouter] = [
    health.router,
    *HOT_ROUTERS,
    auth.router,
    users.router,
    tokens.router,
    notifications.router,
    schedules.router,
    webhooks.router,
    chains.router,
    approvals.router,
    scripts.router,
    draft_runs.router,
    secrets.router,
    inventories.router,
    audit.router,
    settings.router,
    terraform.router,
    workers.router,
    warm_pools.router,
    metrics.router,
]


# Response headers a cross-origin page may read besides the safelisted ones (Content-Type...).
EXPOSED_HEADERS = [
    "Retry-After",
    "WWW-Authenticate",
    "Accept-Encoding",
    "Allow",
    "RateLimit-Limit",
    "RateLimit-Remaining",
    "RateLimit-Reset",
    "Idempotent-Replayed",
]


def install_api(app: FastAPI, settings: Settings) -> None:
    """Add the API's routers, error handlers and middleware to `app` (NiceGUI's or a bare FastAPI)."""
    for router in ROUTERS:
        # A body without a Content-Type is JSON, as `RequestLimitsMiddleware` checks it: FastAPI's
        # default (`strict_content_type`, against CSRF by cookie) read it as bytes, so it was told
        # "body: must be a JSON object (it is a JSON object)". The API takes bearer tokens only.
        router.strict_content_type = False
        app.include_router(router, responses=error_responses(*REQUEST_CHECKS), dependencies=[QUERY_CHECK])
    install_error_handlers(app, ROUTERS)
    ws.install_not_found(app, ROUTERS)  # a WebSocket to an address without one: 4404, not a bare 403
    app.add_middleware(EmptyQueryMiddleware)  # inside `HeadAsGetMiddleware`: sees a HEAD as its GET
    app.add_middleware(HeadAsGetMiddleware, routers=ROUTERS)
    app.add_middleware(TrailingSlashMiddleware, routers=ROUTERS)  # no redirect loses a body
    app.add_middleware(
        RequestLimitsMiddleware,
        max_body=settings.max_body_bytes,
        max_state=settings.max_state_bytes,
        max_depth=settings.max_json_depth,
        max_keys=settings.max_json_keys,
        summary=input_summary,
    )
    app.add_middleware(RateLimitHeadersMiddleware)  # outside the error handlers: a 429 carries them
    # Inside CORS and the security headers, so a 500 carries them too.
    app.add_middleware(InternalErrorMiddleware, handlers=app.exception_handlers)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            # Bearer tokens only: an `Authorization` header needs no credentialed request. With
            # credentials allowed, a page on an allowed origin (any, for `*`: the origin was
            # reflected) read what the browser's `session` cookie opens: the web UI's pages (the
            # NiceGUI client id driving a page's socket) and a run's `output.log`.
            allow_credentials=False,
            allow_methods=["*"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key"],
            # Not CORS-safelisted: without this a page on another origin cannot read how long a
            # 429 says to wait, nor a 401's or 415's hint (docs/api.md, Errors).
            expose_headers=EXPOSED_HEADERS,
        )
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(metrics.RequestMetricsMiddleware)
