"""The audit trail's run-event subscriber: every run's end becomes an `execution.finished` event.

Registered on the run event dispatcher by `lifecycle.start`; it writes inside the delivery's
transaction, so each run's end is audited exactly once, whichever process delivers it.
"""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.execution.run_events import RunEventMessage
from opscraft.services import audit
from opscraft.services.actor import Actor

SUBSCRIBER = "audit"
ACTION = "execution.finished"


async def record_finished(session: AsyncSession, events: list[RunEventMessage]) -> None:
    """Add one audit event per run event (actor "system"; the run's status and how it started),
    all in one statement."""
    await audit.record_all(session, [_finished(event) for event in events])


def _finished(event: RunEventMessage) -> dict[str, Any]:
    details = event.details
    return audit.columns(
        Actor(None),
        ACTION,
        "execution",
        event.execution_id,
        actor_name="system",
        status=event.status,
        exit_code=details.get("exit_code"),
        script_id=details.get("script_id"),
        trigger=details.get("trigger"),
        triggered_by=details.get("triggered_by"),
        worker_id=details.get("worker_id"),
    )
