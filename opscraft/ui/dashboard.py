"""The home page: execution counts, what runs now, recent runs and the 7-day success rate."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nicegui import ui

from opscraft.db.models.executions import ExecutionStatus
from opscraft.services import executions
from opscraft.services.actor import Actor
from opscraft.services.errors import ServiceError
from opscraft.services.executions import DailyRate, DashboardStats
from opscraft.services.permissions import Permission, can
from opscraft.ui.execution_widgets import (
    STATUS_LABELS,
    STATUS_STYLE,
    banner,
    elapsed,
    format_duration,
    run_rows,
    run_title,
    runs_table,
    sentence,
)
from opscraft.ui.layout import frame, guard, notify_error, protected_page
from opscraft.ui.widgets import Redrawn, call, compact_count, format_count, live_seconds, live_timer, percent

RUNNING_SHOWN = 8  # runs listed under "Running now"; a link leads to all of them
# Quasar colour names used by the badges, as chart/hex colours.
CHART_GREEN, CHART_RED, CHART_BLUE = "#21ba45", "#c10015", "#1976d2"


def _count_card(status: ExecutionStatus, count: int) -> None:
    """One status and its count (all runs so far); a link (keyboard: Tab, Enter) to the history
    filtered on that status.

    The link is named by its content, which begins with what it shows ("1.2k Queued", WCAG 2.5.3
    Label in Name: a speech-input user says what they see), followed by words only a screen reader
    reads ("runs (1,234), all time: open them", the exact count when shortened). An `aria-label` with the
    exact count first ("1,234 queued, ...") did not contain the shown "1.2k Queued" (axe-core's
    `label-content-name-mismatch`)."""
    color, icon, _ = STATUS_STYLE[status]
    name = STATUS_LABELS[status]
    link = ui.link(target=f"/executions?status={status.value}").classes("no-underline text-inherit")
    exact, short = format_count(count), compact_count(count)
    link.props(f'data-testid="count-{status.value}"')
    with link, ui.card().classes("w-full h-full hover:shadow-md").props("flat bordered"):
        with ui.row().classes("items-center gap-3 no-wrap"):
            ui.icon(icon, color=color).classes("text-3xl").props('aria-hidden="true"')
            with ui.column().classes("gap-0"):
                ui.label(short).classes("text-2xl font-semibold").props('data-testid="count-value"')
                if short != exact:
                    ui.tooltip(exact)
                ui.label(name.capitalize()).classes("text-caption text-grey-7")
                exactly = f" ({exact})" if short != exact else ""
                ui.label(f"runs{exactly}, all time: open them").classes("sr-only")


def _running_total(stats: DashboardStats) -> int:
    """How many runs run now: all of them, not only those listed (at most `RUNNING_SHOWN`), and
    never fewer than listed (the count and the list are two reads: a run may start between them)."""
    return max(stats.counts.get(ExecutionStatus.running.value, 0), len(stats.running))


def _running_now(stats: DashboardStats) -> None:
    total = _running_total(stats)
    with ui.card().classes("w-full h-full").props('flat bordered data-testid="running-now"'):
        ui.label(f"Running now ({format_count(total)})").classes("text-subtitle1 font-medium").props(
            'data-testid="running-total"'
        )
        if not stats.running:
            with ui.column().classes("w-full items-center py-6 text-grey-7"):
                ui.icon("bedtime", size="2rem")
                ui.label("Nothing is running.")
            return
        with ui.list().props("separator").classes("w-full"):
            for run in stats.running:
                target = f"/executions/{run.id}"
                # A link (the browser follows it), not a server click handler: the list is redrawn
                # while runs go, and the server drops a click sent to a replaced item.
                with ui.item().props(f'clickable tag=a href="{target}"'):
                    with ui.item_section():
                        ui.item_label(f"#{run.id} {run_title(run)}").classes("font-medium")
                        who = run.triggered_by_name or "—"
                        ui.item_label(f"{who} · {run.runner or '—'}").props("caption")
                    with ui.item_section().props("side"):
                        ui.label(format_duration(elapsed(run))).classes("text-grey-8")
        if total > len(stats.running):
            ui.link(f"All {format_count(total)} running", "/executions?status=running").classes(
                "text-sm"
            ).props('data-testid="all-running"')


def _running_key(stats: DashboardStats) -> tuple[Any, ...]:
    """What `_running_now` shows of the running runs."""
    shown = [
        (run.id, run_title(run), run.triggered_by_name, run.runner, format_duration(elapsed(run)))
        for run in stats.running
    ]
    return _running_total(stats), shown


def _chart_options(daily: list[DailyRate]) -> dict[str, Any]:
    days = [d.day.strftime("%a %d") for d in daily]
    return {
        "tooltip": {"trigger": "axis"},
        "legend": {"data": ["Succeeded", "Other outcomes", "Success rate"], "bottom": 0},
        "grid": {"left": 40, "right": 50, "top": 36, "bottom": 50},
        "xAxis": {"type": "category", "data": days},
        "yAxis": [
            {"type": "value", "name": "Runs", "minInterval": 1},
            {"type": "value", "name": "%", "min": 0, "max": 100, "axisLabel": {"formatter": "{value}%"}},
        ],
        "series": [
            _bars("Succeeded", CHART_GREEN, [d.success for d in daily]),
            _bars("Other outcomes", CHART_RED, [d.total - d.success for d in daily]),
            {
                "name": "Success rate",
                "type": "line",
                "yAxisIndex": 1,
                "color": CHART_BLUE,
                "connectNulls": True,
                "data": [percent(d.success, d.total, 1) for d in daily],
            },
        ],
    }


def _bars(name: str, color: str, data: list[int]) -> dict[str, Any]:
    return {"name": name, "type": "bar", "stack": "runs", "color": color, "data": data}


def _success_summary(daily: list[DailyRate]) -> str:
    """`99% of 1,000 finished runs succeeded in the last 7 days.`: 100% only when none failed."""
    total = sum(d.total for d in daily)
    if not total:
        return "No finished runs in the last 7 days."
    share = percent(sum(d.success for d in daily), total)
    runs = "finished run" if total == 1 else "finished runs"
    return f"{share}% of {format_count(total)} {runs} succeeded in the last 7 days."


def _counts(stats: DashboardStats) -> None:
    ui.label("All runs so far, by outcome").classes("text-subtitle1 font-medium").props(
        'data-testid="counts-period"'
    )
    # 2 per row on a phone, 4 (then 3) on a tablet or a laptop with the drawer, 7 from 1280 px on.
    grid = ui.element("div").classes("w-full grid grid-cols-2 sm:grid-cols-4 xl:grid-cols-7 gap-3")
    with grid.props('data-testid="status-counts"'):
        for status in ExecutionStatus:
            _count_card(status, stats.counts.get(status.value, 0))


def _recent(stats: DashboardStats) -> None:
    runs_table(run_rows(stats.recent))


@dataclass(frozen=True)
class Notes:
    """What the notes above the figures say: `no_runs` (nothing has run yet: first steps, for
    someone who `may_edit` scripts or not), the default `runner` of this user's new run
    ("docker", "local": not isolated, None: none available) and, when the local runner is
    enabled but not for their role, why (`refusal`)."""

    no_runs: bool
    may_edit: bool
    runner: str | None
    refusal: str | None = None
    no_runner: str = ""  # what to do when no runner is available (services/executions.py)
    may_configure: bool = False  # may open Settings (and enable the local runner there)


def _notes(notes: Notes) -> None:
    if notes.no_runs:
        _first_steps(notes.may_edit)
    if notes.runner == "local":
        banner(
            "warning",
            "orange",
            "Docker is not available: new runs use the local runner, which is not isolated "
            "(plain processes on this server).",
            "not-isolated",
        )
    elif notes.runner is None and notes.refusal is not None:
        # Enabled, but not for this role: "have an admin enable it" would send them after a
        # setting that is already on.
        text = f"No runner is available to you: Docker is not reachable, and {notes.refusal}."
        banner("error", "red", text, "no-runner")
    elif notes.runner is None:
        text = f"{sentence(notes.no_runner)} New runs cannot start until then."
        with banner("error", "red", text, "no-runner"):
            if notes.may_configure:
                ui.link("Open Settings", "/settings").classes("ml-auto shrink-0 font-medium").props(
                    'data-testid="no-runner-settings"'
                )


def _first_steps(may_edit: bool) -> None:
    """The empty state: nothing has run yet, so say what to do first."""
    with ui.card().classes("w-full items-center p-6 gap-2").props('flat bordered data-testid="no-runs-yet"'):
        ui.icon("rocket_launch", color="primary").classes("text-5xl").props('aria-hidden="true"')
        ui.label("No runs yet").classes("text-xl font-medium")
        if may_edit:
            ui.label("Write a script, activate it, then run it: its output streams here live.").classes(
                "text-grey-8"
            )
            ui.button("Create a script", icon="add", on_click=lambda: ui.navigate.to("/scripts/new")).props(
                'unelevated data-testid="dashboard-create-script"'
            )
        else:
            ui.label("Open the scripts and run an active one.").classes("text-grey-8")
            ui.button(
                "Browse scripts", icon="description", on_click=lambda: ui.navigate.to("/scripts")
            ).props('unelevated data-testid="dashboard-browse-scripts"')


class Dashboard:
    """The dashboard's sections; `refresh` redraws from fresh figures every few seconds those
    whose figures changed: the notes too (the first steps go once something has run, the runner
    warning comes and goes with Docker), not only the counts, runs and chart."""

    def __init__(self, actor: Actor) -> None:
        self.actor = actor
        self.notes: Redrawn[Notes] | None = None
        self.counts: Redrawn[DashboardStats] | None = None
        self.running: Redrawn[DashboardStats] | None = None
        self.recent: Redrawn[DashboardStats] | None = None
        self.chart: ui.echart | None = None
        self.summary: ui.label | None = None
        self.daily: list[DailyRate] = []

    async def _stats(self) -> DashboardStats | None:
        try:
            return await call(executions.dashboard_stats, self.actor, running=RUNNING_SHOWN)
        except ServiceError as exc:
            notify_error(exc.message)
            return None

    async def _read_notes(self, stats: DashboardStats) -> Notes:
        options = await call(executions.runner_options, self.actor.user)
        may_edit = can(self.actor.user, Permission.edit_scripts)
        no_runs = not any(stats.counts.values())
        user = self.actor.user
        may_configure = can(user, Permission.manage_settings)
        no_runner = executions.no_runner(user)
        return Notes(no_runs, may_edit, options.default, options.local_refusal, no_runner, may_configure)

    async def render(self) -> None:
        """Draw the dashboard (notes, counts, 7-day success chart, running and recent runs) and start its
        live refresh.
        """
        stats = await self._stats()
        if stats is None:
            return
        self.notes = Redrawn(_notes, await self._read_notes(stats))
        self.counts = Redrawn(_counts, stats, lambda shown: shown.counts)
        with ui.row().classes("w-full gap-4 items-stretch"):
            with ui.card().classes("flex-[2] min-w-80").props('flat bordered data-testid="success-chart"'):
                ui.label("Success rate, last 7 days (UTC days)").classes("text-subtitle1 font-medium")
                self.summary = ui.label(_success_summary(stats.daily)).classes("text-grey-7 text-sm")
                self.summary.props('data-testid="success-summary"')
                self.chart = ui.echart(_chart_options(stats.daily)).classes("w-full h-72")
                self.daily = stats.daily
            with ui.column().classes("flex-1 min-w-72"):
                self.running = Redrawn(_running_now, stats, _running_key)
        with ui.row().classes("w-full items-center justify-between"):
            ui.label("Recent executions").classes("text-subtitle1 font-medium")
            ui.link("Full history", "/executions").classes("text-sm")
        self.recent = Redrawn(_recent, stats, lambda shown: run_rows(shown.recent))
        live_timer(live_seconds(), self.refresh)

    async def refresh(self) -> None:
        """Re-read the statistics (re-checking the session) and redraw only the regions that changed."""
        actor = await guard()
        if actor is None:
            return
        self.actor = actor
        stats = await self._stats()
        if stats is None:
            return
        if self.notes is not None:
            self.notes.show(await self._read_notes(stats))
        for region in (self.counts, self.running, self.recent):
            if region is not None:
                region.show(stats)
        if self.chart is not None and self.summary is not None and stats.daily != self.daily:
            self.daily = stats.daily
            self.chart.options.update(_chart_options(stats.daily))
            self.chart.update()
            self.summary.set_text(_success_summary(stats.daily))


@protected_page("/", title="Dashboard")
async def dashboard(actor: Actor) -> None:
    """Page / (any signed-in user): the dashboard."""
    with frame(actor, "Dashboard"):
        assert actor.user is not None
        name = actor.user.full_name or actor.user.username
        ui.label(f"Welcome, {name}.").classes("text-grey-8 -mt-3 oc-wrap").props('data-testid="welcome"')
        await Dashboard(actor).render()
