"""The Workers panel (admin): every execution worker, alive first, refreshed every few seconds."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from opscraft import runtime
from opscraft.services import workers
from opscraft.services.actor import Actor
from opscraft.services.permissions import Permission
from opscraft.ui.layout import frame, guard, protected_page
from opscraft.ui.widgets import IDENTIFIER, NARROW_HIDDEN, data_table, joined, live_timer

REFRESH_SECONDS = 3.0
# Workers the table shows at most: the alive ones, then those that heartbeated last.
SHOWN = workers.HISTORY_LIMIT
COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "label": "Worker", "field": "id", "align": "left"},
    {"name": "state", "label": "State", "field": "state", "align": "left"},
    {
        "name": "host",
        "label": "Host (pid)",
        "field": "host",
        "align": "left",
        **joined(NARROW_HIDDEN, IDENTIFIER),
    },
    {"name": "runners", "label": "Runners", "field": "runners", "align": "left", **NARROW_HIDDEN},
    {"name": "load", "label": "Running / slots", "field": "load", "align": "right"},
    {
        "name": "heartbeat",
        "label": "Last heartbeat (UTC)",
        "field": "heartbeat",
        "align": "left",
        **NARROW_HIDDEN,
    },
]


def _rows(statuses: list[workers.WorkerStatus]) -> list[dict[str, Any]]:
    return [
        {
            "id": w.id,
            # An alive worker whose consumers cannot read the job queue takes no runs: say why.
            "state": ", ".join(
                [w.state]
                + ([f"takes no runs: {w.queue_error}"] if w.queue_error else [])
                # Its engine gone (stopped, restarting) or warm containers failing: say why.
                + ([f"Docker: {w.docker_error}"] if w.docker_error else [])
                # Killed or frozen: alive on paper, then late, until declared lost, but not answering.
                + ([f"not answering: no heartbeat for {w.silent_seconds} s"] if w.silent_seconds else [])
                + (["not yet declared lost"] if w.state == "late" else [])
            ),
            "host": f"{w.host_name} ({w.pid})",
            "runners": ", ".join(w.runners) or "-",
            "load": f"{w.running} / {w.slots}",
            "heartbeat": w.heartbeat_at.strftime("%Y-%m-%d %H:%M:%S"),
        }
        for w in statuses
    ]


async def _load(actor: Actor) -> list[dict[str, Any]]:
    """The table rows of the `SHOWN` workers listed first (alive ones, then the latest heartbeats)."""
    async with runtime.current().db.session() as session:
        return _rows((await workers.list_workers(session, actor, limit=SHOWN))[0])


@protected_page("/workers", Permission.view_system, title="Workers")
async def workers_page(actor: Actor) -> None:
    """Page /workers (needs view_system): the worker processes, their state and slots, refreshed live."""
    with frame(actor, "Workers"):
        ui.markdown(
            "Processes that run executions: the worker inside the web server and every worker "
            "started on its own (on this machine or another). A worker without a heartbeat for "
            f"{runtime.current().settings.worker_lost_seconds:g} seconds is "
            "declared lost and its running runs end as errors; until then one silent for over two "
            "heartbeats says `not answering` under State, and `late` once past that limit while no "
            "live process has yet watched the database for as long (all of them restarted, or came "
            "back from a database outage, since). A worker that cannot read the job "
            "queue (Redis stopped or not answering) says so under State and takes no runs until it can; "
            "so does one whose Docker engine does not answer or cannot create warm containers."
        ).classes("text-grey-7")
        table = data_table(COLUMNS, await _load(actor), "id", "Workers")
        table.props('flat bordered data-testid="workers-table"')

        async def refresh() -> None:
            # The user may have been deactivated or lost the role meanwhile.
            current = await guard(Permission.view_system, ticking=True)
            if current is not None:
                table.rows = await _load(current)

        live_timer(REFRESH_SECONDS, refresh)
