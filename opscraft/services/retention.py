"""Output retention: delete stored output (and optionally execution rows) past an age or a size.

Settings (admin, `app_settings`): `output_retention_days` (0 keeps output for ever),
`output_retention_gb` (0: no cap; beyond it the oldest finished runs lose their output first;
what counts is the size of the stored output, `output_stored_bytes`, not what the scripts wrote:
past `OPSCRAFT_MAX_OUTPUT_BYTES` output is counted in `output_bytes` but not stored),
`retention_delete_executions` (past the age, delete the execution rows too).

The work runs in the background (`run_upkeep`, started by `services/automation.py` in every
process that dispatches run events) in batches of `BATCH` runs, each its own short transaction
(their output deleted before, in slices of about `SLICE_BYTES`, each a transaction of its own),
so runs are never blocked for long; several processes may run it at once (every step is
idempotent: a batch another process already did changes nothing). Only finished runs are touched. A run whose
output was removed keeps its row and size, with `output_removed_at` set, which the API and the
execution page show. Audit events are never deleted: each round that removed something records
one `retention.apply` event.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, text, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db.engine import Database
from opscraft.db.models import Execution, ExecutionLog
from opscraft.db.models.executions import OUTPUT_KEPT
from opscraft.db.types import LT, compared, utcnow
from opscraft.db.unreachable import RoundFailures
from opscraft.services import app_settings, audit, execution_counts, idempotency, metrics, secrets
from opscraft.services.actor import Actor

log = logging.getLogger(__name__)

BATCH = 200
SLICE_BYTES = 8 * 1024**2
"""About how many bytes of stored output one transaction deletes: a batch's chunks go in slices
of about this size (a run with more, in ranges of its chunks), each its own transaction, before
the batch is marked. One DELETE of a batch's chunks held SQLite's write lock for 29 s per 500 MB
on a loaded machine (200 runs at the 50 MiB output cap are 10 GB), and the runs writing output
meanwhile waited for it."""
GB = app_settings.GB
INTERVAL_SECONDS = 600.0
FIRST_ROUND_SECONDS = 60.0
"""How long after a start the upkeep's first round comes: not at the start (which it would slow,
and which a one-off test's runtime is over before), yet within a short desktop session."""
# Between two batches: other writers (runs storing output) get the database.
PAUSE_SECONDS = 0.02
ACTOR = Actor.on_behalf_of(None, "retention")


@dataclass
class RetentionRound:
    """What one round did: runs whose output was removed, rows deleted, output bytes freed."""

    outputs_removed: int = 0
    executions_deleted: int = 0
    bytes_freed: int = 0

    @property
    def changed(self) -> bool:
        """True when the round removed some output or deleted some runs."""
        return bool(self.outputs_removed or self.executions_deleted)


async def run_once(db: Database, *, now: datetime | None = None, batch: int = BATCH) -> RetentionRound:
    """Apply the retention settings once, in batches of `batch` runs; returns what it did."""
    now = now or utcnow()
    async with db.session() as s:
        days = await app_settings.get(s, "output_retention_days")
        cap_gb = await app_settings.get(s, "output_retention_gb")
        delete_rows = await app_settings.get(s, "retention_delete_executions")
    done = RetentionRound()
    if days > 0:
        cutoff = now - timedelta(days=days)
        if delete_rows:
            while runs := await _finished_before(db, cutoff, batch):
                await _delete_chunks_in_slices(db, runs)
                ids = [i for i, _ in runs]
                done.bytes_freed += await _delete_executions(db, ids)
                done.executions_deleted += len(ids)
                await asyncio.sleep(PAUSE_SECONDS)
        while kept := await _kept(db, batch, cutoff):
            await _delete_chunks_in_slices(db, kept)
            await _remove_output(db, [i for i, _ in kept], now, done)
            await asyncio.sleep(PAUSE_SECONDS)
    if cap_gb > 0:
        await _cap_size(db, int(cap_gb * GB), now, batch, done)
    if done.changed:
        await _audit(db, done, days, cap_gb, delete_rows)
        if done.executions_deleted:
            await execution_counts.refresh_tally(db)
    return done


async def _finished_before(db: Database, cutoff: datetime, batch: int) -> list[tuple[int, int]]:
    """(id, bytes of stored output) of finished runs that finished before `cutoff`, oldest first."""
    async with db.session() as s:
        rows = await s.exec(
            select(Execution.id, Execution.output_stored_bytes)
            .where(compared(col(Execution.finished_at), LT, cutoff), execution_counts.finished())
            .order_by(col(Execution.finished_at))
            .limit(batch)
        )
        return [(int(i), int(n)) for i, n in rows.all()]


async def _delete_chunks_in_slices(db: Database, runs: list[tuple[int, int]]) -> None:
    """Delete the stored chunks of `runs` ((id, bytes of stored output)) in transactions of
    about `SLICE_BYTES` each, a pause between them (the bytes freed are counted by the
    transaction that marks or deletes the runs, from the same column). Runs are grouped up to
    that size; a larger run goes in ranges of its chunks, as many as its size asks for. The
    caller's own transaction then marks (or deletes) the runs: a round interrupted before finds
    them again and goes on (idempotent)."""
    group: list[int] = []
    size = 0
    for execution_id, stored in [*runs, (0, -1)]:  # the sentinel deletes the last group
        if group and (stored < 0 or size + stored > SLICE_BYTES):
            await _delete_slice(db, col(ExecutionLog.execution_id).in_(group))
            group, size = [], 0
        if stored > SLICE_BYTES:
            await _delete_large(db, execution_id, stored)
        elif stored >= 0:
            group.append(execution_id)
            size += stored


async def _delete_large(db: Database, execution_id: int, stored: int) -> None:
    """Delete the chunks of one run with more than `SLICE_BYTES` of stored output, by ranges of
    their sequence numbers of about `SLICE_BYTES` each."""
    async with db.session() as s:
        last = (
            await s.exec(
                select(func.max(ExecutionLog.seq)).where(col(ExecutionLog.execution_id) == execution_id)
            )
        ).one()
    if last is None:
        return
    step = max(1, int(last) * SLICE_BYTES // stored)
    for upto in range(step, int(last) + step, step):
        await _delete_slice(db, col(ExecutionLog.execution_id) == execution_id, col(ExecutionLog.seq) <= upto)


async def _delete_slice(db: Database, *where: Any) -> None:
    """One transaction deleting the chunks `where` selects, then a pause for other writers."""
    async with db.session() as s:
        await s.exec(delete(ExecutionLog).where(*where))
        await s.commit()
    await asyncio.sleep(PAUSE_SECONDS)


async def _kept(db: Database, batch: int, cutoff: datetime | None = None) -> list[tuple[int, int]]:
    """(id, bytes of stored output) of finished runs whose output is still stored, oldest
    finished first (`ix_executions_output_kept`, a partial index on exactly these rows: a run
    that stored no output is not one, and is never marked as removed)."""
    conditions = [text(OUTPUT_KEPT), col(Execution.finished_at).is_not(None)]
    if cutoff is not None:
        conditions.append(compared(col(Execution.finished_at), LT, cutoff))
    async with db.session() as s:
        rows = await s.exec(
            select(Execution.id, Execution.output_stored_bytes)
            .where(*conditions)
            .order_by(col(Execution.finished_at))
            .limit(batch)
        )
        return [(int(i), int(n)) for i, n in rows.all()]


async def _delete_chunks(s: AsyncSession, ids: list[int]) -> int:
    """Delete the stored output chunks of the runs `ids` in `s` (not committed); returns the bytes
    their stored output took (runs whose output was already removed count 0)."""
    freed = (
        await s.exec(
            select(func.coalesce(func.sum(Execution.output_stored_bytes), 0)).where(
                col(Execution.id).in_(ids), col(Execution.output_removed_at).is_(None)
            )
        )
    ).one()
    await s.exec(delete(ExecutionLog).where(col(ExecutionLog.execution_id).in_(ids)))
    return int(freed)


async def _remove_output(db: Database, ids: list[int], now: datetime, done: RetentionRound) -> None:
    """Delete the output chunks of `ids` and mark them removed, in one short transaction."""
    async with db.session() as s:
        freed = await _delete_chunks(s, ids)
        marked = await s.exec(
            update(Execution)
            .where(col(Execution.id).in_(ids), text(OUTPUT_KEPT))
            .values(output_removed_at=now, output_stored_bytes=0)
        )
        await s.commit()
    done.outputs_removed += marked.rowcount
    done.bytes_freed += freed


async def _delete_executions(db: Database, ids: list[int]) -> int:
    """Delete execution rows (their output, run events and approvals go with them: ON DELETE
    CASCADE; references from schedules and deliveries become NULL), keeping what they add to the
    metrics' counters (`metrics.retire`: only the rows this call deleted, so two processes
    deleting one batch count it once); returns output bytes freed."""
    async with db.session() as s:
        freed = await _delete_chunks(s, ids)
        deleted = await s.exec(
            delete(Execution)
            .where(col(Execution.id).in_(ids))
            .returning(
                col(Execution.status),
                col(Execution.script_type),
                col(Execution.output_bytes),
                col(Execution.started_at),
                col(Execution.finished_at),
            )
        )
        await metrics.retire(s, [tuple(row) for row in deleted.all()])
        await s.commit()
    return freed


async def _cap_size(db: Database, limit: int, now: datetime, batch: int, done: RetentionRound) -> None:
    """Remove the oldest finished runs' output until the output still stored fits in `limit` bytes."""
    async with db.session() as s:
        stored = (
            await s.exec(
                select(func.coalesce(func.sum(Execution.output_stored_bytes), 0)).where(
                    col(Execution.output_removed_at).is_(None)
                )
            )
        ).one()
    excess = int(stored) - limit
    while excess > 0 and (kept := await _kept(db, batch)):
        chosen: list[int] = []
        for execution_id, size in kept:
            chosen.append(execution_id)
            excess -= size
            if excess <= 0:
                break
        await _delete_chunks_in_slices(db, [(i, size) for i, size in kept if i in chosen])
        await _remove_output(db, chosen, now, done)
        await asyncio.sleep(PAUSE_SECONDS)


async def _audit(db: Database, done: RetentionRound, days: int, cap_gb: float, delete_rows: bool) -> None:
    async with db.session() as s:
        audit.record(
            s,
            ACTOR,
            "retention.apply",
            "execution",
            None,
            actor_name="retention",
            outputs_removed=done.outputs_removed,
            executions_deleted=done.executions_deleted,
            bytes_freed=done.bytes_freed,
            output_retention_days=days,
            output_retention_gb=cap_gb,
            retention_delete_executions=delete_rows,
        )
        await s.commit()


async def run_upkeep(
    db: Database, interval: float = INTERVAL_SECONDS, first: float = FIRST_ROUND_SECONDS
) -> None:
    """Until cancelled, every `interval` seconds: refresh the dashboard's tally, apply retention,
    delete the previous values of secrets whose rotation window is over
    (`secrets.drop_ended_previous_values`) and the expired idempotency keys (`idempotency.sweep`).

    The first round comes `first` seconds after the start (or `interval`, when shorter), not at
    it, and not a whole `interval` later (a desktop window opened for a few minutes would never
    apply retention): none of the three is
    due at a start (the dashboard's count is exact with any tally, `execution_counts`; retention
    and the rotation windows are kept to within `interval` anyway, and an ended window's value
    is refused at its use, `secrets.live_previous`), and the recount, a full pass over the runs,
    no longer competes with the start itself. A start that is over before (a one-off test's
    runtime) pays no round (docs/benchmarks.md, session 54)."""
    failures = RoundFailures(log, "history upkeep")
    pause = min(first, interval)
    while True:
        await asyncio.sleep(pause)
        pause = interval
        try:
            await execution_counts.refresh_tally(db)
            done = await run_once(db)
            await secrets.drop_ended_previous_values(db)
            await idempotency.sweep(db)
            failures.succeeded()
            if done.changed:
                log.info(
                    "retention: output of %d run(s) removed, %d run(s) deleted, %d bytes freed",
                    done.outputs_removed,
                    done.executions_deleted,
                    done.bytes_freed,
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures.failed(exc)
