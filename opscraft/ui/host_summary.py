"""A finished Ansible run's per-host summary on its page: a small table of each host's counts
(from the PLAY RECAP, `services.host_summaries`), or why there is none.

One HTML table (escaped here), not an element per cell: a run may list 1,000 hosts. It sits in a
focusable, labelled region that scrolls sideways, its host column sticky, so it fits a 375 px
phone; a failed or unreachable count is bold (the number says it, not a colour alone). Each
host's name links to the history of its runs (those it failed on or was unreachable in, when it
was here).
"""

from __future__ import annotations

from html import escape
from typing import Any
from urllib.parse import urlencode

from nicegui import ui

from opscraft.db.models import ExecutionHostSummary
from opscraft.execution.ansible_recap import COUNTS
from opscraft.execution.masking import MASK
from opscraft.services import host_summaries
from opscraft.ui.execution_widgets import banner
from opscraft.ui.plain_words import without_internal_names

SHOWN = 100
"""Hosts drawn on the page (the failed and unreachable ones come first); the API lists up to 1,000."""
CSS = """
table.oc-hosts { border-collapse: collapse; font-size: 13px; }
table.oc-hosts th, table.oc-hosts td { padding: 2px 8px; text-align: right; white-space: nowrap; }
table.oc-hosts th[scope=row], table.oc-hosts thead th:first-child {
  text-align: left; position: sticky; left: 0; background: var(--oc-hosts-bg, inherit);
  max-width: 14rem; overflow: hidden; text-overflow: ellipsis; }
table.oc-hosts tbody tr { border-top: 1px solid rgba(127, 127, 127, 0.3); }
.oc-hosts-scroll { max-width: 100%; overflow-x: auto; --oc-hosts-bg: #fff; }
.body--dark .oc-hosts-scroll { --oc-hosts-bg: #1d1d1d; }
a.oc-host-link { color: inherit; text-decoration: underline; }
"""
BAD = ("unreachable", "failed")


def totals_text(summary: ExecutionHostSummary) -> str:
    """ "3 hosts: 6 ok, 3 changed, 0 unreachable, 1 failed, ..." and, when not all are listed,
    how many are."""
    totals = ", ".join(f"{summary.totals.get(key, 0):,} {key}" for key in COUNTS)
    text = f"{summary.host_count:,} host{'s' if summary.host_count != 1 else ''}: {totals}"
    shown = min(len(summary.hosts), SHOWN)
    if summary.host_count > shown:
        text += f" ({shown:,} shown, failed and unreachable first; the PLAY RECAP in the output has all)"
    return text


def history_address(host: dict[str, Any]) -> str:
    """The history of a listed host's runs (`/executions?host=...`), of those it failed on, or
    was unreachable in, when it did here (the history's host filter, `services.host_filter`)."""
    status = next((key for key in ("failed", "unreachable") if host[key]), None)
    query = {"host": host["host"], **({"host_status": status} if status else {})}
    return f"/executions?{urlencode(query)}"


def _linked(host: dict[str, Any], name: str) -> str:
    """The host's `name` (escaped) as a link to its history; a name the masker made `***` (a
    secret's value) stays text: it would list every such host's runs as one."""
    if MASK in host["host"]:
        return name
    return f'<a class="oc-host-link" href="{escape(history_address(host))}">{name}</a>'


def table_html(summary: ExecutionHostSummary) -> str:
    """`<table class="oc-hosts">`: one row per listed host (at most `SHOWN`), every text escaped."""
    hosts = summary.hosts[:SHOWN]
    head = "".join(f'<th scope="col">{key}</th>' for key in COUNTS)
    rows = []
    for host in hosts:
        cells = "".join(
            f"<td><b>{host[key]}</b></td>" if key in BAD and host[key] else f"<td>{host[key]}</td>"
            for key in COUNTS
        )
        name = escape(str(host["host"]))
        rows.append(f'<tr><th scope="row" title="{name}">{_linked(host, name)}</th>{cells}</tr>')
    return (
        '<table class="oc-hosts"><caption class="sr-only">Task counts per host</caption>'
        f'<thead><tr><th scope="col">host</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    )


def host_summary(summary: ExecutionHostSummary | None) -> None:
    """The run's per-host summary (nothing for None: not an Ansible run, or not finished)."""
    if summary is None:
        return
    note = host_summaries.note_of(summary)
    if note is not None:
        banner("info", "grey", f"No per-host summary: {without_internal_names(note)}.", "host-summary-note")
        return
    ui.add_css(CSS)
    with (
        ui.expansion("Hosts", icon="dns", value=True)
        .classes("w-full")
        .props('dense header-class="text-subtitle1" data-testid="host-summary"')
    ):
        ui.label(totals_text(summary)).classes("text-caption px-2").props('data-testid="host-summary-totals"')
        ui.html(table_html(summary), sanitize=False).classes("oc-hosts-scroll").props(
            'tabindex="0" role="region" aria-label="Each host\'s task counts (PLAY RECAP)" '
            'data-testid="host-summary-table"'
        )
