"""Run events: deliver each `run_events` row (the outbox) to every registered subscriber.

A run's end writes its event in the same transaction as its final status (`store.finish`,
`store.end_lost`, `store.recover`, a cancel of a queued run). The dispatcher runs in every
process that starts one (the web process, `opscraft worker` processes) and, per subscriber,
hands it the events it has not handled yet, in id order, in batches. The handler works inside the
dispatcher's transaction, which also inserts the `run_event_deliveries` rows: a handler that
only writes to the database takes effect exactly once; one that also talks to the outside
(a webhook) may see an event again after a crash or a failure: at least once, never lost.
Two processes delivering at the same moment cannot both record a delivery: the second insert
waits for the first (primary key) and then finds it, and its transaction is rolled back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, exists, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db.engine import Database
from opscraft.db.models import RunEvent, RunEventDelivery
from opscraft.db.types import utcnow

log = logging.getLogger(__name__)

EVENTS = cast(Table, RunEvent.__table__)
DELIVERIES = cast(Table, RunEventDelivery.__table__)
BATCH = 100
POLL_SECONDS = 2.0
# Events are delivered at most this often in a burst, so a busy moment makes batches, not rounds.
MIN_ROUND_SECONDS = 0.2
# Ids are handed out before commit: an event with a lower id may commit a moment after a higher
# one. Events older than this are settled, so the dispatcher stops re-reading below them.
SETTLED_SECONDS = 60.0


@dataclass(frozen=True)
class RunEventMessage:
    """One run event as subscribers see it (`details`: see `db.models.workers.finished_event`)."""

    id: int
    execution_id: int
    kind: str
    status: str
    details: dict[str, Any]
    created_at: datetime


Handler = Callable[[AsyncSession, list[RunEventMessage]], Awaitable[None]]
"""`handler(session, events)`: handle a batch inside the delivery's transaction (do not commit)."""


class RunEventDispatcher:
    """Delivers run events to subscribers from this process (an asyncio task on the running loop).

    `process_id` names this process in the delivery records. `on_round` (optional) runs before
    each round, e.g. to end the runs of lost workers in a process that has no worker of its own.
    """

    def __init__(
        self,
        db: Database,
        process_id: str,
        *,
        poll_seconds: float = POLL_SECONDS,
        on_round: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.db = db
        self.process_id = process_id
        self.poll_seconds = poll_seconds
        self._on_round = on_round
        self._handlers: dict[str, Handler] = {}
        self._floors: dict[str, int] = {}
        self._wake: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, name: str, handler: Handler) -> None:
        """Register `handler` under `name` (at most 64 characters, stable across restarts: the
        deliveries recorded under it are what makes a restart skip what was handled)."""
        if name in self._handlers:
            raise ValueError(f"a run event subscriber named {name!r} is already registered")
        self._handlers[name] = handler

    def start(self) -> None:
        """Start delivering on the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._task = self._loop.create_task(self._run(), name="opscraft-run-events")

    def wake(self) -> None:
        """An event was written in this process: deliver soon (callable from any thread)."""
        if self._loop is not None and self._wake is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._wake.set)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        assert self._wake is not None
        while True:
            try:
                if self._on_round is not None:
                    await self._on_round()
                await self.deliver()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivering run events failed; trying again")
            await asyncio.sleep(MIN_ROUND_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            self._wake.clear()

    async def deliver(self) -> int:
        """Deliver everything due to every subscriber; returns how many deliveries were recorded."""
        total = 0
        for name, handler in self._handlers.items():
            while True:
                count, full = await self._deliver_batch(name, handler)
                total += count
                if not full:
                    break
        return total

    async def _deliver_batch(self, name: str, handler: Handler) -> tuple[int, bool]:
        floor = self._floors.get(name, 0)
        delivered = exists().where(DELIVERIES.c.event_id == EVENTS.c.id, DELIVERIES.c.subscriber == name)
        settled = utcnow() - timedelta(seconds=SETTLED_SECONDS)
        async with self.db.session() as session:
            conn = await session.connection()
            rows = (
                await conn.execute(
                    select(EVENTS).where(EVENTS.c.id > floor, ~delivered).order_by(EVENTS.c.id).limit(BATCH)
                )
            ).all()
            settled_max = (
                await conn.execute(
                    select(func.max(EVENTS.c.id)).where(EVENTS.c.id > floor, EVENTS.c.created_at < settled)
                )
            ).scalar()
            if settled_max is not None:
                self._floors[name] = min(settled_max, rows[0].id - 1) if rows else settled_max
            if not rows:
                return 0, False
            events = [
                RunEventMessage(r.id, r.execution_id, r.kind, r.status, dict(r.details), r.created_at)
                for r in rows
            ]
            now = utcnow()
            try:
                await conn.execute(
                    insert(DELIVERIES),
                    [
                        {
                            "event_id": e.id,
                            "subscriber": name,
                            "delivered_by": self.process_id,
                            "delivered_at": now,
                        }
                        for e in events
                    ],
                )
                await handler(session, events)
                await session.commit()
            except IntegrityError:  # another process delivered some of them meanwhile: next round
                await session.rollback()
                return 0, False
            except Exception:
                await session.rollback()
                log.exception(
                    "run event subscriber %s failed on events %s..%s", name, events[0].id, events[-1].id
                )
                return 0, False
        return len(events), len(rows) == BATCH
