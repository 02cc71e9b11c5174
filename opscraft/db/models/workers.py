"""Execution workers (one row per worker process that runs executions) and run events.

A worker registers itself in `workers` when it starts and refreshes `heartbeat_at` every few
seconds; `executions.worker_id` names the worker that claimed a run. A run's end writes one
`run_events` row in the same transaction as its final status (an outbox); the dispatcher
records each delivery to a subscriber in `run_event_deliveries`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from opscraft.db.types import UTCDateTime, utcnow


class RegisteredWorker(SQLModel, table=True):
    """A worker process: its identity, what it offers and when it last said it was alive."""

    __tablename__ = "workers"

    id: str = Field(primary_key=True, max_length=64)
    host_name: str = Field(max_length=255)
    pid: int
    # Runner names this worker can use now ("docker" while its Docker engine answers, "local").
    runners: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    slots: int
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    heartbeat_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    # Its warm containers as of the last heartbeat (`WarmPool.stats()`: size, burst, warm, warm_starts,
    # cold_starts, profiles); None before the first heartbeat.
    warm_pool: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # Set when the worker stopped cleanly or was declared lost; a live worker has none.
    stopped_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # True when another process declared it lost (no heartbeat for OPSCRAFT_WORKER_LOST_SECONDS:
    # killed, crashed, cut off) rather than it stopping cleanly; cleared when it heartbeats again.
    lost: bool = Field(default=False)
    # Why its consumers cannot take jobs as of the last heartbeat (`JobQueue.unreadable`: Redis
    # stopped or not answering); None while they can. It then offers no runners.
    queue_error: str | None = Field(default=None, max_length=500)
    # Its process's boot id and PID namespace (`execution.liveness.process_key`): a process with
    # the same key may check whether `pid` still runs. None: not known (rows before 0038).
    process_key: str | None = Field(default=None, max_length=100)


class RunEvent(SQLModel, table=True):
    """A run reached a final state (the outbox row, written with the status)."""

    __tablename__ = "run_events"

    id: int | None = Field(default=None, primary_key=True)
    execution_id: int = Field(foreign_key="executions.id", ondelete="CASCADE", index=True)
    kind: str = Field(max_length=32)
    status: str = Field(max_length=16)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class RunEventDelivery(SQLModel, table=True):
    """One subscriber has handled one event (written in the transaction of the handler's own writes)."""

    __tablename__ = "run_event_deliveries"

    event_id: int = Field(foreign_key="run_events.id", ondelete="CASCADE", primary_key=True)
    subscriber: str = Field(primary_key=True, max_length=64)
    # The process that delivered it (a worker id, or `web:<host>:<pid>`).
    delivered_by: str = Field(max_length=128)
    delivered_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


RUN_FINISHED = "execution.finished"
"""`run_events.kind` of a run that reached a final status."""

FINISHED_DETAIL_KEYS = (
    "script_id",
    "script_name",
    "exit_code",
    "error_message",
    "trigger",
    "trigger_ref",
    "triggered_by",
    "worker_id",
    "runner",
)


def finished_event(row: Mapping[str, Any]) -> dict[str, Any]:
    """The `run_events` values for a run that just ended; `row` holds the execution's `id`,
    `status`, the `FINISHED_DETAIL_KEYS` and its `started_at`/`finished_at`."""
    details = {key: row[key] for key in FINISHED_DETAIL_KEYS}
    for key in ("started_at", "finished_at"):
        details[key] = row[key].isoformat() if row[key] is not None else None
    return {
        "execution_id": row["id"],
        "kind": RUN_FINISHED,
        "status": str(row["status"]),
        "details": details,
        "created_at": utcnow(),
    }
