"""The API's lean middleware stack (opscraft/api/lean_path.py, issue 15): `/api/` and `/ws/` skip
NiceGUI's UI-only middlewares and keep every middleware of the API."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from opscraft.api import lean_path
from opscraft.security.http import SecurityHeadersMiddleware
from tests.conftest import start_server, stop_server


class SetCacheControlMiddleware(BaseHTTPMiddleware):
    """Stands for NiceGUI's middleware of that name (the lean path matches UI-only ones by name)."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["x-ui-middleware"] = "ran"
        return response


async def test_ui_only_middleware_is_skipped_under_api_and_ws_only() -> None:
    app = FastAPI()

    @app.get("/api/v1/thing")
    async def thing() -> dict[str, bool]:
        return {"ok": True}

    @app.get("/page")
    async def page() -> PlainTextResponse:
        return PlainTextResponse("page")

    app.add_middleware(SetCacheControlMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    lean_path.install(app)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        api = await client.get("/api/v1/thing")
        page_response = await client.get("/page")
    assert api.json() == {"ok": True}
    assert "x-ui-middleware" not in api.headers
    assert api.headers["x-frame-options"] == "DENY", "the API's own middlewares still run"
    assert page_response.headers["x-ui-middleware"] == "ran"
    assert page_response.headers["x-frame-options"] == "DENY"


def test_live_server_api_has_no_ui_session_and_pages_keep_theirs(tmp_path: Path) -> None:
    """A real `opscraft serve`: API answers carry the security headers but no NiceGUI session
    cookie (no per-browser storage is made for an API call); pages keep both; the WebSocket
    route still authenticates on the lean path."""
    server = start_server(tmp_path / "server")
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            api = client.get("/api/v1/health")
            assert api.status_code == 200
            assert api.headers["x-content-type-options"] == "nosniff"
            assert "set-cookie" not in api.headers
            unauthenticated = client.get("/api/v1/executions")
            assert unauthenticated.status_code == 401
            assert "set-cookie" not in unauthenticated.headers
            page = client.get("/login")
            assert page.status_code in (200, 303)  # 303: to the first-admin set-up page
            assert "session=" in page.headers.get("set-cookie", "")
            assert page.headers["x-frame-options"] == "DENY"
        ws_url = server.url.replace("http://", "ws://", 1) + "/ws/executions/1"
        with connect(ws_url, open_timeout=30) as ws, pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    finally:
        stop_server(server)
