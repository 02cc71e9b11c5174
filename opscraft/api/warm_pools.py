"""`/api/v1/warm-pools`: the warm container pools of the live workers (admin)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel

from opscraft.api.deps import CurrentActor, Session
from opscraft.api.schemas import AUTHED, Limit, Page, Skip, error_responses
from opscraft.services import warm_pools

router = APIRouter(prefix="/api/v1/warm-pools", tags=["workers"])


class ProfileOut(BaseModel):
    """One isolation profile's warm pool on a worker: image, limits (`memory_mb` in MiB, `cpus` in cores),
    container user and counts.
    """

    image: str
    memory_mb: int
    cpus: float
    network_enabled: bool
    user: str
    warm: int
    target: int = 0  # containers kept now, warm and being created: size, more under demand


class WorkerPoolOut(BaseModel):
    """One worker's warm container pool: sizes, warm and cold start counts, its profiles and the engine's
    current error.
    """

    worker_id: str
    host_name: str
    heartbeat_at: datetime
    size: int
    burst: int = 0  # at most this many per profile while its runs take them faster than created
    warm: int
    warm_starts: int
    cold_starts: int
    profiles: list[ProfileOut]
    error: str | None = None  # why the engine does not answer or creating containers fails now


@router.get(
    "",
    response_model=Page[WorkerPoolOut],
    summary="Warm containers of each live worker (admin)",
    responses=error_responses(*AUTHED),
)
async def list_pools(
    session: Session, actor: CurrentActor, skip: Skip = 0, limit: Limit = 50
) -> Page[WorkerPoolOut]:
    """Admin only (manage_settings). A page (`{items, total, skip, limit}`, `limit` at most 500)
    of the live workers, by worker id, each as of its last heartbeat: the pool size in
    force (`OPSCRAFT_WARM_POOL_SIZE` or the `warm_pool_size` setting), `burst`, warm and cold start
    counts, per isolation profile (image, memory, CPUs, network, user) the containers warm now
    and the `target` kept, and `error`: why the Docker engine does not answer or creating
    containers fails (null while they work). Rules: docs/executions.md, *Warm containers*."""
    pools, total = await warm_pools.list_pools(session, actor, skip=skip, limit=limit)
    items = [WorkerPoolOut.model_validate(asdict(pool)) for pool in pools]
    return Page(items=items, total=total, skip=skip, limit=limit)
