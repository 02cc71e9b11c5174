"""The shared page frame and the guard every page and event handler goes through."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from typing import Any

from nicegui import app, ui

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
    NavItem("Settings", "settings", "/settings", Permission.manage_settings),
]


def notify_error(message: str) -> None:
    ui.notify(message, type="negative", position="top", multi_line=True, close_button=True)


def notify_ok(message: str) -> None:
    ui.notify(message, type="positive", position="top")


async def guard(permission: Permission | None = None) -> Actor | None:
    """Re-check the session (and a permission) on the server; on failure, say so and redirect."""
    actor = await session.current_actor()
    if actor is None:
        ui.navigate.to(session.login_url("/"))
        return None
    if permission is not None and not can(actor.user, permission):
        notify_error(f"your role ({actor.user.role if actor.user else '-'}) may not do this")
        return None
    return actor


async def run_action(action: Callable[[], Awaitable[Any]], success: str | None = None) -> Any:
    """Run a service call from an event handler: service errors become red notifications."""
    try:
        result = await action()
    except ServiceError as exc:
        notify_error(exc.message)
        return None
    if success:
        notify_ok(success)
    return result


def protected_page(path: str, permission: Permission | None = None, title: str = "") -> Callable[..., Any]:
    """`@ui.page` that requires a logged-in user with `permission`; the page function gets the Actor."""

    def decorator(func: Callable[..., Awaitable[None]]) -> Callable[..., Any]:
        @ui.page(path, title=f"{title} · OpsCraft" if title else "OpsCraft")
        @wraps(func)
        async def wrapper(*args: Any, **kwargs: Any) -> None:
            actor = await session.current_actor()
            if actor is None:
                ui.navigate.to(session.login_url(_request_path()))
                return
            if permission is not None and not can(actor.user, permission):
                with frame(actor, "Not allowed"):
                    ui.label(
                        f"Your role ({actor.user.role if actor.user else '-'}) may not open this page."
                    ).classes("text-negative text-lg").props('data-testid="forbidden"')
                return
            await func(actor, *args, **kwargs)

        return wrapper

    return decorator


def _request_path() -> str:
    from nicegui import context

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
            ui.button(icon="dark_mode", on_click=toggle_dark).props("flat round color=white").tooltip(
                "Toggle dark mode"
            )
            with ui.button(icon="account_circle").props('flat color=white no-caps data-testid="user-menu"'):
                ui.label(f"{user.full_name or user.username} · {user.role}").classes("ml-1").props(
                    'data-testid="whoami"'
                )
                with ui.menu():
                    ui.menu_item("Profile", lambda: ui.navigate.to("/profile"))
                    ui.menu_item("Log out", lambda: ui.navigate.to("/logout")).props('data-testid="logout"')
    with ui.left_drawer(value=True, bordered=True).classes("bg-grey-1 dark:bg-grey-9") as drawer:
        for item in NAV:
            if item.permission is None or can(user, item.permission):
                with ui.link(target=item.path).classes("no-underline w-full"):
                    with ui.row().classes("items-center gap-3 px-2 py-2 rounded hover:bg-grey-3 w-full"):
                        ui.icon(item.icon).classes("text-primary")
                        ui.label(item.label).classes("text-body1").props(
                            f'data-testid="nav-{item.path.strip("/") or "home"}"'
                        )
    with ui.column().classes("w-full max-w-7xl mx-auto p-4 gap-4"):
        ui.label(title).classes("text-2xl font-semibold")
        yield
