"""`/api/v1/workers`: the execution workers of the installation (admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from opscraft.api.deps import CurrentActor, Session
from opscraft.api.schemas import AUTHED, Limit, Page, Skip, error_responses
from opscraft.services import workers

router = APIRouter(prefix="/api/v1/workers", tags=["workers"])


class WorkerOut(BaseModel):
    """A worker process as the API shows it: its runners and slots, its liveness state from heartbeats, and
    why it takes no runs (queue or Docker error), if so.
    """

    id: str
    host_name: str
    pid: int
    runners: list[str]
    slots: int
    running: int
    free_slots: int
    state: Literal["alive", "late", "lost", "stopped"] = Field(
        description="alive: heartbeat within OPSCRAFT_WORKER_LOST_SECONDS; late: none since, not yet "
        "declared lost; lost: declared lost (its running runs ended as errors); stopped: stopped cleanly"
    )
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    queue_error: str | None = Field(
        description="Why this alive worker takes no runs: its last read of the job queue failed "
        "(Redis stopped or not answering); it then offers no runners and no free slots. None while it can"
    )
    docker_error: str | None = Field(
        default=None,
        description="Why this alive worker's Docker engine does not answer (it then does not offer "
        "`docker`) or its warm containers cannot be created (runs start cold), as of its last "
        "heartbeat. None while they can",
    )
    silent_seconds: int | None = Field(
        default=None,
        description="How long this alive or late worker has sent no heartbeat, once that is over two "
        "heartbeat periods (killed, frozen or overloaded: it stays alive until "
        "OPSCRAFT_WORKER_LOST_SECONDS, then late until a live process declares it lost). None "
        "while it heartbeats, and once it is lost or stopped",
    )

    model_config = {"from_attributes": True}


@router.get(
    "",
    response_model=Page[WorkerOut],
    summary="List execution workers (alive first)",
    responses=error_responses(*AUTHED),
)
async def list_workers(
    session: Session, actor: CurrentActor, skip: Skip = 0, limit: Limit = 50
) -> Page[WorkerOut]:
    """Admin only (view_system). A page (`{items, total, skip, limit}`, `limit` at most 500) of
    the execution workers that registered, alive first, then by last heartbeat (newest first), each
    with its runners, slots and running count. `late`: no heartbeat within `OPSCRAFT_WORKER_LOST_SECONDS`,
    not yet declared lost; `lost`: declared lost by another process (its running runs ended as
    errors); `stopped`: stopped cleanly (SIGTERM)."""
    rows, total = await workers.list_workers(session, actor, skip=skip, limit=limit)
    return Page(items=[WorkerOut.model_validate(w) for w in rows], total=total, skip=skip, limit=limit)
