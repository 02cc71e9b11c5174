"""The executions history (/executions) and the script page's "Executions" tab."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

from nicegui import ui

from opscraft.db.models import Script
from opscraft.db.models.executions import FINAL_STATUSES
from opscraft.services import executions, instants, scripts
from opscraft.services.actor import Actor
from opscraft.services.errors import INVALID_INPUT, ServiceError
from opscraft.services.host_filter import HOST_STATUSES
from opscraft.services.permissions import Permission
from opscraft.ui.address import Day
from opscraft.ui.date_range import DateRange
from opscraft.ui.execution_widgets import STATUS_LABELS, TRIGGER_LABELS, run_rows, runs_table
from opscraft.ui.layout import clear_field_errors, frame, guard, protected_page, show_field_errors
from opscraft.ui.script_tabs import TabAddress, script_tab
from opscraft.ui.widgets import OneRead, call, live_timer, options_read_on_open

PAGE_SIZE = 25
# The address parameters of a script's Executions tab (`RunFilter.of_address` but the script).
RUN_FILTERS = ("status", "user_id", "trigger", "since", "until", "cursor", "host", "host_status")
REFRESH_SECONDS = 3.0
MAX_SCRIPT_OPTIONS = 500
# The history's `host_status` choices (services/host_filter.py says what each means).
HOST_STATUS_LABELS = {name: status.label for name, status in HOST_STATUSES.items()}


@dataclass(frozen=True)
class RunFilter:
    """What the history shows; mirrored in the page's query string."""

    script_id: int | None = None
    status: str | None = None
    user_id: int | None = None
    trigger: str | None = None
    since: str | None = None
    until: str | None = None
    cursor: str | None = None  # `history_cursor`: None is the newest page
    host: str | None = None  # an Ansible inventory host (`host_filter`), with how it ended there
    host_status: str | None = None

    def query(self) -> str:
        """The filters as a URL query string, without the empty ones."""
        return urlencode({k: v for k, v in vars(self).items() if v not in (None, "")})

    @classmethod
    def of_address(
        cls,
        script_id: int | None = None,
        status: str | None = None,
        user_id: int | None = None,
        trigger: str | None = None,
        since: date | None = None,
        until: date | None = None,
        cursor: str | None = None,
        host: str | None = None,
        host_status: str | None = None,
    ) -> RunFilter:
        """The filters an address gives (the history's, a script's Executions tab's), empty ones
        as none; `status=pending` is the seed's name for queued."""
        status = executions.STATUS_ALIASES.get(status or "", status) or None
        days = (day.isoformat() if day else None for day in (since, until))
        rest = (cursor or None, host or None, host_status or None)
        return cls(script_id, status, user_id, trigger or None, *days, *rest)

    def service_args(self) -> dict[str, Any]:
        """Keyword arguments for `executions.list_executions`; dates are whole UTC days."""
        return {
            "script_id": self.script_id,
            "status": self.status,
            "user_id": self.user_id,
            "trigger": self.trigger,
            "since": _day(self.since, instants.day_start),
            "until": _day(self.until, instants.day_end),
            "host": self.host,
            "host_status": self.host_status,
            "cursor": self.cursor or None,
            "limit": PAGE_SIZE,
        }


def _day(value: str | None, instant: Callable[[date], datetime]) -> datetime | None:
    """`instant` (`instants.day_start` or `day_end`) of a `YYYY-MM-DD` filter, None for none or
    for one that is no date."""
    if not value:
        return None
    try:
        return instant(date.fromisoformat(value))
    except ValueError:
        return None


def _live(page: executions.HistoryPage) -> bool:
    """Whether a run of the page may still change (the history re-reads it then)."""
    return any(row.status not in FINAL_STATUSES for row in page.rows)


def _frame(page: executions.HistoryPage) -> tuple[Any, ...]:
    """What the results show besides the table's rows: the count line and the paging."""
    return (page.total, page.capped, len(page.rows), page.prev_cursor, page.next_cursor)


class RunHistory:
    """A filterable list of runs, newest first, paged by keyset cursor (Newer / Older, as the API's
    `cursor`: a page costs the same at any depth); `fixed_script` pins it to one script (the
    script tab). The count under the table is the service's capped count ("10,000+"). The filters
    and the cursor are kept in the address at `path` (`/executions?status=failed`, a script's tab
    `/scripts/5?tab=executions&status=failed`: `address`), so a reload, Back or a shared link shows
    the same runs."""

    def __init__(
        self, actor: Actor, filters: RunFilter, path: str = "/executions", *, fixed_script: int | None = None
    ) -> None:
        self.actor = actor
        self.filters = replace(filters, script_id=fixed_script) if fixed_script else filters
        self.fixed_script = fixed_script
        self.path = path
        self.full_history: ui.link | None = None  # a script tab's link to the history, with its filters
        self.live = False
        self.results = ui.refreshable(self._results)
        # A filter's redraw and a live re-read, one at a time: a re-read begun before a filter
        # changed put the older filter's rows in the newer one's table when the counts matched.
        self.reads = OneRead()
        # The drawn table and what fixes the rest of the results (counts, paging): a live re-read
        # that only changes rows updates the table in place instead of redrawing the results,
        # whose pagination a click may be on its way to.
        self.table: ui.table | None = None
        self.frame: tuple[Any, ...] | None = None
        self.refused: ServiceError | None = None
        # The filters a refusal may name (`layout.show_field_errors`): said under the field.
        self.fields: dict[str, Any] = {}

    async def render(self) -> None:
        """Draw the filter bar and the first results, and start the live refresh."""
        await self._filter_bar()
        await self.results()
        live_timer(REFRESH_SECONDS, self._refresh_if_live)

    async def _filter_bar(self) -> None:
        with ui.row().classes("w-full items-end gap-3").props('data-testid="run-filters"'):
            # Scripts and users added since the page loaded are offered when their box opens.
            if self.fixed_script is None:
                options = await self._script_options(self.actor)
                if self.filters.script_id is not None and self.filters.script_id not in options:
                    options[self.filters.script_id] = await self._script_label(self.filters.script_id)
                script_box = self._filter_select(options, "Script", "script_id", "filter-script", "w-56")
                options_read_on_open(script_box, lambda: self._reread_options(self._script_options))
            self._filter_select(dict(STATUS_LABELS), "Status", "status", "filter-status", "w-40")
            users = await self._user_options(self.actor)
            if self.filters.user_id is not None and self.filters.user_id not in users:
                users[self.filters.user_id] = f"user #{self.filters.user_id}"  # no run, or deleted
            user_box = self._filter_select(users, "Triggered by", "user_id", "filter-user", "w-44")
            options_read_on_open(user_box, lambda: self._reread_options(self._user_options))
            self._filter_select(dict(TRIGGER_LABELS), "Trigger", "trigger", "filter-trigger", "w-36")
            self._host_filter()
            DateRange(
                "Queued between",
                "filter-dates",
                lambda since, until: self.apply(since=since, until=until),
                self.filters.since,
                self.filters.until,
            )
            if self.fixed_script is not None:
                full = ui.link("Open in the executions history", self._full_history())
                self.full_history = full.classes("ml-auto self-center text-sm")
                full.props('data-testid="runs-full-history"')

    @staticmethod
    async def _script_options(actor: Actor) -> dict[Any, str]:
        """The Script box's choices: the first `MAX_SCRIPT_OPTIONS` scripts, id -> name."""
        found, _ = await call(scripts.list_scripts, actor, scripts.ScriptQuery(limit=MAX_SCRIPT_OPTIONS))
        return {s.id: s.name for s in found}

    @staticmethod
    async def _user_options(actor: Actor) -> dict[Any, str]:
        """The Triggered by box's choices: the users who started runs, id -> name."""
        return dict(await call(executions.triggering_users, actor))

    async def _reread_options(
        self, read: Callable[[Actor], Awaitable[dict[Any, str]]]
    ) -> dict[Any, str] | None:
        """`read`'s choices for a box being opened, re-checking view_scripts (None: refused)."""
        actor = await guard(Permission.view_scripts)
        return None if actor is None else await read(actor)

    async def _script_label(self, script_id: int) -> str:
        """The Script box's name for a filter on a script it does not offer (past the first
        `MAX_SCRIPT_OPTIONS`, or deleted: then the name its runs recorded), so the box shows the
        filter the list applies rather than standing empty."""
        try:
            return (await call(scripts.get, self.actor, script_id)).name
        except ServiceError:
            pass
        try:
            runs = await call(executions.list_executions, self.actor, script_id=script_id, limit=1)
        except ServiceError:  # an id no script can have: the results say the address is not valid
            return f"script #{script_id}"
        return f"{runs.rows[0].script_name} (deleted)" if runs.rows else f"script #{script_id}"

    def _filter_select(
        self, options: dict[Any, str], label: str, key: str, testid: str, width: str
    ) -> ui.select:
        """A clearable select of the filter `key` (a `RunFilter` field) among `options` (value ->
        label); a value the options lack (one the address gave) shows as no choice."""
        value = getattr(self.filters, key)
        return (
            ui.select(
                options,
                label=label,
                value=value if value in options else None,
                clearable=True,
                on_change=lambda e: self.apply(**{key: e.value}),
            )
            .props(f'outlined dense data-testid="{testid}"')
            .classes(width)
        )

    def _host_filter(self) -> None:
        """The host's name (typed: applied as typing pauses) and how it ended there (a choice)."""
        self.fields["host"] = (
            ui.input(
                "Host",
                value=self.filters.host or "",
                on_change=lambda e: self.apply(host=(e.value or "").strip() or None),
            )
            .props('outlined dense clearable debounce=500 data-testid="filter-host"')
            .classes("w-44")
        )
        self.fields["host_status"] = self._filter_select(
            dict(HOST_STATUS_LABELS), "Host status", "host_status", "filter-host-status", "w-40"
        )

    async def apply(self, **changes: Any) -> None:
        """Change filters (back to the newest page unless the cursor itself changes) and redraw."""
        actor = await guard(Permission.view_scripts)
        if actor is None:
            return
        self.actor = actor
        self.filters = replace(self.filters, **{"cursor": None, **changes})
        ui.navigate.history.replace(self.address())
        if self.full_history is not None:
            self.full_history.props["href"] = self._full_history()
            self.full_history.update()
        await self.reads.run(self.results.refresh)

    def _full_history(self) -> str:
        """The executions history with the tab's filters (the script's included), from the newest."""
        return f"/executions?{replace(self.filters, cursor=None).query()}"

    def address(self) -> str:
        """`path` with the filters set and the cursor (a fixed script is the path's, not repeated)."""
        query = (replace(self.filters, script_id=None) if self.fixed_script else self.filters).query()
        return f"{self.path}{'&' if '?' in self.path else '?'}{query}" if query else self.path

    async def _refresh_if_live(self) -> None:
        if self.live:
            await self.reads.run(self._reread, ticking=True)

    async def _reread(self) -> None:
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
        """The page of runs the filters select; None (the reason in `self.refused`) when the service
        refuses them (a hand-edited address: `?status=zzz`, `?cursor=...`)."""
        self.refused = None
        try:
            return await call(executions.list_executions, self.actor, **self.filters.service_args())
        except ServiceError as exc:
            self.refused = exc
            return None

    async def _results(self) -> None:
        self.table = self.frame = None
        page = await self._load()
        clear_field_errors(self.fields)
        if page is None:
            assert self.refused is not None
            if show_field_errors(self.fields, self.refused):  # a filter typed here: said under it
                self._nothing("No runs shown: correct the filter above.")
                return
            problem = self.refused.message.removeprefix(
                INVALID_INPUT
            )  # "not valid: invalid input" said it twice
            self._newest_link(f"This link's page of runs is not valid: {problem}.")
            return
        rows = page.rows
        self.live = _live(page)
        self.frame = _frame(page)
        if not rows:
            if self.filters.cursor:
                self._newest_link("No more runs this way.")
                return
            with ui.column().classes("w-full items-center py-10 text-grey-7").props('data-testid="no-runs"'):
                ui.icon("history", size="3rem")
                if self.filters != RunFilter(script_id=self.fixed_script):
                    ui.label("No executions match these filters.")
                else:
                    ui.label("Nothing has run yet.")
            return
        self.table = runs_table(run_rows(rows), hide_script=self.fixed_script is not None)
        with ui.row().classes("w-full items-center gap-2"):
            matching = f"{page.total:,}+" if page.capped else f"{page.total:,}"
            where = "" if self.filters.cursor else "newest "
            ui.label(f"{len(rows)} {where}of {matching} run{'s' if page.total != 1 else ''}").classes(
                "text-grey-7"
            ).props('data-testid="runs-count"')
            if page.next_cursor is None:
                ui.label("· no older runs").classes("text-grey-7").props('data-testid="runs-end"')
            ui.space()
            self._pager_button("Newest", "first_page", None, self.filters.cursor is not None, "runs-newest")
            self._pager_button(
                "Newer", "chevron_left", page.prev_cursor, page.prev_cursor is not None, "runs-newer"
            )
            self._pager_button(
                "Older", "chevron_right", page.next_cursor, page.next_cursor is not None, "runs-older"
            )

    def _pager_button(self, text: str, icon: str, cursor: str | None, enabled: bool, testid: str) -> None:
        button = ui.button(text, icon=icon, on_click=lambda: self.apply(cursor=cursor))
        button.props(f'flat dense data-testid="{testid}"').set_enabled(enabled)

    def _nothing(self, message: str) -> ui.column:
        """The results' place saying `message` (no table); returned to add a button under it."""
        with (
            ui.column()
            .classes("w-full items-center py-10 text-grey-7")
            .props('data-testid="no-runs"') as place
        ):
            ui.icon("history", size="3rem")
            ui.label(message)
        return place

    def _newest_link(self, message: str) -> None:
        with self._nothing(message):
            ui.button("Newest runs", on_click=lambda: self.apply(cursor=None)).props(
                'flat data-testid="runs-back-to-newest"'
            )


@protected_page("/executions", Permission.view_scripts, title="Executions")
async def history_page(
    actor: Actor,
    script_id: int | None = None,
    status: str | None = None,
    user_id: int | None = None,
    trigger: str | None = None,
    since: Day | None = None,
    until: Day | None = None,
    cursor: str | None = None,
    host: str | None = None,
    host_status: str | None = None,
) -> None:
    """Page /executions (needs view_scripts): the run history, filtered by the query parameters
    (`RunFilter.of_address`).
    """
    shown = RunFilter.of_address(script_id, status, user_id, trigger, since, until, cursor, host, host_status)
    with frame(actor, "Executions"):
        await RunHistory(actor, shown).render()


@script_tab("executions", "Executions", "play_circle", reads=RUN_FILTERS)
async def script_runs_tab(actor: Actor, script: Script, address: TabAddress) -> None:
    """The runs of one script, newest first, with a link to the full history; filtered by the
    address's `RUN_FILTERS` (`address.query`), which its filters and cursor are kept in
    (`/scripts/5?tab=executions&status=failed`: `address.kept`)."""
    assert script.id is not None
    path = f"/scripts/{script.id}?tab=executions"
    history = RunHistory(actor, RunFilter.of_address(**address.query), path, fixed_script=script.id)
    address.kept = history.address
    await history.render()
