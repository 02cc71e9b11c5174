"""The execution client: the one way `services` reach the execution engine.

Enqueue a run, follow it, cancel it, ask which runners some live worker offers, and have this
process's worker offer what it can at once after an admin's change (`runners_changed`). It
behaves the same whether the worker runs in this process or in another one: it only uses the ports
(`ports.py`) and the database. `follow` relies on the log bus for live output and on storage for
the rest, and re-reads storage and the row whenever the bus is quiet for `poll_seconds`, so a
run on a worker this process's bus does not reach is still followed to its end.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, bindparam, true
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db import clock
from opscraft.db.engine import Database
from opscraft.db.group_commit import Take
from opscraft.db.models import Execution, RegisteredWorker
from opscraft.db.models.executions import FINAL_STATUSES, ExecutionStatus
from opscraft.db.types import GT, compared
from opscraft.execution import log_pages
from opscraft.execution.delivery import Delivery
from opscraft.execution.events import Event, LogEvent, StatusEvent
from opscraft.execution.ports import OVERFLOW, CancelSignal, JobQueue, LogBus, Offer, RunnerAvailability

log = logging.getLogger(__name__)

REPLAY_PAGE = 200
POLL_SECONDS = 1.0
AVAILABILITY_CACHE_SECONDS = 1.0

_E = Execution.__table__.c  # type: ignore[attr-defined]
_PAGE = log_pages.page_statement().subquery()
# A run's status columns and its next page of stored output (`log_pages`: at most `REPLAY_PAGE`
# chunks, at most `log_pages.PAGE_CHARS` characters), in one statement (issue 15's lean request
# path): one row per chunk, or one row with a NULL `seq` when there is none after `after`; no row
# when the run does not exist.
_REPLAY = (
    select(_E.status, _E.exit_code, _E.error_message, _E.started_at, _E.finished_at, *_PAGE.c)
    .select_from(Execution.__table__.outerjoin(_PAGE, true()))  # type: ignore[attr-defined]
    .where(_E.id == bindparam("eid"))
    .order_by(_PAGE.c.seq)
)


class LiveWorkers:
    """`ports.RunnerAvailability` from the `workers` table: the runners of every worker that
    heartbeated within `lost_seconds` and did not stop (cached for a second).

    Callers are requests that already hold a database connection, so a read here is a second
    connection per request: were every request to wait for one, a burst larger than the pool
    would deadlock until the pool's timeout (an HTTP 500). So only the first answer is waited
    for (one read for all callers); afterwards callers get the cached answer at once and an
    answer older than a second is refreshed in the background, except a stale empty answer,
    which would refuse the request and is read again first.
    """

    def __init__(self, db: Database, lost_seconds: float) -> None:
        self.db = db
        self.lost_seconds = lost_seconds
        self._cached: tuple[float, Offer] | None = None
        self._first = asyncio.Lock()
        self._refresh: asyncio.Task[None] | None = None

    async def offered(self) -> Offer:
        """What the live workers offer now: their runners (`docker`, `local`) and, when none of
        them can read the job queue, the first one's `queue_error`; cached for
        AVAILABILITY_CACHE_SECONDS seconds.

        A stale cache is refreshed in the background, except an empty one, which is read again before
        answering so a refusal is never based on old data.
        """
        cached = self._cached
        if (
            cached is not None
            and not cached[1].runners
            and time.monotonic() - cached[0] >= AVAILABILITY_CACHE_SECONDS
        ):
            # A stale "no runner" would refuse the request: read again (this is not the hot path).
            self._cached = cached = None
        if cached is None:
            async with self._first:
                if self._cached is None:
                    await self._reload()
            assert self._cached is not None
            return self._cached[1]
        if time.monotonic() - cached[0] >= AVAILABILITY_CACHE_SECONDS and (
            self._refresh is None or self._refresh.done()
        ):
            self._refresh = asyncio.create_task(self._reload())
        return cached[1]

    async def _reload(self) -> None:
        since = clock.now() - timedelta(seconds=self.lost_seconds)  # heartbeats' clock: `db.clock`
        async with self.db.session() as session:
            rows = (
                await session.exec(
                    select(RegisteredWorker.runners, RegisteredWorker.queue_error).where(
                        col(RegisteredWorker.stopped_at).is_(None),
                        compared(col(RegisteredWorker.heartbeat_at), GT, since),
                    )
                )
            ).all()
        errors = [error for _, error in rows if error]
        offer = Offer(
            runners=frozenset(name for runners, _ in rows for name in runners),
            queue_error=errors[0] if rows and len(errors) == len(rows) else None,
        )
        self._cached = (time.monotonic(), offer)

    def forget(self) -> None:
        """Drop the cached answer (a worker of this process changed what it offers)."""
        self._cached = None


@dataclass
class ExecutionClient:
    """What services may ask of the execution engine (see the module docstring)."""

    db: Database
    queue: JobQueue
    bus: LogBus
    cancels: CancelSignal
    availability: RunnerAvailability
    poll_seconds: float = POLL_SECONDS
    delivery: Delivery | None = None
    """Set when the queue is reached over the network (Redis): enqueues go through its thread."""
    take: Take | None = None
    """Set when this process's worker takes its runs in memory (`Worker.submission_take`): a
    submission's group commit claims the run in its own transaction when a consumer thread is
    free, and hands it over after the COMMIT instead of `enqueue`."""
    advertise: Callable[[], None] | None = None
    """Set when a worker runs in this process (`Worker.advertise`): it offers what it can run now
    at once, between its heartbeats (blocking: reads the database and asks the Docker engine)."""

    def enqueue(self, execution_id: int) -> None:
        """Hand a committed `queued` run to the workers (its id only), without waiting on the
        network: with a `delivery` (Redis) the id is sent from its thread, and one the queue
        refuses is sent again once the queue answers (`delivery.py`; a frozen Redis held the
        caller, the web process's event loop, for the queue's socket timeout). Without one, a
        queue that cannot be reached leaves the run `queued` and a worker's stall check enqueues
        it again within seconds: the row, not the queue, is the truth."""
        if self.delivery is not None:
            self.delivery.put(execution_id)
            return
        try:
            self.queue.enqueue(execution_id)
        except Exception as exc:
            log.warning(
                "execution %s: the job queue is unreachable (%s); a worker picks it up later",
                execution_id,
                exc,
            )

    async def offered(self) -> Offer:
        """What the live workers offer now: the runner names (`docker`, `local`) and why none can
        read the job queue, from one answer (`ports.Offer`)."""
        return await self.availability.offered()

    async def runners(self) -> frozenset[str]:
        """Runner names some live worker offers now (`docker`, `local`)."""
        return (await self.availability.offered()).runners

    async def runners_changed(self) -> None:
        """What runners may run changed (an admin turned the local runner on or off): this
        process's worker, if any, offers what it can now at once (`advertise`, on a thread), and
        the cached answer of `runners` is dropped, so a run sent right after finds the runner
        (or is refused without it). Workers of other processes follow at their next heartbeat."""
        if self.advertise is not None:
            await asyncio.to_thread(self.advertise)
        self.availability.forget()

    def cancelled_while_queued(self, execution_id: int, finished_at: datetime) -> None:
        """A queued run was cancelled (its row is final already): tell its watchers."""
        self.bus.publish(
            execution_id, StatusEvent(ExecutionStatus.cancelled, final=True, finished_at=finished_at)
        )

    def cancel_running(self, execution_id: int) -> None:
        """Kill a running run now; its worker also finds `cancel_requested` in the database within
        a second, so this works when the signal cannot reach that worker."""
        self.cancels.request(execution_id)

    async def follow(self, execution_id: int, after_seq: int = 0) -> AsyncGenerator[Event, None]:
        """Every event of an execution after `after_seq`: stored output, then live, no gap, no
        duplicate. Yields the current status first and ends after the final status; ends at once
        (nothing yielded) when the execution does not exist. The caller checks permissions.
        Storage (the row and the stored output) is read first, unless the bus holds the whole
        run so far (`Subscription.status`: a live run of this process's worker whose output is
        not stored yet), which saves a live run's watcher a database round trip before its
        first message; after a quiet `poll_seconds` storage is read as always."""
        last = after_seq
        shown: str | None = None
        while True:
            sub = self.bus.subscribe(execution_id, last)
            try:
                if sub.status is not None and shown is None:  # the bus holds the whole run so far
                    shown = sub.status.status
                    yield sub.status
                else:  # also after a quiet second: the row says whether the run ended elsewhere
                    rows = await self._replay(execution_id, last)
                    if not rows:
                        return
                    run = rows[0]
                    if shown is None or (run.status != shown and run.status not in FINAL_STATUSES):
                        shown = run.status
                        yield replace(status_event(run), final=False)
                    while rows and rows[0].seq is not None:
                        for row in rows:
                            last = row.seq
                            yield LogEvent(row.seq, row.stream, row.content, row.created_at)
                        if rows[0].candidates <= len(rows):
                            break  # nothing more stored now (the page ended at neither bound)
                        rows = await self._replay(execution_id, last)
                    if run.status in FINAL_STATUSES:
                        yield status_event(run)
                        return
                for event in sub.backlog:
                    if event.seq > last:
                        last = event.seq
                        yield event
                while True:
                    event = await sub.get(self.poll_seconds)
                    if event is None or event is OVERFLOW:
                        break  # quiet (or behind): storage and the row say what happened meanwhile
                    if isinstance(event, LogEvent):
                        if event.seq > last:
                            last = event.seq
                            yield event
                    elif isinstance(event, StatusEvent) and (event.final or event.status != shown):
                        shown = event.status
                        yield event
                        if event.final:
                            return
            finally:
                sub.close()

    async def _replay(self, execution_id: int, after: int) -> list[Row[Any]]:
        """`_REPLAY`'s rows: the run's status columns with each stored chunk after `after` (at
        most `REPLAY_PAGE` chunks and `log_pages.PAGE_CHARS` characters, at least one chunk), by
        `seq`, each with the page's `candidates` (`log_pages.page_statement`); a Core statement
        on one pooled connection, no ORM session."""
        async with self.db.engine.connect() as conn:
            result = await conn.execute(_REPLAY, log_pages.values(execution_id, after, REPLAY_PAGE))
            return list(result.all())


_STORED_AFTER = log_pages.page_statement()


async def stored_after(
    session: AsyncSession, execution_id: int, after: int, limit: int = REPLAY_PAGE
) -> log_pages.StoredPage:
    """A run's stored output chunks with `seq > after`, in order: at most `limit` of them and at
    most `log_pages.PAGE_CHARS` characters (at least one chunk when any is stored after `after`),
    with whether more are stored after them."""
    rows = await session.exec(_STORED_AFTER, params=log_pages.values(execution_id, after, limit))  # type: ignore[call-overload]
    return log_pages.page_of(list(rows.all()))


def status_event(execution: Execution | Row[Any]) -> StatusEvent:
    """The status event describing the row as it is (an `Execution`, or a row with its status
    columns)."""
    return StatusEvent(
        status=execution.status,
        final=execution.status in FINAL_STATUSES,
        exit_code=execution.exit_code,
        error_message=execution.error_message,
        started_at=execution.started_at,
        finished_at=execution.finished_at,
    )
