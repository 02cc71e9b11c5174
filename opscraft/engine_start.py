"""The second half of `lifecycle.start`, once the database, the keys and the job queue passed its
checks: the run event dispatcher, the execution worker or client, the automation loops.

A module of its own so that its imports (the worker, Huey and redis, the Docker SDK, the run
events, notifications, chains, the scheduler: about 0.5 s of CPU) come after those checks: a
worker started with a wrong DATABASE_URL, master key, SECRET_KEY or REDIS_URL is refused without
them (docs/benchmarks.md, session 49).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Literal

from opscraft import runtime
from opscraft.db import clock
from opscraft.execution import installation, store, transport
from opscraft.execution.client import ExecutionClient, LiveWorkers
from opscraft.execution.run_events import RunEventDispatcher
from opscraft.execution.worker import Worker
from opscraft.lifecycle import log
from opscraft.services import automation, chains, notifications, run_audit
from opscraft.services.secrets import VaultSecretSource
from opscraft.services.terraform_plans import VaultPlanStore


async def start(
    rt: runtime.Runtime,
    *,
    run_worker: bool,
    dispatching: bool,
    runners: frozenset[str] | None,
    signing: Literal["record", "require"] | None,
    database_id: str,
) -> None:
    """Start on the installed, checked runtime `rt` what `lifecycle.start`'s arguments ask for
    (see there): seal the webhook URLs kept in plain text, then the dispatcher (`dispatching`),
    the worker (`run_worker`, offering `runners`) or an execution client only, and the automation
    loops with the dispatcher; each part set on `rt` once started, for `lifecycle.stop`.
    `database_id`: the installation id a Redis job queue's web process keeps recording."""
    settings = rt.settings
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
