"""What admins see of the warm container pools: per live worker, as of its last heartbeat."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db.models import RegisteredWorker
from opscraft.services import paging, workers
from opscraft.services.actor import Actor
from opscraft.services.permissions import Permission, require


@dataclass(frozen=True)
class WorkerPool:
    """One worker's pool: `size` per profile (0: disabled), at most `burst` per profile while
    its runs take them faster than they are created, containers `warm` now, runs started warm
    and cold since the worker started, and per profile (image, memory_mb, cpus,
    network_enabled, user) how many are warm and its `target` now (`size`, more under demand);
    `error`: why its Docker engine does not answer or creating containers fails, None while
    they work."""

    worker_id: str
    host_name: str
    heartbeat_at: datetime
    size: int = 0
    burst: int = 0
    warm: int = 0
    warm_starts: int = 0
    cold_starts: int = 0
    profiles: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


async def list_pools(
    session: AsyncSession, actor: Actor, skip: int = 0, limit: int = paging.DEFAULT_PAGE
) -> tuple[list[WorkerPool], int]:
    """A page of the pools of the live workers (`workers.alive`), by worker id, and how many live
    workers there are (admin: `manage_settings`): a page like every list (`services/paging.py`).
    Raises `Unauthorized` / `Forbidden`, `Invalid` for bounds `paging.check` refuses."""
    require(actor.user, Permission.manage_settings)
    query = select(RegisteredWorker).where(workers.alive()).order_by(col(RegisteredWorker.id))
    rows, total = await paging.page(session, query, skip, limit)
    keys = ("size", "burst", "warm", "warm_starts", "cold_starts", "profiles", "error")
    pools = [
        WorkerPool(
            row.id,
            row.host_name,
            row.heartbeat_at,
            **{key: value for key, value in (row.warm_pool or {}).items() if key in keys},
        )
        for row in rows
    ]
    return pools, total
