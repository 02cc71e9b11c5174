"""The engine's database work: claim, store output, finish, recover. Runs on the engine loop."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.config import Settings
from opscraft.db.engine import Database
from opscraft.db.models import Execution, ExecutionLog, Script, ScriptVersion
from opscraft.db.models.executions import ExecutionStatus
from opscraft.db.types import utcnow
from opscraft.execution.events import LogEvent, StatusEvent
from opscraft.execution.spec import RunSpec
from opscraft.services.secrets import SecretUnavailable, inject_for_execution

RESTART_MESSAGE = "interrupted by server restart"


@dataclass(frozen=True)
class Claim:
    """A run this worker now owns (`running`); `error` set means it cannot start and must end so."""

    execution_id: int
    runner: str
    script_id: int
    started_at: datetime
    cancel_requested: bool
    spec: RunSpec | None = None
    error: str | None = None


async def claim(db: Database, settings: Settings, execution_id: int) -> Claim | None:
    """`queued -> running` in one conditional UPDATE, honouring the script's concurrency limit.

    None when the run is not (or no longer) queued, or must wait for a slot of its script (it
    stays `queued` and is enqueued again when a run of that script finishes).
    """
    async with db.session() as session:
        execution = await session.get(Execution, execution_id)
        if execution is None or execution.status != ExecutionStatus.queued:
            return None
        script = await session.get(Script, execution.script_id)
        assert script is not None
        now = utcnow()
        image = settings.image_for(execution.script_type) if execution.runner == "docker" else None
        stmt = (
            update(Execution)
            .where(col(Execution.id) == execution_id, col(Execution.status) == ExecutionStatus.queued)
            .values(status=ExecutionStatus.running, started_at=now, image=image)
        )
        if script.max_concurrent:
            # Serializes claims of this script on PostgreSQL; SQLite writes are serial anyway.
            await session.exec(select(Script.id).where(col(Script.id) == script.id).with_for_update())
            running = (
                select(func.count())
                .select_from(Execution)
                .where(
                    col(Execution.script_id) == script.id, col(Execution.status) == ExecutionStatus.running
                )
                .scalar_subquery()
            )
            stmt = stmt.where(running < script.max_concurrent)
        if (await session.exec(stmt)).rowcount != 1:
            await session.rollback()
            return None
        version = (
            await session.exec(
                select(ScriptVersion).where(
                    col(ScriptVersion.script_id) == script.id,
                    col(ScriptVersion.number) == execution.script_version,
                )
            )
        ).first()
        await session.commit()
        base = Claim(execution_id, str(execution.runner), script.id, now, execution.cancel_requested)  # type: ignore[arg-type]
        if version is None:
            return _with_error(base, f"version {execution.script_version} of the script no longer exists")
        try:
            secrets = await inject_for_execution(session, execution)
        except SecretUnavailable as exc:
            return _with_error(base, f"a secret attached to the script cannot be used: {exc}")
    return _with_spec(base, _spec(execution, version, settings, image, secrets))


def _with_error(base: Claim, message: str) -> Claim:
    return Claim(**{**base.__dict__, "error": message})


def _with_spec(base: Claim, spec: RunSpec) -> Claim:
    return Claim(**{**base.__dict__, "spec": spec})


def _spec(
    execution: Execution,
    version: ScriptVersion,
    settings: Settings,
    image: str | None,
    secrets: dict[str, str],
) -> RunSpec:
    run: dict[str, Any] = version.run_settings
    assert execution.id is not None
    return RunSpec(
        execution_id=execution.id,
        script_type=str(version.script_type),
        content=version.content,
        parameters=dict(execution.parameters),
        env=secrets,
        timeout_seconds=min(int(run.get("timeout_seconds", 3600)), settings.max_timeout_seconds),
        memory_mb=int(run.get("memory_mb", 512)),
        cpus=float(run.get("cpus", 0.5)),
        network_enabled=bool(run.get("network_enabled", False)),
        image=image,
        terraform_action=execution.terraform_action,
        secret_values=list(secrets.values()),
    )


async def store_logs(db: Database, execution_id: int, events: list[LogEvent], output_bytes: int) -> None:
    """Append a batch of output chunks and the running byte count, in one transaction."""
    async with db.session() as session:
        await session.exec(
            insert(ExecutionLog),
            params=[
                {"execution_id": execution_id, "seq": e.seq, "stream": e.stream, "content": e.content}
                for e in events
            ],
        )
        await session.exec(
            update(Execution).where(col(Execution.id) == execution_id).values(output_bytes=output_bytes)
        )
        await session.commit()


@dataclass(frozen=True)
class Finish:
    status: ExecutionStatus
    exit_code: int | None = None
    error_message: str | None = None
    output_bytes: int = 0
    output_truncated: bool = False


async def finish(db: Database, execution_id: int, result: Finish) -> tuple[StatusEvent, int | None]:
    """Write the final state once; returns the final event and a waiting run of the same script
    that a concurrency limit held back (to enqueue again), if any."""
    now = utcnow()
    async with db.session() as session:
        await session.exec(
            update(Execution)
            .where(col(Execution.id) == execution_id, col(Execution.status) == ExecutionStatus.running)
            .values(
                status=result.status,
                exit_code=result.exit_code,
                error_message=result.error_message,
                output_bytes=result.output_bytes,
                output_truncated=result.output_truncated,
                finished_at=now,
            )
        )
        await session.commit()
        execution = await session.get(Execution, execution_id)
        assert execution is not None
        waiting = await _next_waiting(session, execution.script_id)
    event = StatusEvent(
        status=execution.status,
        final=True,
        exit_code=execution.exit_code,
        error_message=execution.error_message,
        started_at=execution.started_at,
        finished_at=execution.finished_at,
    )
    return event, waiting


async def _next_waiting(session: AsyncSession, script_id: int) -> int | None:
    script = await session.get(Script, script_id)
    if script is None or not script.max_concurrent:
        return None
    return (
        await session.exec(
            select(Execution.id)
            .where(col(Execution.script_id) == script_id, col(Execution.status) == ExecutionStatus.queued)
            .order_by(col(Execution.queued_at), col(Execution.id))
            .limit(1)
        )
    ).first()


async def recover(db: Database) -> tuple[int, list[int]]:
    """After a crash: `running` -> `error` (output kept); returns that count and the queued ids."""
    async with db.session() as session:
        interrupted = await session.exec(
            update(Execution)
            .where(col(Execution.status) == ExecutionStatus.running)
            .values(status=ExecutionStatus.error, error_message=RESTART_MESSAGE, finished_at=utcnow())
        )
        await session.commit()
        queued = await session.exec(
            select(Execution.id)
            .where(col(Execution.status) == ExecutionStatus.queued)
            .order_by(col(Execution.queued_at), col(Execution.id))
        )
        return int(interrupted.rowcount), [int(i) for i in queued.all() if i is not None]
