"""Run events: deliver each `run_events` row (the outbox) to every registered subscriber.

A run's end writes its event in the same transaction as its final status (`store.finish`,
`store.end_lost`, `store.recover`, a cancel of a queued run). The dispatcher runs in every
process that starts one (the web process, `opscraft worker` processes) and, per subscriber,
hands it the events it has not handled yet, in id order, in batches. The handlers of a batch
work inside one transaction of the dispatcher, which also inserts their `run_event_deliveries`
rows (one statement for all of them): a handler that only writes to the database takes effect
exactly once; one that also talks to the outside (a webhook) may see an event again after a
crash or a failure, its own or another handler's of the same batch: at least once, never lost.
Two processes delivering at the same moment cannot both record a delivery: the second insert
waits for the first (primary key) and then finds it, and its transaction is rolled back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db.engine import Database
from opscraft.db.models import RunEvent, RunEventDelivery
from opscraft.db.types import earlier, utcnow
from opscraft.db.unreachable import RoundFailures

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

# Statements are built once (issue 15): building one costs more than running it.
_NAMES = bindparam("names", expanding=True)
_HANDLED = (
    select(func.count())
    .where(DELIVERIES.c.event_id == EVENTS.c.id, DELIVERIES.c.subscriber.in_(_NAMES))
    .scalar_subquery()
)
# The events some of `names` (`subscribers` of them) have not handled, above `floor`, each with
# how many of them have (0, the common case, spares reading who).
_DUE = (
    select(EVENTS, _HANDLED.label("handled"))
    .where(EVENTS.c.id > bindparam("floor"), bindparam("subscribers") > _HANDLED)
    .order_by(EVENTS.c.id)
    .limit(BATCH)
)
_DONE = select(DELIVERIES.c.event_id, DELIVERIES.c.subscriber).where(
    DELIVERIES.c.event_id.in_(bindparam("ids", expanding=True)), DELIVERIES.c.subscriber.in_(_NAMES)
)
_SETTLED_MAX = select(func.max(EVENTS.c.id)).where(
    EVENTS.c.id > bindparam("floor"), earlier(EVENTS.c.created_at, bindparam("settled"))
)
_INSERT_DELIVERIES = insert(DELIVERIES)


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
        self._waking = False  # a wake-up is on its way to the loop (`wake`)
        # `wake` hands the loop a wake-up only while the dispatcher waits for one (`_parked`);
        # otherwise (a round or its pause under way) it leaves a note (`_pending`) that the
        # dispatcher reads before it waits. Both under `_lock`, shared with the waking threads.
        self._lock = threading.Lock()
        self._parked = False
        self._pending = False
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
        """An event was written (committed) in this process: deliver soon (callable from any
        thread). The loop is handed a wake-up only while the dispatcher waits for one, and one
        at a time: while a round or the pause after it (`MIN_ROUND_SECONDS`) is under way, or a
        wake-up is on its way, this only leaves a note that the dispatcher reads before it
        waits again, so the next round starts at once and reads every event committed before
        it. A burst of ends (the finisher calls this once per run) thus costs the loop no
        cross-thread wake-up while the dispatcher is busy: each was a write to the loop's
        wake-up descriptor with the GIL held, and on a loaded machine the waking thread was
        often preempted there, holding the GIL (docs/benchmarks.md, session 46)."""
        with self._lock:
            send = self._parked and not self._waking
            if send:
                self._waking = True
            else:
                self._pending = True
        if not send:
            return
        loop = self._loop
        try:
            assert loop is not None  # parked: started on it
            loop.call_soon_threadsafe(self._woken)
        except RuntimeError:  # the loop closed meanwhile
            with self._lock:
                self._waking = False

    def _woken(self) -> None:
        """On the loop: the wake-up arrived (cleared before the event is set, so a `wake` after
        this sends another)."""
        with self._lock:
            self._waking = False
        assert self._wake is not None
        self._wake.set()

    def _park(self) -> bool:
        """On the loop, before waiting: False (and the note taken) when an event was written
        since the last check, so the next round starts at once; else True, now waiting."""
        with self._lock:
            if self._pending:
                self._pending = False
                return False
            self._parked = True
            return True

    def _unpark(self) -> None:
        """On the loop, after waiting: the round about to start reads every event written
        before now, so a note left meanwhile is taken too."""
        with self._lock:
            self._parked = False
            self._pending = False

    async def stop(self) -> None:
        """Cancel the dispatcher's task and wait for it to end (idempotent)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        assert self._wake is not None
        failures = RoundFailures(log, "delivering run events")
        while True:
            try:
                if self._on_round is not None:
                    await self._on_round()
                await self.deliver()
                failures.succeeded()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures.failed(exc)
            await asyncio.sleep(MIN_ROUND_SECONDS)
            if self._park():
                try:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.poll_seconds):
                            await self._wake.wait()
                finally:
                    self._unpark()
            self._wake.clear()

    async def deliver(self) -> int:
        """Deliver everything due to every subscriber; returns how many deliveries were recorded.

        The subscribers share each batch: one query for the events some of them have not
        handled (and by how many), one for who handled which when some did, then one
        transaction for all their deliveries (one INSERT) and their effects. A subscriber that
        fails has the batch's transaction rolled back and is left out of it, and the others'
        deliveries are written again at once without it, so it holds back only itself; until
        one of its batches succeeds it reads its own, so that events it keeps failing on do not
        fill the shared batches.
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
        async with self.db.session() as session:
            conn = await session.connection()
            rows = (
                await conn.execute(_DUE, {"floor": floor, "names": names, "subscribers": len(names)})
            ).all()
            await self._raise_floors(conn, names, floor, rows[0].id if rows else None)
            if not rows:
                return 0, False
            done = (
                set((await conn.execute(_DONE, {"ids": [r.id for r in rows], "names": names})).all())
                if any(r.handled for r in rows)
                else set()
            )
            events = [
                RunEventMessage(r.id, r.execution_id, r.kind, r.status, dict(r.details), r.created_at)
                for r in rows
            ]
            due = {name: [e for e in events if (e.id, name) not in done] for name in names}
            due = {name: handed for name, handed in due.items() if handed}
            complete = True
            while due:
                failed = await self._hand_over(session, due)
                if failed is None:
                    break
                complete = False  # the same batch would come back: wait for the next round
                if failed == "":  # another process delivered some of them meanwhile
                    return 0, False
                del due[failed]
        return sum(len(handed) for handed in due.values()), complete and len(rows) == BATCH

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
        settled_max = (await conn.execute(_SETTLED_MAX, {"floor": floor, "settled": settled})).scalar()
        if settled_max is not None:
            for name in names:
                self._floors[name] = min(settled_max, first_due - 1) if first_due is not None else settled_max

    async def _hand_over(self, session: AsyncSession, due: dict[str, list[RunEventMessage]]) -> str | None:
        """Record the events `due` to each subscriber as delivered and run the handlers, in one
        transaction. None when committed; else it was rolled back and the result names the
        subscriber whose handler failed, or is "" when some delivery was recorded meanwhile
        by another process (the primary key)."""
        now, by, name = utcnow(), self.process_id, ""
        try:
            await (await session.connection()).execute(
                _INSERT_DELIVERIES,
                [
                    {"event_id": e.id, "subscriber": sub, "delivered_by": by, "delivered_at": now}
                    for sub, handed in due.items()
                    for e in handed
                ],
            )
            for name, events in due.items():
                await self._handlers[name](session, events)
            await session.commit()
        except IntegrityError:
            await session.rollback()
            return ""
        except Exception:
            await session.rollback()
            self._failing.add(name)
            events = due[name]
            log.exception(
                "run event subscriber %s failed on events %s..%s", name, events[0].id, events[-1].id
            )
            return name
        self._failing.difference_update(due)
        return None
