"""The API's lean middleware stack (opscraft/api/lean_path.py, issue 15): `/api/` and `/ws/` skip
NiceGUI's UI-only middlewares and keep every middleware of the API; NiceGUI's versioned files skip
them too and get the headers NiceGUI's two middlewares gave them."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from nicegui import core
from nicegui.middlewares import RedirectWithPrefixMiddleware
from nicegui.middlewares import SetCacheControlMiddleware as NiceGuiCacheControl
from nicegui.version import __version__
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from opscraft.api import lean_path
from opscraft.app import versioned_prefix
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

    @app.get("/_nicegui/1.0/static/app.js")
    async def file() -> PlainTextResponse:
        return PlainTextResponse("file")

    @app.get("/_nicegui/1.0/dynamic_resources/made")
    async def made() -> PlainTextResponse:
        return PlainTextResponse("made")

    app.add_middleware(SetCacheControlMiddleware)
    app.add_middleware(SecurityHeadersMiddleware)
    lean_path.install(app, "/_nicegui/1.0/", cache_control=lambda: "immutable")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        api = await client.get("/api/v1/thing")
        page_response = await client.get("/page")
        versioned = await client.get("/_nicegui/1.0/static/app.js")
        per_request = await client.get("/_nicegui/1.0/dynamic_resources/made")
    assert api.json() == {"ok": True}
    assert "x-ui-middleware" not in api.headers
    assert api.headers["x-frame-options"] == "DENY", "the API's own middlewares still run"
    assert page_response.headers["x-ui-middleware"] == "ran"
    assert page_response.headers["x-frame-options"] == "DENY"
    assert versioned.text == "file"
    assert "x-ui-middleware" not in versioned.headers
    assert versioned.headers["cache-control"] == "immutable"
    assert versioned.headers["x-frame-options"] == "DENY"
    assert per_request.headers["x-ui-middleware"] == "ran"


async def test_versioned_files_get_nicegui_middlewares_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same app with NiceGUI's own `SetCacheControlMiddleware` and `RedirectWithPrefixMiddleware`,
    with and without the lean stack: the same `Cache-Control` and redirect `Location` under the
    versioned prefix. Fails if a NiceGUI upgrade changes what those middlewares do there."""
    directives = "public, max-age=7, immutable"
    monkeypatch.setattr(core.app.config, "cache_control_directives", directives, raising=False)
    prefix = versioned_prefix()
    assert prefix == f"/_nicegui/{__version__}/"

    def make(lean: bool) -> FastAPI:
        app = FastAPI()

        @app.get(f"{prefix}static/app.js")
        async def file() -> PlainTextResponse:
            return PlainTextResponse("file", headers={"Cache-Control": "public, max-age=3600"})

        @app.get(f"{prefix}components/moved")
        async def moved() -> RedirectResponse:
            return RedirectResponse(f"{prefix}components/here")

        app.add_middleware(RedirectWithPrefixMiddleware)
        app.add_middleware(NiceGuiCacheControl)
        if lean:
            lean_path.install(app, prefix, cache_control=lambda: core.app.config.cache_control_directives)
        return app

    answers = []
    for lean in (False, True):
        transport = httpx.ASGITransport(app=make(lean))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            headers = {"X-Forwarded-Prefix": "/ops"}
            file = await client.get(f"{prefix}static/app.js", headers=headers)
            moved = await client.get(f"{prefix}components/moved", headers=headers, follow_redirects=False)
        answers.append((file.headers["cache-control"], moved.status_code, moved.headers["location"]))
    assert answers[0] == (directives, 307, f"/ops{prefix}components/here")
    assert answers[1] == answers[0]


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
            # Prometheus scrapes without a cookie: each scrape made a session and its storage.
            scrape = httpx.get(f"{server.url}/metrics", timeout=30)
            assert scrape.status_code == 401 and "set-cookie" not in scrape.headers
            assert scrape.headers["x-content-type-options"] == "nosniff"
            page = client.get("/login")
            assert page.status_code in (200, 303)  # 303: to the first-admin set-up page
            assert "session=" in page.headers.get("set-cookie", "")
            assert page.headers["x-frame-options"] == "DENY"
            # A browser's first request may be for a file (no cookie yet): no session is made for it.
            script = httpx.get(f"{server.url}{versioned_prefix()}static/nicegui.js", timeout=30)
            assert script.status_code == 200
            assert "set-cookie" not in script.headers, "no session made for a static file"
            assert script.headers["x-content-type-options"] == "nosniff"
            assert "immutable" in script.headers["cache-control"]
        ws_url = server.url.replace("http://", "ws://", 1) + "/ws/executions/1"
        with connect(ws_url, open_timeout=30) as ws, pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=30)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    finally:
        stop_server(server)
