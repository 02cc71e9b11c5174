"""The executions history (/executions) and the script page's "Executions" tab."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from typing import Any
from urllib.parse import urlencode

from nicegui import ui

from opscraft.db.models import Script
from opscraft.db.models.executions import FINAL_STATUSES
from opscraft.services import executions, scripts
from opscraft.services.actor import Actor
from opscraft.services.errors import ServiceError
from opscraft.services.permissions import Permission
from opscraft.ui.date_range import DateRange
from opscraft.ui.execution_widgets import STATUS_LABELS, run_rows, runs_table
from opscraft.ui.layout import frame, guard, notify_error, protected_page
from opscraft.ui.script_tabs import script_tab
from opscraft.ui.widgets import call, live_timer

PAGE_SIZE = 25
REFRESH_SECONDS = 3.0
MAX_SCRIPT_OPTIONS = 500


@dataclass(frozen=True)
class RunFilter:
    """What the history shows; mirrored in the page's query string."""

    script_id: int | None = None
    status: str | None = None
    user_id: int | None = None
    since: str | None = None
    until: str | None = None
    page: int = 1

    def query(self) -> str:
        values = {k: v for k, v in vars(self).items() if v not in (None, "") and not (k == "page" and v == 1)}
        return urlencode(values)

    def service_args(self) -> dict[str, Any]:
        """Keyword arguments for `executions.list_executions`; dates are whole UTC days."""
        return {
            "script_id": self.script_id,
            "status": self.status,
            "user_id": self.user_id,
            "since": _day(self.since, time.min),
            "until": _day(self.until, time.max),
            "skip": (self.page - 1) * PAGE_SIZE,
            "limit": PAGE_SIZE,
        }


def _day(value: str | None, at: time) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.combine(date.fromisoformat(value), at, tzinfo=UTC)
    except ValueError:
        return None


def _live(page: executions.HistoryPage) -> bool:
    """Whether a run of the page may still change (the history re-reads it then)."""
    return any(row.status not in FINAL_STATUSES for row in page.rows)


def _frame(page: executions.HistoryPage) -> tuple[Any, ...]:
    """What the results show besides the table's rows: the count line and the paging."""
    return (page.total, page.capped, len(page.rows))


class RunHistory:
    """A filterable, paginated list of runs; `fixed_script` pins it to one script (the script tab)."""

    def __init__(self, actor: Actor, filters: RunFilter, *, fixed_script: int | None = None) -> None:
        self.actor = actor
        self.filters = replace(filters, script_id=fixed_script) if fixed_script else filters
        self.fixed_script = fixed_script
        self.live = False
        self.results = ui.refreshable(self._results)
        # The drawn table and what fixes the rest of the results (counts, paging): a live re-read
        # that only changes rows updates the table in place instead of redrawing the results,
        # whose pagination a click may be on its way to.
        self.table: ui.table | None = None
        self.frame: tuple[Any, ...] | None = None

    async def render(self) -> None:
        await self._filter_bar()
        await self.results()
        live_timer(REFRESH_SECONDS, self._refresh_if_live)

    async def _filter_bar(self) -> None:
        with ui.row().classes("w-full items-end gap-3").props('data-testid="run-filters"'):
            if self.fixed_script is None:
                scripts_found, _ = await call(
                    scripts.list_scripts, self.actor, scripts.ScriptQuery(limit=MAX_SCRIPT_OPTIONS)
                )
                options = {s.id: s.name for s in scripts_found}
                ui.select(
                    options,
                    label="Script",
                    value=self.filters.script_id if self.filters.script_id in options else None,
                    clearable=True,
                    on_change=lambda e: self.apply(script_id=e.value),
                ).props('outlined dense data-testid="filter-script"').classes("w-56")
            ui.select(
                dict(STATUS_LABELS),
                label="Status",
                value=self.filters.status if self.filters.status in STATUS_LABELS else None,
                clearable=True,
                on_change=lambda e: self.apply(status=e.value),
            ).props('outlined dense data-testid="filter-status"').classes("w-40")
            users = dict(await call(executions.triggering_users, self.actor))
            ui.select(
                users,
                label="Triggered by",
                value=self.filters.user_id if self.filters.user_id in users else None,
                clearable=True,
                on_change=lambda e: self.apply(user_id=e.value),
            ).props('outlined dense data-testid="filter-user"').classes("w-44")
            DateRange(
                "Queued between",
                "filter-dates",
                lambda since, until: self.apply(since=since, until=until),
                self.filters.since,
                self.filters.until,
            )
            if self.fixed_script is not None:
                ui.link(
                    "Open in the executions history", f"/executions?script_id={self.fixed_script}"
                ).classes("ml-auto self-center text-sm")

    async def apply(self, **changes: Any) -> None:
        """Change filters (back to page 1 unless the page itself changes) and redraw."""
        actor = await guard(Permission.view_scripts)
        if actor is None:
            return
        self.actor = actor
        self.filters = replace(self.filters, **{"page": 1, **changes})
        if self.fixed_script is None:  # the history page keeps its filters in the address
            query = self.filters.query()
            ui.navigate.history.replace(f"/executions{'?' + query if query else ''}")
        await self.results.refresh()

    async def _refresh_if_live(self) -> None:
        if not self.live:
            return
        actor = await guard(Permission.view_scripts)
        if actor is None:
            return
        self.actor = actor
        page = await self._load()
        if page is None:
            return
        if self.table is None or _frame(page) != self.frame:
            await self.results.refresh()
            return
        self.live = _live(page)
        rows = run_rows(page.rows)
        if rows != self.table.rows:
            self.table.rows = rows

    async def _load(self) -> executions.HistoryPage | None:
        try:
            return await call(executions.list_executions, self.actor, **self.filters.service_args())
        except ServiceError as exc:
            notify_error(exc.message)
            return None

    async def _results(self) -> None:
        self.table = self.frame = None
        page = await self._load()
        if page is None:
            return
        rows, total, capped = page.rows, page.total, page.capped
        self.live = _live(page)
        self.frame = _frame(page)
        if not rows:
            with ui.column().classes("w-full items-center py-10 text-grey-7").props('data-testid="no-runs"'):
                ui.icon("history", size="3rem")
                if total:
                    ui.label(
                        f"This page is past the last one ({total}{'+' if capped else ''} "
                        f"run{'s' if total > 1 else ''} in all)."
                    )
                    ui.button("First page", on_click=lambda: self.apply(page=1)).props("flat no-caps")
                elif replace(self.filters, page=1) != RunFilter(script_id=self.fixed_script):
                    ui.label("No executions match these filters.")
                else:
                    ui.label("Nothing has run yet.")
            return
        self.table = runs_table(run_rows(rows), hide_script=self.fixed_script is not None)
        pages = max(1, -(-total // PAGE_SIZE))
        first = (self.filters.page - 1) * PAGE_SIZE + 1
        with ui.row().classes("w-full items-center justify-between"):
            shown = f"{total:,}+" if capped else str(total)
            ui.label(f"{first}-{first + len(rows) - 1} of {shown}").classes("text-grey-7").props(
                'data-testid="runs-count"'
            )
            if pages > 1:
                ui.pagination(
                    1,
                    pages,
                    direction_links=True,
                    value=min(self.filters.page, pages),
                    on_change=lambda e: self.apply(page=e.value),
                ).props('max-pages=7 boundary-numbers data-testid="runs-pages"')


@protected_page("/executions", Permission.view_scripts, title="Executions")
async def history_page(
    actor: Actor,
    script_id: int | None = None,
    status: str | None = None,
    user_id: int | None = None,
    since: str | None = None,
    until: str | None = None,
    page: int = 1,
) -> None:
    status = executions.STATUS_ALIASES.get(status or "", status) or None  # the seed's "pending"
    filters = RunFilter(script_id, status, user_id, since, until, max(page, 1))
    with frame(actor, "Executions"):
        await RunHistory(actor, filters).render()


@script_tab("executions", "Executions", "play_circle")
async def script_runs_tab(actor: Actor, script: Script) -> None:
    """The runs of one script, newest first, with a link to the full history."""
    assert script.id is not None
    await RunHistory(actor, RunFilter(), fixed_script=script.id).render()
