"""`/api/v1/health`: liveness of the process, the database and Redis, with the number of live
workers and the queue depth (two indexed counts, skipped while the database is down)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from opscraft import __version__, runtime
from opscraft.services import redis_state, workers

router = APIRouter(prefix="/api/v1", tags=["health"])


class HealthOut(BaseModel):
    """Subsystems started later (execution engine, ...) add their own keys."""

    model_config = ConfigDict(extra="allow")

    status: Literal["healthy", "unhealthy"]
    database: Literal["connected", "disconnected"]
    database_backend: Literal["sqlite", "postgresql"]
    redis: Literal["connected", "disconnected", "not configured"]
    version: str
    workers: int | None = None
    queue: int | None = None


async def _redis_status(url: str | None) -> str:
    if not url:
        return "not configured"
    return "connected" if await redis_state.answers(url) else "disconnected"


@router.get(
    "/health",
    summary="Health check",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "Database (or configured Redis) unreachable"}},
)
async def health() -> JSONResponse:
    """No login; any query string is ignored (a probe may add a cache-buster). 200 with
    `status: healthy` when the database answers and Redis, if configured, too (within
    `redis_state.ANSWER_SECONDS`: a frozen Redis holds no probe); else 503 with the same body
    and `status: unhealthy`. `workers` (live execution workers) and `queue` (runs
    waiting) are null while the database is down. `HEAD` answers the same status without a body."""
    rt = runtime.current()
    counts = await workers.health_counts(rt.db)
    database = "connected" if counts is not None else "disconnected"
    alive, queued = counts or (None, None)
    redis_said = await _redis_status(rt.settings.redis_url)
    healthy = database == "connected" and redis_said != "disconnected"
    body = {
        "status": "healthy" if healthy else "unhealthy",
        "database": database,
        "database_backend": "sqlite" if rt.settings.is_sqlite else "postgresql",
        "redis": redis_said,
        "version": __version__,
        "workers": alive,
        "queue": queued,
    }
    return JSONResponse(body, status_code=200 if healthy else 503)
