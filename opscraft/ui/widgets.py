"""Small building blocks shared by the pages (service calls, forms, times)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from nicegui import ui

from opscraft import runtime

T = TypeVar("T")


async def call(func: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """Run one service function in a fresh database session: `await call(scripts.get, actor, id)`."""
    async with runtime.current().db.session() as session:
        return await func(session, *args, **kwargs)


def format_time(value: datetime | None, empty: str = "never") -> str:
    """`2026-01-31 14:05 UTC`, or `empty` when there is no time."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else empty


def text_input(label: str, testid: str, *, autofocus: bool = False) -> ui.input:
    props = f'outlined dense data-testid="{testid}"' + (" autofocus" if autofocus else "")
    return ui.input(label).props(props).classes("w-full")


def password_input(label: str, testid: str, *, autocomplete: str = "new-password") -> ui.input:
    return (
        ui.input(label, password=True, password_toggle_button=True)
        .props(f'outlined dense autocomplete={autocomplete} data-testid="{testid}"')
        .classes("w-full")
    )


def password_hint(min_length: int) -> None:
    ui.label(f"At least {min_length} characters, not the username.").classes("text-caption text-grey-7")
