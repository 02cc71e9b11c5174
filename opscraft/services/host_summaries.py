"""A finished Ansible run's per-host summary (ok, changed, unreachable, failed, skipped, rescued,
ignored per host), read from the PLAY RECAP ansible-playbook printed last by the worker
(`execution.ansible_recap`, which says which recap counts) and stored with the run's final state.
"""

from __future__ import annotations

from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db import stored_shapes
from opscraft.db.models import Execution, ExecutionHostSummary
from opscraft.services.actor import Actor
from opscraft.services.permissions import Permission, require


async def of_run(session: AsyncSession, actor: Actor, execution: Execution) -> ExecutionHostSummary | None:
    """The per-host summary of `execution` (needs view_scripts, as the run itself); None for a
    run of another type, one not finished, and an Ansible run finished before summaries were kept
    (or whose worker never started ansible-playbook: its `error_message` says why)."""
    require(actor.user, Permission.view_scripts)
    if execution.script_type != "ansible" or execution.id is None:
        return None
    return await session.get(ExecutionHostSummary, execution.id)


def note_of(summary: ExecutionHostSummary) -> str | None:
    """Why `summary` lists no host: the worker's `note` (the run stopped before its recap...), or
    what the stored row holds that cannot be read (`stored_shapes.note`: a row edited by hand,
    read as no host); None when it is a summary to show."""
    return summary.note or stored_shapes.note(summary)
