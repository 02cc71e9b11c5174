"""`GET /metrics` (Prometheus text format) and the middleware counting HTTP requests for it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from opscraft.api.deps import Session, current_actor
from opscraft.api.schemas import error_responses
from opscraft.services import metrics

router = APIRouter(tags=["health"])
METRICS_PATH = "/metrics"
# A scheme name of its own: sharing the API's (`HTTPBearer`) replaced that scheme's description in
# Swagger UI's Authorize dialog with this one.
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="MetricsBearer",
    description="OPSCRAFT_METRICS_TOKEN, or an admin's access token or personal access token (`ocp_...`)",
)


@router.get(
    METRICS_PATH,
    summary="Prometheus metrics",
    response_class=Response,
    responses={200: {"content": {metrics.CONTENT_TYPE: {}}}, **error_responses(401, 403)},
)
async def get_metrics(
    request: Request,
    session: Session,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Response:
    """Prometheus text exposition format 0.0.4 (`text/plain; version=0.0.4`; the metrics are
    listed in docs/deployment.md, Monitoring). `Authorization: Bearer` with the metrics token
    (`OPSCRAFT_METRICS_TOKEN`), or any bearer the rest of the API takes, through the same path
    (`deps.current_actor`: 401 for a bad token, 403 for a role that may not view the system:
    admins only, view_system). Read-only: a scrape changes nothing and is not audited."""
    if not metrics.is_metrics_token(credentials.credentials if credentials else None):
        metrics.authorize(await current_actor(request, session, credentials))
    return Response(await metrics.render(session), media_type=metrics.CONTENT_TYPE)


class RequestMetricsMiddleware:
    """Counts each HTTP response by route template (`/api/v1/executions/{execution_id}`, or
    `other` for paths no route matched, so the label set stays bounded), method and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry: count each HTTP request by route template (or `other`), method and status code for
        the Prometheus metrics; an exception counts as status 500.
        """
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_counting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_counting)
        finally:
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "other"
            metrics.count_request(template, scope.get("method", "GET"), status)
