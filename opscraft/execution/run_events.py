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
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
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
# How often the floors are moved up (one query): between two checks a round re-reads at most the
# events of the last FLOOR_CHECK_SECONDS + SETTLED_SECONDS, through the primary key.
FLOOR_CHECK_SECONDS = 10.0


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
        self._floors_checked: dict[tuple[str, ...], float] = {}
        self._failing: set[str] = set()
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
                async with asyncio.timeout(self.poll_seconds):
                    await self._wake.wait()
            self._wake.clear()

    async def deliver(self) -> int:
        """Deliver everything due to every subscriber; returns how many deliveries were recorded.

        The subscribers share each batch's reads (one query for the events some of them have
        not handled, one for who handled which); each writes its deliveries and its effects in
        a transaction of its own, so one that fails holds back only itself. A subscriber whose
        last batch failed reads its own batches until one succeeds, so that events it keeps
        failing on do not fill the shared batches.
        """
        healthy = [name for name in self._handlers if name not in self._failing]
        groups = ([healthy] if healthy else []) + [[name] for name in self._handlers if name in self._failing]
        total = 0
        for names in groups:
            while True:
                count, full = await self._deliver_batch(names)
                total += count
                if not full:
                    break
        return total

    async def _deliver_batch(self, names: list[str]) -> tuple[int, bool]:
        """One batch for the subscribers `names`: (deliveries recorded, whether the batch was full)."""
        floor = min(self._floors.get(name, 0) for name in names)
        handled = (
            select(func.count())
            .where(DELIVERIES.c.event_id == EVENTS.c.id, DELIVERIES.c.subscriber.in_(names))
            .scalar_subquery()
        )
        total = 0
        async with self.db.session() as session:
            conn = await session.connection()
            rows = (
                await conn.execute(
                    select(EVENTS)
                    .where(EVENTS.c.id > floor, handled < len(names))
                    .order_by(EVENTS.c.id)
                    .limit(BATCH)
                )
            ).all()
            await self._raise_floors(conn, names, floor, rows[0].id if rows else None)
            if not rows:
                return 0, False
            done = set(
                (
                    await conn.execute(
                        select(DELIVERIES.c.event_id, DELIVERIES.c.subscriber).where(
                            DELIVERIES.c.event_id.in_([r.id for r in rows]),
                            DELIVERIES.c.subscriber.in_(names),
                        )
                    )
                ).all()
            )
            events = [
                RunEventMessage(r.id, r.execution_id, r.kind, r.status, dict(r.details), r.created_at)
                for r in rows
            ]
            complete = True
            for name in names:
                due = [e for e in events if (e.id, name) not in done]
                if not due:
                    continue
                if await self._hand_over(session, name, due):
                    total += len(due)
                else:  # the same batch would come back: wait for the next round
                    complete = False
        return total, complete and len(rows) == BATCH

    async def _raise_floors(
        self, conn: AsyncConnection, names: list[str], floor: int, first_due: int | None
    ) -> None:
        """Move the subscribers' floors up to the settled events (at most every
        `FLOOR_CHECK_SECONDS`: the floor only saves re-reading, it is never needed at once)."""
        key = tuple(names)
        now = time.monotonic()
        checked = self._floors_checked.get(key)
        if checked is not None and checked > now - FLOOR_CHECK_SECONDS:
            return
        self._floors_checked[key] = now
        settled = utcnow() - timedelta(seconds=SETTLED_SECONDS)
        settled_max = (
            await conn.execute(
                select(func.max(EVENTS.c.id)).where(EVENTS.c.id > floor, EVENTS.c.created_at < settled)
            )
        ).scalar()
        if settled_max is not None:
            for name in names:
                self._floors[name] = min(settled_max, first_due - 1) if first_due is not None else settled_max

    async def _hand_over(self, session: AsyncSession, name: str, events: list[RunEventMessage]) -> bool:
        """Record `events` as delivered to `name` and run its handler, in one transaction;
        True when committed."""
        now = utcnow()
        try:
            await (await session.connection()).execute(
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
            await self._handlers[name](session, events)
            await session.commit()
        except IntegrityError:  # another process delivered some of them meanwhile: next round
            await session.rollback()
            return False
        except Exception:
            await session.rollback()
            self._failing.add(name)
            log.exception(
                "run event subscriber %s failed on events %s..%s", name, events[0].id, events[-1].id
            )
            return False
        self._failing.discard(name)
        return True
