"""The routes' request-handling state is built right after the start, not by the first request
(opscraft/api/route_state.py, issue 15: the first API call after a start took 0.4-0.6 s)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import fastapi.routing
import httpx
import pytest
from fastapi import FastAPI

from opscraft.api import install_api, route_state
from opscraft.config import load_settings
from tests.conftest import LoggedIn


def _fresh_api(data: Path) -> FastAPI:
    app = FastAPI()
    install_api(app, load_settings(OPSCRAFT_DATA_DIR=data, SECRET_KEY="k" * 40))
    return app


async def test_after_build_ahead_no_request_builds_route_state(
    tmp_path: Path, admin: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a request would build is built ahead: a request to a route of each router after
    `build_ahead` builds nothing (FastAPI's builder, `_populate_api_route_state`, is counted;
    if a FastAPI upgrade renames it, this test fails rather than passing on nothing)."""
    app = _fresh_api(tmp_path)
    built: list[str] = []
    real = fastapi.routing._populate_api_route_state

    def counting(route: object, path: str, *args: object, **kwargs: object) -> None:
        built.append(path)
        real(route, path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(fastapi.routing, "_populate_api_route_state", counting)
    await route_state.build_ahead(app)
    assert len(built) > 100, "build_ahead built the state of every API route"
    ahead = len(built)
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        for path in ("/api/v1/health", "/api/v1/scripts", "/api/v1/executions", "/api/v1/workers", "/api/x"):
            response = await client.get(path, headers=admin.headers)
            assert response.status_code == (404 if path.endswith("/x") else 200), response.text
    assert len(built) == ahead, f"requests built route state again: {built[ahead:]}"


async def test_build_ahead_lets_the_event_loop_serve_between_routers(tmp_path: Path) -> None:
    """One router per turn of the event loop: a task that only yields gets turns meanwhile."""
    app = _fresh_api(tmp_path)
    turns = 0
    done = asyncio.Event()

    async def other_work() -> None:
        nonlocal turns
        while not done.is_set():
            turns += 1
            await asyncio.sleep(0)

    ticker = asyncio.create_task(other_work())
    await route_state.build_ahead(app)
    done.set()
    await ticker
    assert turns >= len([r for r in app.router.routes if hasattr(r, "original_router")])
