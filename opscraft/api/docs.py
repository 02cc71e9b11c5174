"""`/openapi.json`, `/docs` (Swagger UI) and `/redoc`, with their assets served from this process.

FastAPI's own docs pages load Swagger UI and ReDoc from a CDN, which leaves them blank on a
machine without internet access; the assets here come from the `fastapi-offline` package.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from opscraft import __version__

ASSETS_URL = "/_docs-assets"
ASSETS_DIR = Path(fastapi_offline.__file__).parent / "static"
DESCRIPTION = (
    "REST API of OpsCraft. Authenticate with `POST /api/v1/auth/login` and send "
    "`Authorization: Bearer <access_token>`. Live output: `/ws/executions/{id}?token=<access_token>`. "
    "A query parameter of a GET sent empty (`?status=`, a form's emptied filter) is as if not sent: "
    "an emptied filter is no filter, an emptied `skip`, `limit` or `tz` takes its default."
)


def install_docs(app: FastAPI) -> None:
    """Add the schema and both documentation pages to `app` (NiceGUI's, whose own are off)."""
    app.title = "OpsCraft API"
    app.version = __version__
    app.description = DESCRIPTION
    app.license_info = {"name": "MIT"}
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="OpsCraft API",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title="OpsCraft API",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
