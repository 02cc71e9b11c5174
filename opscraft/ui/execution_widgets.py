"""Small pieces shared by the execution pages: status badges, times, durations, the runs table."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any, NamedTuple, TypeVar

from nicegui import ui

from opscraft.db.models import Execution
from opscraft.db.models.executions import ExecutionStatus, Trigger
from opscraft.db.types import utcnow
from opscraft.services.invisible import visible
from opscraft.ui.widgets import (
    IDENTIFIER,
    NARROW_HIDDEN,
    PHONE_HIDDEN,
    WRAPPED,
    data_table,
    format_time,
    joined,
)

T = TypeVar("T")


class StatusStyle(NamedTuple):
    """How a run's status is drawn: Quasar palette names of the badge and its text, an icon."""

    color: str
    icon: str
    # White on amber is 2:1; black on it 10:1 (WCAG AA asks 4.5:1, axe-core's `color-contrast`).
    text: str = "white"


STATUS_STYLE: dict[str, StatusStyle] = {
    ExecutionStatus.queued: StatusStyle("blue-grey-7", "schedule"),
    ExecutionStatus.running: StatusStyle("primary", "autorenew"),
    ExecutionStatus.success: StatusStyle("positive", "check_circle"),
    ExecutionStatus.failed: StatusStyle("negative", "cancel"),
    ExecutionStatus.cancelled: StatusStyle("grey-8", "block"),
    ExecutionStatus.timed_out: StatusStyle("deep-orange-10", "timer_off"),
    ExecutionStatus.error: StatusStyle("purple", "error"),
    ExecutionStatus.awaiting_approval: StatusStyle("amber-9", "how_to_reg", "black"),
    ExecutionStatus.rejected: StatusStyle("brown", "do_not_disturb_on"),
}


def status_styles_js(part: str) -> str:
    """A JavaScript object literal from each status to its style's `part` ("color", "icon" or
    "text"), for table slots: `{queued: 'blue-grey-7', ...}`."""
    pairs = (f"{status}: '{getattr(style, part)}'" for status, style in STATUS_STYLE.items())
    return "{" + ", ".join(pairs) + "}"


STATUS_LABELS: dict[str, str] = {status.value: status.value.replace("_", " ") for status in ExecutionStatus}


def status_badge(status: str) -> ui.badge:
    """A badge with the icon, colour and label of a run status (unknown statuses in grey)."""
    color, icon, text = STATUS_STYLE.get(status, StatusStyle("grey-8", "help"))
    with ui.badge(color=color, text_color=text).classes("px-2 py-1 text-sm gap-1 items-center") as badge:
        ui.icon(icon).classes("text-sm" + (" animate-spin" if status == ExecutionStatus.running else ""))
        ui.label(STATUS_LABELS.get(status, status))
    return badge.props(f'data-testid="status-{status}"')


def banner(icon: str, color: str, text: str, testid: str = "") -> ui.row:
    """A full-width coloured note (`color` is a Quasar palette name such as "orange" or "red").

    The text is near-black on the pale background: `orange-10` on `orange-1` is only 3.45:1,
    below WCAG's 4.5:1 for body text (axe-core's `color-contrast`)."""
    row = ui.row().classes(f"w-full items-center gap-2 no-wrap rounded bg-{color}-1 text-grey-10 p-3")
    with row.props(f'data-testid="{testid}"' if testid else ""):
        ui.icon(icon, color=f"{color}-9")
        ui.label(text)
    return row


def sentence(text: str) -> str:
    """A service's lower-case message (an API `detail`) as a sentence on a page: capitalised, with
    a full stop."""
    return f"{text[:1].upper()}{text[1:]}."


# A names-and-values grid's columns: the names' column at most 40% of the width (a parameter
# name may be 64 characters without a break; as `auto` it widened a run's page on a phone to
# 576 px), the values the rest, both able to shrink below their longest word (each label breaks
# anywhere: `break-all`).
NAME_VALUE_COLUMNS = "fit-content(40%) minmax(0, 1fr)"


def name_value_grid(classes: str = "") -> ui.grid:
    """A two-column grid of names and values (labels classed `break-all`) that stays within its
    container's width however long a name or value (see `NAME_VALUE_COLUMNS`). It spans that
    width: sized to its text, its names' 40% was of the text's own width, and short names and
    values broke mid-word ("REGIO" over "N", "e" over "u")."""
    return ui.grid(columns=NAME_VALUE_COLUMNS).classes(f"w-full gap-x-6 gap-y-1 {classes}".strip())


def parameter_text(value: Any) -> str:
    """A parameter's value (a run's, a script's default) as the API writes it: text with its
    invisible characters shown (`<U+200B>`), anything else as JSON (`false`, `0.5`), never as
    Python writes it (`False`)."""
    return visible(value) if isinstance(value, str) else json.dumps(value)


def format_duration(seconds: float | None) -> str:
    """A duration in seconds as text: `4.2 s` under 10 s, `42 s`, `3 min 07 s`, `2 h 05 min`; an em dash for
    None.
    """
    if seconds is None:
        return "—"
    whole = int(seconds)
    if whole < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def elapsed(execution: Execution) -> float | None:
    """Seconds the run took, or has taken so far while it is running."""
    if execution.started_at is None:
        return None
    end = execution.finished_at or utcnow()
    return max((end - execution.started_at) / timedelta(seconds=1), 0.0)


# How a run started (`Execution.trigger`), in words: the history's column and filter, the run page.
TRIGGER_LABELS: dict[str, str] = {
    Trigger.ui: "web UI",
    Trigger.api: "API",
    Trigger.api_token: "API token",
    Trigger.schedule: "schedule",
    Trigger.webhook: "webhook",
    Trigger.retry: "retry",
    Trigger.chain: "then run",
}
RUN_COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "label": "#", "field": "id", "align": "left"},
    {"name": "script", "label": "Script", "field": "script", "align": "left", **WRAPPED},
    {"name": "version", "label": "Version", "field": "version", "align": "left", **NARROW_HIDDEN},
    {"name": "status", "label": "Status", "field": "status", "align": "left"},
    {
        "name": "user",
        "label": "Triggered by",
        "field": "user",
        "align": "left",
        **joined(NARROW_HIDDEN, IDENTIFIER),
    },
    {"name": "trigger", "label": "Trigger", "field": "trigger", "align": "left", **NARROW_HIDDEN},
    {"name": "runner", "label": "Runner", "field": "runner", "align": "left", **NARROW_HIDDEN},
    {"name": "queued", "label": "Queued", "field": "queued", "align": "left", **PHONE_HIDDEN},
    {"name": "duration", "label": "Duration", "field": "duration", "align": "right", **PHONE_HIDDEN},
]

_STATUS_SLOT = "".join(
    f"""<q-badge v-{"if" if i == 0 else "else-if"}="props.value === '{status}'" color="{color}"
        text-color="{text}" class="px-2 py-1 gap-1" data-testid="row-status-{status}">
        <q-icon name="{icon}" size="14px" class="q-mr-xs"/>{STATUS_LABELS[status]}</q-badge>"""
    for i, (status, (color, icon, text)) in enumerate(STATUS_STYLE.items())
) + (
    '<div v-if="props.row.cancelled_by" class="text-caption text-grey-8"'
    " :data-testid=\"'row-cancelled-by-' + props.row.id\">by {{ props.row.cancelled_by }}</div>"
)


def run_version(run: Execution) -> str:
    """`v3`, or for a test run of unsaved content `test run (unsaved, from v3)`: the marker every
    list of runs shows (README: test runs are marked everywhere)."""
    if run.draft:
        return f"test run (unsaved, from v{run.script_version})"
    return f"v{run.script_version}"


def run_title(run: Execution) -> str:
    """`deploy · v3`, or for a test run of unsaved content `deploy · test run (unsaved, from v3)`."""
    return f"{run.script_name} · {run_version(run)}"


def trigger_label(run: Execution) -> str:
    """How the run started, in words, with the system actor that started it: `web UI`,
    `schedule (schedule:3)`, `then run (execution:12)`."""
    label = TRIGGER_LABELS.get(run.trigger, run.trigger)
    return f"{label} ({run.trigger_ref})" if run.trigger_ref else label


def run_rows(rows: list[Execution]) -> list[dict[str, Any]]:
    """Table rows (dicts of display text keyed by column) of runs, for the run tables."""
    return [
        {
            "id": row.id,
            "script": run_title(row),
            "version": run_version(row),
            "status": row.status,
            "cancelled_by": row.cancelled_by_name if row.status == ExecutionStatus.cancelled else None,
            "user": row.triggered_by_name or "—",
            "trigger": trigger_label(row),
            "runner": row.runner or "—",
            "queued": format_time(row.queued_at, "—"),
            "duration": format_duration(elapsed(row)),
        }
        for row in rows
    ]


def runs_table(rows: list[dict[str, Any]], *, hide_script: bool = False) -> ui.table:
    """A table of runs; each row links to its execution page. The script column names the
    script and version; with `hide_script` (one script's runs) a version column replaces it."""
    hidden = "script" if hide_script else "version"
    columns = [c for c in RUN_COLUMNS if c["name"] != hidden]
    table = data_table(columns, rows, "id", "Runs")
    table.props('flat bordered hide-bottom data-testid="runs-table"')
    table.add_slot("body-cell-status", f'<q-td :props="props">{_STATUS_SLOT}</q-td>')
    table.add_slot(
        "body-cell-id",
        '<q-td :props="props"><a :href="\'/executions/\' + props.value" @click.stop'
        ' class="text-primary font-medium"'
        " :data-testid=\"'run-link-' + props.value\">#{{ props.value }}</a></q-td>",
    )
    table.on("row-click", lambda e: ui.navigate.to(f"/executions/{e.args[1]['id']}"))
    table.classes("cursor-pointer")
    return table
