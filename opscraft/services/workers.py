"""The execution workers as the installation sees them: the Workers panel, `GET /api/v1/workers`,
the health check's counts and the metrics' gauges. Read from the `workers` and `executions`
tables, so every web process gives the same answer."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import BindParameter, ColumnElement, and_, bindparam, case, func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession
from sqlmodel.sql.expression import Select

from opscraft import runtime
from opscraft.db import clock
from opscraft.db.engine import Database
from opscraft.db.models import Execution, RegisteredWorker
from opscraft.db.models.executions import ExecutionStatus
from opscraft.db.types import GT, compared
from opscraft.execution import liveness
from opscraft.services import paging
from opscraft.services.actor import Actor
from opscraft.services.permissions import Permission, require

HISTORY_LIMIT = 200


@dataclass(frozen=True)
class WorkerStatus:
    """One worker: identity, what it offers, whether it is alive, and its load.

    `state` is `alive` (heartbeat within OPSCRAFT_WORKER_LOST_SECONDS), `stopped` (stopped
    cleanly), `lost` (declared lost by another process: no heartbeat for that long, its running
    runs ended as errors) or `late` (no recent heartbeat, not yet declared lost);
    `running` is its runs in progress and `free_slots` = slots - running (0 unless alive and
    able to read the job queue); `queue_error` says why its consumers cannot take jobs (its last
    read of the job queue failed: Redis stopped or not answering), None while they can;
    `docker_error` why its Docker engine does not answer or its warm containers cannot be created
    (as of its last heartbeat; its `docker` runner is then not offered or runs start cold), None
    while they can; `silent_seconds` how long an `alive` or `late` worker has sent no heartbeat,
    once that is longer than the cancel grace (`liveness.cancel_grace_seconds`: two heartbeat
    periods; a SIGKILLed or frozen worker stays `alive` for OPSCRAFT_WORKER_LOST_SECONDS, then
    `late` until it is declared lost), None otherwise.
    """

    id: str
    host_name: str
    pid: int
    runners: list[str]
    slots: int
    running: int
    free_slots: int
    state: str
    started_at: datetime
    heartbeat_at: datetime
    stopped_at: datetime | None
    queue_error: str | None
    docker_error: str | None = None
    silent_seconds: int | None = None


def _stale_before() -> datetime:
    """Heartbeats before this are stale (in the database's clock, as they are written: `db.clock`)."""
    return clock.now() - timedelta(seconds=runtime.current().settings.worker_lost_seconds)


def alive(stale_before: datetime | BindParameter[datetime] | None = None) -> ColumnElement[bool]:
    """The condition on `workers` rows of the live workers: they heartbeated within
    OPSCRAFT_WORKER_LOST_SECONDS (after `stale_before`, default now minus that; a bind parameter
    for a statement built once) and did not stop."""
    return and_(
        col(RegisteredWorker.stopped_at).is_(None),
        compared(
            col(RegisteredWorker.heartbeat_at), GT, _stale_before() if stale_before is None else stale_before
        ),
    )


async def _running(session: AsyncSession) -> dict[str, int]:
    """Worker id -> its runs in progress."""
    rows = await session.exec(
        select(Execution.worker_id, func.count())
        .where(col(Execution.status) == ExecutionStatus.running)
        .group_by(col(Execution.worker_id))
    )
    return {str(worker_id): int(count) for worker_id, count in rows.all() if worker_id}


def _silent(worker: RegisteredWorker, state: str) -> int | None:
    """`WorkerStatus.silent_seconds` of `worker` in `state`."""
    silent = (clock.now() - worker.heartbeat_at).total_seconds()
    grace = liveness.cancel_grace_seconds(runtime.current().settings)
    return round(silent) if state in ("alive", "late") and silent > grace else None


def _status(worker: RegisteredWorker, running: dict[str, int], stale: datetime) -> WorkerStatus:
    """`worker` as the lists show it, its heartbeat judged against `stale` (`_stale_before`)."""
    if worker.stopped_at is not None:
        state = "lost" if worker.lost else "stopped"
    elif worker.heartbeat_at > stale:
        state = "alive"
    else:
        state = "late"
    busy = running.get(worker.id, 0)
    return WorkerStatus(
        id=worker.id,
        host_name=worker.host_name,
        pid=worker.pid,
        runners=list(worker.runners),
        slots=worker.slots,
        running=busy,
        free_slots=max(worker.slots - busy, 0) if state == "alive" and not worker.queue_error else 0,
        state=state,
        started_at=worker.started_at,
        heartbeat_at=worker.heartbeat_at,
        stopped_at=worker.stopped_at,
        queue_error=worker.queue_error if state == "alive" else None,
        docker_error=(worker.warm_pool or {}).get("error") if state == "alive" else None,
        silent_seconds=_silent(worker, state),
    )


async def statuses(session: AsyncSession) -> list[WorkerStatus]:
    """The `HISTORY_LIMIT` workers that heartbeated last (alive ones first), without a permission
    check: for callers that checked already (metrics)."""
    stale = _stale_before()
    running = await _running(session)
    rows = await session.exec(
        select(RegisteredWorker).order_by(col(RegisteredWorker.heartbeat_at).desc()).limit(HISTORY_LIMIT)
    )
    out = [_status(worker, running, stale) for worker in rows.all()]
    out.sort(key=lambda w: w.state != "alive")
    return out


async def list_workers(
    session: AsyncSession, actor: Actor, *, skip: int = 0, limit: int = paging.DEFAULT_PAGE
) -> tuple[list[WorkerStatus], int]:
    """A page (`paging.page`) of every registered worker, alive ones first, then by last
    heartbeat (newest first, ties by id), and how many there are: the Workers panel and `GET
    /api/v1/workers` (admins: `Permission.view_system`)."""
    require(actor.user, Permission.view_system)
    stale = _stale_before()
    live = and_(
        col(RegisteredWorker.stopped_at).is_(None), compared(col(RegisteredWorker.heartbeat_at), GT, stale)
    )
    query = select(RegisteredWorker).order_by(
        case((live, 0), else_=1), col(RegisteredWorker.heartbeat_at).desc(), col(RegisteredWorker.id)
    )
    rows, total = await paging.page(session, query, skip, limit)
    running = await _running(session)
    return [_status(worker, running, stale) for worker in rows], total


@functools.cache
def _health_statement() -> Select[tuple[int, int]]:
    """One row (alive workers, queued runs) for the `stale_before` bind parameter: built once
    (about a third of a health check's CPU when built per call)."""
    stale_before = bindparam("stale_before", type_=RegisteredWorker.__table__.c.heartbeat_at.type)
    live = select(func.count()).select_from(RegisteredWorker).where(alive(stale_before)).scalar_subquery()
    queued = (
        select(func.count())
        .select_from(Execution)
        .where(col(Execution.status) == ExecutionStatus.queued)
        .scalar_subquery()
    )
    return select(live, queued)


async def health_counts(db: Database) -> tuple[int, int] | None:
    """(alive workers, queued runs) for the health check, two indexed counts read in one round
    trip that also shows the database answers; None when it does not (`Database.read_row`)."""
    row = await db.read_row(_health_statement(), {"stale_before": _stale_before()})
    return None if row is None else (int(row[0]), int(row[1]))


async def cancel_waiting(session: AsyncSession, execution: Execution) -> str | None:
    """Why a cancel of `execution` has not landed yet, when its worker is not answering: the run
    is `running`, its cancel was requested, and its worker sent no heartbeat for the cancel grace
    (`liveness.cancel_grace_seconds`: two heartbeat periods). None otherwise (a live worker kills
    the run within two seconds). The words say when it will end: once a worker on that machine
    finds the process gone, when it answers again, or at the latest when it is declared lost
    (OPSCRAFT_WORKER_LOST_SECONDS)."""
    worker_id = execution.worker_id
    if execution.status != ExecutionStatus.running or not execution.cancel_requested or not worker_id:
        return None
    read = select(RegisteredWorker.heartbeat_at).where(RegisteredWorker.id == worker_id)
    heartbeat = (await session.exec(read)).first()
    settings = runtime.current().settings
    silent = (clock.now() - heartbeat).total_seconds() if heartbeat is not None else None
    if silent is not None and silent < liveness.cancel_grace_seconds(settings):
        return None
    since = f"for {round(silent)} s" if silent is not None else "at all"
    return (
        f"Cancel pending: worker {worker_id} has not answered {since}. The run ends "
        "cancelled as soon as a worker on its machine finds its process gone or it answers again, "
        f"and at the latest when it is declared lost ({settings.worker_lost_seconds:g} s without a "
        "heartbeat)."
    )
