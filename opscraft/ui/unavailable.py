"""What the browser shows while the database does not answer (`db.unreachable.is_unreachable`),
or while the Redis that keeps the browser sessions does not (`ui.redis_storage`: a page opened
then is answered the same way, saying so).

- Opening a page: a page saying the database is unreachable, with a link to load it again,
  answered 503 with `Retry-After`. It was NiceGUI's "500 Server error" with the driver's
  exception as its text ("ConnectionRefusedError: [Errno 111] Connection refused").
- An action on a page already open (Save, Delete, Log in...): a red notice saying so. The click
  did nothing visible: the exception only reached the server's log.
"""

from __future__ import annotations

import inspect
from typing import Any

from fastapi import Request
from nicegui import Client, app, ui
from starlette.responses import Response

from opscraft.db import unreachable
from opscraft.ui import redis_storage
from opscraft.ui.layout import LANGUAGE, notify_error, page_title

UNAVAILABLE = 503
PAGE_MESSAGE = unreachable.MESSAGE[0].upper() + unreachable.MESSAGE[1:] + "."
SESSIONS_MESSAGE = redis_storage.MESSAGE + "."


def _page(request: Request, title: str = "Database unreachable", message: str = PAGE_MESSAGE) -> Response:
    error_page = ui.page("", title=page_title(title), language=LANGUAGE)
    with Client(error_page, request=request) as client:
        with ui.column().classes("w-full items-center p-16 gap-4"):
            with ui.card().classes("p-6 items-center gap-2").props('data-testid="unavailable"'):
                ui.icon("cloud_off", color="grey-7").classes("text-5xl")
                ui.label(message).classes("text-negative text-lg")
                ui.link("Try again", str(request.url)).props('data-testid="unavailable-retry"')
    response = client.build_response(request, UNAVAILABLE)
    response.headers["Retry-After"] = str(unreachable.RETRY_AFTER_SECONDS)
    return response


def sessions_page(request: Request) -> Response:
    """The page opened while the Redis that keeps the browser sessions does not answer
    (`ui.redis_storage`): 503 with `Retry-After`, saying so, with a link to load it again."""
    return _page(request, "Sessions unreachable", SESSIONS_MESSAGE)


def _in_page(exc: Exception) -> None:
    """NiceGUI's handler of an exception raised by an open page's event handler (it runs in that
    page's context, after NiceGUI's own, which logs it)."""
    if unreachable.is_unreachable(exc):
        notify_error(PAGE_MESSAGE)


def install() -> None:
    """Answer a page that could not be built because the database is unreachable with `_page`
    (`api.errors.InternalErrorMiddleware` has logged it in one line); every other error keeps the
    handler installed before (NiceGUI's error page, the API's JSON)."""
    previous: Any = app.exception_handlers[Exception]

    async def handler(request: Request, exc: Exception) -> Response:
        if request.scope.get("nicegui_page_path") and unreachable.is_unreachable(exc):
            return _page(request)
        result = previous(request, exc)
        return await result if inspect.isawaitable(result) else result

    app.add_exception_handler(Exception, handler)
    app.on_exception(_in_page)
