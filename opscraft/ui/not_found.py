"""What a page shows for something that is not there: an address no page answers
(`/nonexistent`), or a page for a script, run... that does not exist (`/scripts/99999`).

Both answer 404 (not NiceGUI's raw "HTTPException: 404: Not Found", not a 200) and show, inside
the usual frame for a logged-in user, what is missing and a link back. API addresses keep the
JSON error of api/errors.py.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from nicegui import Client, app, context, ui
from starlette.responses import Response

from opscraft.ui import session
from opscraft.ui.layout import LANGUAGE, frame

NOT_FOUND = 404
# Addresses that are no page's: the API, the WebSocket streams (a plain HTTP GET of
# `/ws/executions/1` runs outside NiceGUI's middlewares, so a page could not even be built:
# it was a 500) and NiceGUI's assets.
NOT_PAGES = ("/api/", "/ws/", "/_nicegui/")


def missing(message: str, back_label: str, back_url: str, status: int = NOT_FOUND) -> None:
    """The page's content when what it shows does not exist (or may not be seen): `message`
    (the service's), a link back, and the response status (`status`, the service error's)."""
    context.client.status_code = status
    with ui.card().classes("p-6 items-center gap-2").props('data-testid="missing"'):
        ui.icon("search_off", color="grey-7").classes("text-5xl")
        ui.label(message).classes("text-negative text-lg").props('data-testid="not-found"')
        ui.link(back_label, back_url).props('data-testid="not-found-back"')


async def _page(request: Request) -> Response:
    actor = await session.current_actor()
    with Client(ui.page("", title="Page not found · OpsCraft", language=LANGUAGE), request=request) as client:
        message = f"There is no page at {request.url.path}."
        if actor is None:
            missing(message, "Log in", "/login")
        else:
            with frame(actor, "Page not found"):
                missing(message, "Back to the dashboard", "/")
    return client.build_response(request, NOT_FOUND)


def install() -> None:
    """Answer page addresses no route matches with `_page`; API and WebSocket addresses, static
    files and other non-page routes keep the handler installed before (JSON)."""
    previous: Any = app.exception_handlers.get(NOT_FOUND)

    async def handler(request: Request, exc: Exception) -> Response:
        routed = request.scope.get("endpoint") is not None  # a route that matched raised it
        if routed or request.url.path.startswith(NOT_PAGES):
            return await previous(request, exc)
        return await _page(request)

    app.add_exception_handler(NOT_FOUND, handler)
