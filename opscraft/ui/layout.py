"""The shared page frame and the guard every page and event handler goes through."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import Response
from fastapi.responses import RedirectResponse
from nicegui import app, context, ui
from pydantic import ValidationError

from opscraft.services.actor import Actor
from opscraft.services.errors import ServiceError
from opscraft.services.permissions import Permission, can
from opscraft.ui import session


@dataclass(frozen=True)
class NavItem:
    label: str
    icon: str
    path: str
    permission: Permission | None = None


NAV: list[NavItem] = [
    NavItem("Dashboard", "dashboard", "/"),
    NavItem("Scripts", "description", "/scripts", Permission.view_scripts),
    NavItem("Executions", "play_circle", "/executions", Permission.view_scripts),
    NavItem("Secrets", "key", "/secrets", Permission.manage_secrets),
    NavItem("Users", "group", "/users", Permission.manage_users),
    NavItem("Audit log", "policy", "/audit", Permission.view_audit),
    NavItem("Workers", "dns", "/workers", Permission.view_system),
    NavItem("Settings", "settings", "/settings", Permission.manage_settings),
]


NAV_CSS = """
.oc-nav { display: block; width: 100%; border-radius: 6px; color: inherit; text-decoration: none; }
.oc-nav:hover { background: rgba(127, 127, 127, 0.12); }
.oc-nav-active { background: rgba(25, 118, 210, 0.14); color: var(--q-primary); font-weight: 600; }
"""


def notify_error(message: str) -> None:
    ui.notify(message, type="negative", position="top", multi_line=True, close_button=True)


def notify_ok(message: str) -> None:
    ui.notify(message, type="positive", position="top")


def validation_message(exc: ValidationError) -> str:
    """'field: what is wrong' for the first problem (never the submitted value)."""
    err = exc.errors()[0]
    field = ".".join(str(part) for part in err["loc"]) or "input"
    return f"{field}: {str(err['msg']).removeprefix('Value error, ')}"


async def guard(permission: Permission | None = None) -> Actor | None:
    """Re-check the session (and a permission) on the server; on failure, say so and redirect."""
    ended = "user_id" in app.storage.user
    actor = await session.current_actor()
    if actor is None:
        ui.navigate.to(session.login_url("/", "ended" if ended else None))
        return None
    if permission is not None and not can(actor.user, permission):
        notify_error(f"your role ({actor.user.role if actor.user else '-'}) may not do this")
        return None
    return actor


async def run_action(action: Callable[[], Awaitable[Any]], success: str | None = None) -> Any:
    """Run a service call from an event handler: invalid input and service errors become red
    notifications. Returns the action's result, or None when it failed."""
    try:
        result = await action()
    except ValidationError as exc:
        notify_error(validation_message(exc))
        return None
    except ServiceError as exc:
        notify_error(exc.message)
        return None
    if success:
        notify_ok(success)
    return result


def protected_page(path: str, permission: Permission | None = None, title: str = "") -> Callable[..., Any]:
    """`@ui.page` that requires a logged-in user with `permission`; the page function gets the Actor
    first, then the page's own (path/query) parameters."""

    def decorator(func: Callable[..., Awaitable[None]]) -> Callable[..., Any]:
        async def page(*args: Any, **kwargs: Any) -> Response | None:
            ended = "user_id" in app.storage.user
            actor = await session.current_actor()
            if actor is None:
                target = session.login_url(_request_path(), "ended" if ended else None)
                return RedirectResponse(target, status_code=303)
            if permission is not None and not can(actor.user, permission):
                context.client.status_code = 403
                with frame(actor, "Not allowed"):
                    with ui.card().classes("p-6 items-center gap-2"):
                        ui.icon("block", color="negative").classes("text-5xl")
                        ui.label(
                            f"Your role ({actor.user.role if actor.user else '-'}) may not open this page."
                        ).classes("text-negative text-lg").props('data-testid="forbidden"')
                        ui.link("Back to the dashboard", "/")
                return None
            await func(actor, *args, **kwargs)
            return None

        # FastAPI reads the page's parameters from this signature: all of func's but the actor, with
        # annotations resolved in func's own module.
        params = list(inspect.signature(func, eval_str=True).parameters.values())[1:]
        page.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        page.__name__ = func.__name__
        page.__doc__ = func.__doc__
        ui.page(path, title=f"{title} · OpsCraft" if title else "OpsCraft")(page)
        return func

    return decorator


def _request_path() -> str:
    request = context.client.request
    return request.url.path + (f"?{request.url.query}" if request.url.query else "") if request else "/"


@contextmanager
def frame(actor: Actor, title: str) -> Iterator[None]:
    user = actor.user
    assert user is not None
    dark = ui.dark_mode(app.storage.user.get("dark"))

    def toggle_dark() -> None:
        dark.value = not dark.value
        app.storage.user["dark"] = dark.value

    with ui.header(elevated=True).classes("items-center justify-between bg-primary"):
        with ui.row().classes("items-center gap-2"):
            ui.button(icon="menu", on_click=lambda: drawer.toggle()).props("flat round color=white")
            ui.link("OpsCraft", "/").classes("text-xl font-bold text-white no-underline")
        with ui.row().classes("items-center gap-2"):
            ui.button(icon="dark_mode", on_click=toggle_dark).props(
                'flat round color=white data-testid="dark-toggle"'
            ).tooltip("Toggle dark mode")
            with ui.button(icon="account_circle").props('flat color=white no-caps data-testid="user-menu"'):
                ui.label(f"{user.full_name or user.username} · {user.role}").classes("ml-1").props(
                    'data-testid="whoami"'
                )
                with ui.menu():
                    ui.menu_item("Profile", lambda: ui.navigate.to("/profile"))
                    ui.menu_item("Log out", lambda: ui.navigate.to("/logout")).props('data-testid="logout"')
    ui.add_css(NAV_CSS)
    here = context.client.request.url.path if context.client.request else "/"
    with ui.left_drawer(value=True, bordered=True).props("width=220") as drawer:
        with ui.column().classes("w-full gap-1 p-2"):
            for item in NAV:
                if item.permission is not None and not can(user, item.permission):
                    continue
                active = here == item.path or (item.path != "/" and here.startswith(item.path + "/"))
                link = ui.link(target=item.path).classes("oc-nav" + (" oc-nav-active" if active else ""))
                with link.props(f'data-testid="nav-{item.path.strip("/") or "home"}"'):
                    with ui.row().classes("items-center gap-3 px-3 py-2 no-wrap"):
                        ui.icon(item.icon).classes("text-xl")
                        ui.label(item.label).classes("text-body1")
    with ui.column().classes("w-full max-w-7xl mx-auto p-4 gap-4"):
        ui.label(title).classes("text-2xl font-semibold")
        yield
