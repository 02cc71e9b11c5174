"""The admin audit log: who did what, when and from where, with filters."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

from nicegui import ui

from opscraft import runtime
from opscraft.db.models import AuditEvent
from opscraft.services import audit, instants
from opscraft.services.actor import Actor
from opscraft.services.errors import Invalid
from opscraft.services.permissions import Permission
from opscraft.ui import address
from opscraft.ui.date_range import DateRange
from opscraft.ui.layout import frame, guard, protected_page
from opscraft.ui.paged import PagedTable
from opscraft.ui.widgets import NARROW_HIDDEN, options_read_on_open

PAGE_SIZE = 50
FilterField = TypeVar("FilterField", ui.input, ui.select)

COLUMNS: list[dict[str, Any]] = [
    {"name": "time", "label": "Time (UTC)", "field": "time", "align": "left"},
    {"name": "actor", "label": "Actor", "field": "actor", "align": "left"},
    {"name": "action", "label": "Action", "field": "action", "align": "left"},
    {"name": "target", "label": "Target", "field": "target", "align": "left", **NARROW_HIDDEN},
    {"name": "client_ip", "label": "Client IP", "field": "client_ip", "align": "left", **NARROW_HIDDEN},
    {"name": "details", "label": "Details", "field": "details", "align": "left"},
]
ACTION_CELL = """
<q-td :props="props">
  <q-badge :color="props.value.includes('fail') || props.value.includes('delete') ? 'negative' : 'primary'"
           outline :label="props.value" />
</q-td>"""
# At least 12rem wide: wrapped anywhere and given no width, the column was squeezed to 63 px on a
# 390 px phone (four characters a line, a row 400 px tall); the table scrolls sideways instead.
DETAILS_CELL = """
<q-td :props="props" class="text-xs"
      style="white-space: pre-line; overflow-wrap: anywhere; min-width: 12rem; max-width: 32rem">
  {{ props.value }}
</q-td>"""


def readable(details: dict[str, Any] | None) -> str:
    """Details as `key: value` lines for people (changes as `from -> to`), instead of raw JSON."""
    lines = []
    for key, value in sorted((details or {}).items()):
        label = key.replace("_", " ")
        if isinstance(value, dict) and set(value) == {"from", "to"}:
            text = f"{value['from']} -> {value['to']}"
        elif isinstance(value, dict):
            text = "; ".join(f"{k.replace('_', ' ')}: {readable_value(v)}" for k, v in sorted(value.items()))
        else:
            text = readable_value(value)
        lines.append(f"{label}: {text}")
    return "\n".join(lines)


def readable_value(value: Any) -> str:
    """An audit detail value as text: lists joined with commas (`none` when empty), `{"from", "to"}` as
    `from -> to`, other objects as JSON, None as `-`.
    """
    if isinstance(value, list):
        return ", ".join(readable_value(v) for v in value) or "none"
    if isinstance(value, dict) and set(value) == {"from", "to"}:
        return f"{value['from']} -> {value['to']}"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True)
    return "-" if value is None else str(value)


def _row(event: AuditEvent) -> dict[str, Any]:
    target = " ".join(str(part) for part in (event.target_type, event.target_id) if part) or "-"
    return {
        "id": event.id,
        "time": event.time.strftime("%Y-%m-%d %H:%M:%S"),
        "actor": event.actor_name or "system",
        "action": event.action,
        "target": target.strip(),
        "client_ip": event.client_ip or "-",
        "details": readable(event.details),
    }


def _day(value: str | None, *, end: bool = False) -> datetime | None:
    """A `YYYY-MM-DD` input as the start (or end) of that day in UTC."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise Invalid("dates must look like 2026-01-31") from None
    return instants.day_end(day) if end else instants.day_start(day)


@dataclass(frozen=True)
class AuditFilter:
    """The filters shown; mirrored in the page's query string (`/audit?actor_name=bob&since=2026-12-01`)
    so a reload, Back from another page or a shared link shows the same events (they were lost)."""

    actor_name: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: str | None = None  # YYYY-MM-DD, a whole UTC day
    until: str | None = None

    def address(self) -> str:
        """`/audit` with the filters that are set."""
        params = {key: value for key, value in asdict(self).items() if value}
        return f"/audit?{urlencode(params)}" if params else "/audit"


def _filter(element: FilterField, name: str, width: str, props: str = "") -> FilterField:
    return element.props(f'outlined dense {props} data-testid="audit-{name}"').classes(width)


class AuditView(PagedTable):
    """The audit log page's filters, table and pager; the filters and the page are kept in the
    address (`AuditFilter`, `paged.KeptPage`). Followed live on page 1 (`follow`): a new event
    shows at the top of the filtered list without a reload (it showed only after one); a later
    page stays as read, its rows not pushed along while they are being read."""

    def __init__(self, actions: list[str], targets: list[str], shown: AuditFilter, page: int = 1) -> None:
        super().__init__(PAGE_SIZE, page)
        # The filters the rows shown were read with: a live re-read keeps them, not a filter
        # being typed and not yet applied (Filter, Enter), which neither reads nor goes in the address.
        self.applied = shown
        with ui.card().classes("w-full"), ui.row().classes("w-full items-end gap-3"):
            self.actor = _filter(
                ui.input("Actor (username)", value=shown.actor_name), "actor", "w-36", "clearable"
            )
            self.action = _filter(
                ui.select(actions, label="Action", clearable=True, value=shown.action), "action", "w-52"
            )
            self.target_type = _filter(
                ui.select(targets, label="Target type", clearable=True, value=shown.target_type),
                "target-type",
                "w-32",
            )
            self.target_id = _filter(
                ui.input("Target id", value=shown.target_id), "target-id", "w-24", "clearable"
            )
            self.dates = DateRange("Between", "audit-dates", self._dates_changed, shown.since, shown.until)
            ui.button("Filter", icon="filter_alt", on_click=self.reload).props(
                'unelevated data-testid="audit-apply"'
            )
            for typed in (self.actor, self.target_id):  # Enter filters, as in every search box
                typed.on("keydown.enter", self.reload)
            ui.button(icon="filter_alt_off", on_click=self.clear).props(
                'flat round aria-label="Clear the filters"'
            ).tooltip("Clear the filters")
        # An action or target type first recorded since the page loaded is offered when its
        # box opens (new events show live: their filters were missing until a reload).
        options_read_on_open(self.action, lambda: self._facet(0))
        options_read_on_open(self.target_type, lambda: self._facet(1))
        # A refused filter (a control character, too long, a range ending before it starts, as
        # an address may hold) is said under its input.
        self.filter_fields = {
            "actor_name": self.actor,
            "target_id": self.target_id,
            "since": self.dates.field,
            "until": self.dates.field,
        }
        self.make_table(COLUMNS, "audit-table", "Audit log").props("dense")
        self.table.add_slot("body-cell-action", ACTION_CELL)
        self.table.add_slot("body-cell-details", DETAILS_CELL)
        self.make_footer("audit-summary")

    @staticmethod
    async def _facet(which: int) -> list[str] | None:
        """The actions (`which` 0) or target types (1) recorded now (`audit.facets`), re-checking
        view_audit (None: refused, said)."""
        actor = await guard(Permission.view_audit)
        if actor is None:
            return None
        async with runtime.current().db.session() as s:
            return (await audit.facets(s, actor))[which]

    def shown(self) -> AuditFilter:
        """The filters as the inputs hold them."""
        return AuditFilter(
            (self.actor.value or "").strip() or None,
            self.action.value or None,
            self.target_type.value or None,
            (self.target_id.value or "").strip() or None,
            self.dates.since,
            self.dates.until,
        )

    def address(self) -> str:
        """`/audit` with the filters applied (`AuditFilter.address`); the page is added."""
        return self.applied.address()

    async def clear(self) -> None:
        """Clear every filter and show the first page."""
        for field in (self.actor, self.action, self.target_type, self.target_id):
            field.value = None
        self.dates.set(None, None)
        await self.reload()

    async def _dates_changed(self, since: str | None, until: str | None) -> None:
        await self.reload()

    def _query(self) -> audit.AuditQuery:
        shown = self.applied
        return audit.AuditQuery(
            actor_name=shown.actor_name,
            action=shown.action,
            target_type=shown.target_type,
            target_id=shown.target_id,
            since=_day(shown.since),
            until=_day(shown.until, end=True),
            skip=self.skip,
            limit=self.page_size,
        )

    async def show_page(self, ticking: bool = False) -> None:
        """Read the page of events the filters select (re-checking view_audit) and show it; a
        refused filter is shown under its input (`PagedTable.load`). `ticking` (a live re-read):
        page 1 only, with the filters last applied."""
        if ticking and self.page != 1:
            return
        if not ticking:
            self.applied = self.shown()
        actor = await guard(Permission.view_audit, ticking=ticking)
        if actor is None:
            return

        async def fetch() -> tuple[list[AuditEvent], int]:
            query = self._query()  # a date no day is refused here, under the dates
            async with runtime.current().db.session() as s:
                return await audit.search(s, actor, query)

        result = await self.load(fetch, ticking)
        if result is None:
            return
        events, total = result
        self.show_rows([_row(e) for e in events])
        filtered = any(asdict(self.applied).values())
        self.show_total(total, "event", no_match="No events match these filters" if filtered else None)


@protected_page("/audit", Permission.view_audit, title="Audit log")
async def audit_page(
    actor: Actor,
    actor_name: str | None = None,
    action: str | None = None,
    target_type: str | None = None,
    target_id: str | None = None,
    since: address.Day | None = None,
    until: address.Day | None = None,
    page: int = 1,
) -> None:
    """The events the address's filters select (`AuditFilter`), on its `page` (past the last: the
    last); an action or target type no event has is named in a warning and left out (its list
    offers only those events have)."""
    async with runtime.current().db.session() as s:
        actions, targets = await audit.facets(s, actor)
    ignored: dict[str, str] = {}
    if action and action not in actions:
        ignored |= address.unknown_choice("action", action, actions)
        action = None
    if target_type and target_type not in targets:
        ignored |= address.unknown_choice("target_type", target_type, targets)
        target_type = None
    days = (day.isoformat() if day else None for day in (since, until))
    shown = AuditFilter(actor_name, action, target_type, target_id, *days)
    with frame(actor, "Audit log"):
        if ignored:
            address.say_ignored(ignored)
        view = AuditView(actions, targets, shown, page)
    await view.refresh()
    view.follow()
