"""A day-range filter field: a read-only input that opens a range date picker (YYYY-MM-DD, UTC days,
as its label says; its Today button picks today's UTC date, whatever the browser's zone).

Shared by the executions history and the audit log so both filter dates the same way.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

from opscraft.db.types import utcnow

# A read-only field (typing is done in the date picker) drawn like the other filters, not dashed.
DATE_FIELD_CSS = ".oc-date-range .q-field__control:before { border-style: solid !important; }"


def range_text(since: str | None, until: str | None) -> str:
    """`2026-01-01 → 2026-01-31`, `… → 2026-01-31` for an open start, "" for no range."""
    return f"{since or '…'} → {until or '…'}" if since or until else ""


class DateRange:
    """The field and its picker; `on_change(since, until)` gets `YYYY-MM-DD` strings or None.

    A range arrives from Quasar's picker as {"from", "to"}, a single day as a string (both ends).
    `testid` names the field; its Apply button is `<testid>-apply`.
    """

    def __init__(
        self,
        label: str,
        testid: str,
        on_change: Callable[[str | None, str | None], Awaitable[None]],
        since: str | None = None,
        until: str | None = None,
    ) -> None:
        self.since, self.until = since, until
        self._on_change = on_change
        ui.add_css(DATE_FIELD_CSS)
        with (
            ui.input(f"{label} (UTC days)", value=range_text(since, until))
            .props(f'outlined dense readonly clearable data-testid="{testid}"')
            .classes("w-64 oc-date-range") as self.field
        ):
            with self.field.add_slot("prepend"):
                ui.icon("event").classes("cursor-pointer")
            with ui.menu().props("no-parent-event") as self.menu:
                # Not Quasar's today-btn: it picks the browser's date, the next or previous UTC day
                # for hours of the day in zones away from UTC (the filters are UTC days).
                self.picker = ui.date(
                    value={"from": since, "to": until} if since and until else None, mask="YYYY-MM-DD"
                ).props("range")
                with ui.row().classes("justify-end w-full p-2 gap-2"):
                    ui.button("Today (UTC)", on_click=self._today).props(f'flat data-testid="{testid}-today"')
                    ui.button("Close", on_click=self.menu.close).props("flat")
                    ui.button("Apply", on_click=self._apply).props(f'unelevated data-testid="{testid}-apply"')
        self.field.on("click", self.menu.open)
        self.field.on("clear", self._clear)

    def set(self, since: str | None, until: str | None) -> None:
        """Show a range (None, None clears it) without calling `on_change`."""
        self.since, self.until = since, until
        self.picker.value = {"from": since, "to": until} if since and until else None
        self.field.value = range_text(since, until)

    def _today(self) -> None:
        """Select today's UTC date (and show its month)."""
        today = utcnow().date()
        self.picker.value = today.isoformat()
        self.picker.run_method("setCalendarTo", today.year, today.month)

    async def _apply(self) -> None:
        self.menu.close()
        value: Any = self.picker.value
        since, until = (value.get("from"), value.get("to")) if isinstance(value, dict) else (value, value)
        self.set(since or None, until or None)
        await self._on_change(self.since, self.until)

    async def _clear(self) -> None:
        self.set(None, None)
        await self._on_change(None, None)
