"""Start and stop the runtime: settings -> database (migrated) -> vault -> keys and job queue
checked -> execution (`engine_start`, imported only once the checks passed). No NiceGUI here."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

from opscraft import runtime
from opscraft.config import ConfigError, Settings
from opscraft.db import clock, unreachable
from opscraft.execution import installation
from opscraft.services import signing_key

log = logging.getLogger(__name__)


async def start(
    settings: Settings,
    *,
    migrate: bool = True,
    worker: bool | None = None,
    dispatch: bool | None = None,
    runners: frozenset[str] | None = None,
    signing: Literal["record", "require"] | None = None,
) -> runtime.Runtime:
    """Build the runtime, bring the schema up to date and install it as `runtime.current()`.

    `worker=False` (one-shot CLI commands, `serve --workers 0`) starts no execution worker in this
    process: runs are still enqueued (for workers elsewhere) and followed through the execution
    client. The default is a worker when `settings.workers` (its slots) is above 0. `runners`
    limits the runners the worker offers (`opscraft worker --runner`). `dispatch`
    (default: same as `worker`) delivers run events from this process. `signing`: `record` (a
    web process) stores SECRET_KEY's check value, `require` (an `opscraft worker`) raises
    `ConfigError` when its key is not the one recorded (`services/signing_key.py`).
    """
    run_worker = settings.workers > 0 if worker is None else worker
    dispatching = run_worker if dispatch is None else dispatch
    rt = await runtime.opened(settings, migrate=migrate)
    try:
        if signing == "record":
            await signing_key.record(rt.db, settings.secret_key or "")
        elif signing == "require":
            await signing_key.require_same(rt.db, settings)
        database_id = ""  # this database's installation id, for a process on a Redis job queue
        claimed = False  # whether this start recorded the queue's database (`claim_queue`)
        if settings.redis_url and (run_worker or dispatching):  # takes from or feeds the job queue
            database_id = await installation.database_id(rt.db)
            claimed = await asyncio.to_thread(installation.claim_queue, settings, database_id)
    except BaseException:
        await runtime.close(rt)
        raise
    runtime.install(rt)
    try:
        # Runs are queued (`Execution.queued_at`) in the database's clock from the first request
        # on; a worker's heartbeats, or a web process's lost-worker checks, measure it again.
        async with rt.db.engine.connect() as conn:
            await conn.run_sync(clock.measure)
        if run_worker or dispatching:  # one database, one job queue
            try:
                await installation.require_same_queue(rt.db, settings)
            except ConfigError:  # refused: the queue this start claimed is given back
                if claimed:
                    await asyncio.to_thread(installation.release_queue, settings, database_id)
                raise
            if settings.redis_url and signing == "record":
                await installation.record_queue(rt.db, settings)
        # Imported once the checks above passed: the worker, the job queue (Huey, redis), the run
        # events and the automation loops are 0.5 s of CPU a refused start (a wrong database, key
        # or queue: a worker's usual mistakes) no longer spends before its one line.
        from opscraft import engine_start

        await engine_start.start(
            rt,
            run_worker=run_worker,
            dispatching=dispatching,
            runners=runners,
            signing=signing,
            database_id=database_id,
        )
        log.info(
            "OpsCraft started: database=%s, redis=%s, worker=%s",
            "sqlite" if settings.is_sqlite else "postgresql",
            "yes" if settings.redis_url else "no",
            rt.worker.worker_id if rt.worker is not None else "none (runs execute in worker processes)",
        )
        if dispatching and not run_worker:  # a web-only process: its workers are other processes
            from opscraft.execution import transport

            missing = transport.limitations(settings, runs_here=False)
            if missing:
                log.warning(missing)
    except BaseException:  # what started is stopped, the runtime uninstalled
        await stop()
        raise
    rt.ready = True
    return rt


async def stop() -> None:
    """Stop the process runtime in order: stop taking jobs, stop the automation loops, stop the worker (its
    runs get the grace period), deliver the last run events, close limiters and the database, then
    uninstall the runtime. No-op when no runtime is started.
    """
    try:
        rt = runtime.current()
    except RuntimeError:
        return
    if rt.worker is not None:  # first: a job taken while the rest stops would be killed after the grace
        rt.worker.stop_taking()
    if rt.automation is not None:
        await rt.automation.stop()
        rt.automation = None
    if rt.executions is not None and rt.executions.delivery is not None:
        await asyncio.to_thread(rt.executions.delivery.close)  # what it still holds: the stall check's
    if rt.worker is not None:
        await asyncio.to_thread(rt.worker.stop)
        rt.worker = None
    elif rt.executions is not None:  # then `engine_start` imported the transport
        from opscraft.execution import transport

        transport.close(rt.executions.bus, rt.executions.cancels)
    if rt.run_events is not None:
        await rt.run_events.stop()
        try:  # what the worker's last runs wrote, before the database closes
            await rt.run_events.deliver()
        except Exception as exc:  # a full disk, the database gone: one line (`log_failure`)
            what = "delivering the last run events failed; the next start delivers them"
            unreachable.log_failure(log, what, exc)
        rt.run_events = None
    await runtime.close(rt)
    runtime.install(None)
