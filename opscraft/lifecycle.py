"""Start and stop the runtime: settings -> database (migrated) -> vault -> execution. No NiceGUI here."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Literal

from opscraft import runtime
from opscraft.config import Settings
from opscraft.db import clock, unreachable
from opscraft.execution import installation, store, transport
from opscraft.execution.client import ExecutionClient, LiveWorkers
from opscraft.execution.run_events import RunEventDispatcher
from opscraft.execution.worker import Worker
from opscraft.services import automation, chains, notifications, run_audit, signing_key
from opscraft.services.secrets import VaultSecretSource
from opscraft.services.terraform_plans import VaultPlanStore

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
        if settings.redis_url and (run_worker or dispatching):  # takes from or feeds the job queue
            database_id = await installation.database_id(rt.db)
            await asyncio.to_thread(installation.claim_queue, settings, database_id)
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
            await installation.require_same_queue(rt.db, settings)
            if settings.redis_url and signing == "record":
                await installation.record_queue(rt.db, settings)
        # Webhook channel URLs kept in plain text before migration 0031: sealed now the vault is open
        await notifications.seal_plain_urls(rt.db)
        dispatcher: RunEventDispatcher | None = None
        if dispatching:
            process_id = f"web:{socket.gethostname()}:{os.getpid()}"
            rounds = [] if run_worker else [_lost_worker_check(rt)]
            if settings.redis_url and signing == "record":
                rounds.append(
                    _every_heartbeat(rt, lambda: installation.keep_records(rt.db, settings, database_id))
                )
            dispatcher = RunEventDispatcher(rt.db, process_id, on_round=_in_turn(rounds))
            dispatcher.subscribe(run_audit.SUBSCRIBER, run_audit.record_finished)
            dispatcher.subscribe(notifications.SUBSCRIBER, notifications.on_run_events)
            dispatcher.subscribe(chains.SUBSCRIBER, chains.on_run_events)
        availability = LiveWorkers(rt.db, settings.worker_lost_seconds)
        if run_worker:
            started = Worker(
                settings,
                secrets=VaultSecretSource(rt.vault),
                plans=VaultPlanStore(rt.vault),
                on_finished=(lambda _: dispatcher.wake()) if dispatcher is not None else lambda _: None,
                runners=runners,
            )
            await asyncio.to_thread(started.start)
            rt.worker = started  # only once started: `stop` stops what started
            if dispatcher is not None:
                dispatcher.process_id = started.worker_id
            rt.executions = ExecutionClient(
                rt.db,
                started.queue,
                started.bus,
                started.cancels,
                availability,
                delivery=transport.delivery_for(settings, started.queue),
                take=started.submission_take(),
                advertise=started.advertise,
            )
        else:
            queue = transport.queue_for(settings)
            rt.executions = ExecutionClient(
                rt.db,
                queue,
                transport.bus_for(settings),
                transport.cancel_signal_for(settings),
                availability,
                delivery=transport.delivery_for(settings, queue),
            )
        await availability.offered()  # read once before any request: requests never wait for it
        if dispatcher is not None:
            rt.run_events = dispatcher
            dispatcher.start()
            rt.automation = automation.start(rt.db, settings.scheduler_idle_seconds)
        log.info(
            "OpsCraft started: database=%s, redis=%s, worker=%s",
            "sqlite" if settings.is_sqlite else "postgresql",
            "yes" if settings.redis_url else "no",
            rt.worker.worker_id if rt.worker is not None else "none (runs execute in worker processes)",
        )
        if dispatching and not run_worker:  # a web-only process: its workers are other processes
            missing = transport.limitations(settings, runs_here=False)
            if missing:
                log.warning(missing)
    except BaseException:  # what started is stopped, the runtime uninstalled
        await stop()
        raise
    rt.ready = True
    return rt


def _in_turn(checks: list[Callable[[], Awaitable[None]]]) -> Callable[[], Awaitable[None]] | None:
    """One round callback awaiting each of `checks` in order; None when there are none."""
    if not checks:
        return None

    async def each() -> None:
        for check in checks:
            await check()

    return each


def _every_heartbeat(
    rt: runtime.Runtime, action: Callable[[], Awaitable[None]]
) -> Callable[[], Awaitable[None]]:
    """`action`, run at most once per heartbeat period (`OPSCRAFT_WORKER_HEARTBEAT_SECONDS`)."""
    last = 0.0

    async def check() -> None:
        nonlocal last
        if time.monotonic() - last < rt.settings.worker_heartbeat_seconds:
            return
        last = time.monotonic()
        await action()

    return check


def _lost_worker_check(rt: runtime.Runtime) -> Callable[[], Awaitable[None]]:
    """For a process without a worker of its own: end lost workers' runs every heartbeat period,
    once the database has answered for long enough (`store.LossWatch`)."""
    watch = store.LossWatch(rt.settings.worker_lost_seconds)

    async def check() -> None:
        judge = watch.may_judge()
        try:
            async with rt.db.engine.begin() as conn:
                await conn.run_sync(clock.measure)  # heartbeats are in the database's clock
                ended: list[int] = []
                if judge:
                    stale_before = clock.now() - timedelta(seconds=rt.settings.worker_lost_seconds)
                    _, ended = await conn.run_sync(store.end_lost, "", stale_before)
        except Exception as exc:
            watch.failed(exc)
            raise
        watch.answered()
        if ended:
            log.warning("ended %d run(s) of lost workers: %s", len(ended), ended)

    return _every_heartbeat(rt, check)


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
    elif rt.executions is not None:
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
