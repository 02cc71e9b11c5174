"""Small building blocks shared by the foundation pages (forms, times)."""

from __future__ import annotations

from datetime import datetime

from nicegui import ui


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
