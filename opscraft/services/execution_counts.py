"""Execution counts that stay cheap at a million runs.

- `status_counts`: the dashboard's all-time count per status, exact, without counting every row:
  a stored tally (`execution_tallies`) of the finished runs up to a watermark id, refreshed in the
  background (`refresh_tally`), plus a count of the few runs after the watermark (a primary-key
  range). A finished run never changes status again, so the tally stays true until retention
  deletes rows, after which retention refreshes it.
- Every count is of the status a run reads as (`db.stored_shapes`): a stored status none of
  today's (SQLite holds any text) is counted as `failed`, as the history and the run's page show
  it, never in no status (the tally kept only the final statuses' texts and dropped it).
- `capped_count`: how many rows a history filter matches, counting at most `COUNT_CAP` + 1 rows
  (GitLab's and GitHub's lists do the same: "10,000+"); an exact total over a million rows is
  the slow part of a page.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db import stored_shapes
from opscraft.db.engine import Database
from opscraft.db.models import Execution, ExecutionTally
from opscraft.db.models.executions import FINAL_STATUSES, ExecutionStatus
from opscraft.db.types import utcnow

COUNT_CAP = 10_000
# A run queued this recently may still be in an uncommitted transaction: the watermark stays below it.
SETTLE_SECONDS = 60
ACTIVE = [s for s in ExecutionStatus if s not in FINAL_STATUSES]


def read_status(stored: Any) -> str:
    """The status a run whose `status` column holds `stored` reads as (`stored_shapes.as_loaded`:
    text none of today's reads as `failed`), as text: the key every count is made under."""
    return str(stored_shapes.as_loaded(Execution, "status", stored))


def finished() -> ColumnElement[bool]:
    """Whether a run's stored status reads as a final one: not one of `ACTIVE` (text none of
    today's reads as `failed`, which is final; `status IN FINAL_STATUSES` left it out)."""
    return col(Execution.status).notin_(ACTIVE)


async def capped_count(
    session: AsyncSession, conditions: list[Any], cap: int = COUNT_CAP, ids: Select[Any] | None = None
) -> tuple[int, bool]:
    """(matching rows, capped): at most `cap`, and `capped` True when more rows match. `ids`:
    the runs' ids to filter by `conditions` (`host_filter.HostFilter.ids`), the executions' by
    default."""
    runs = ids if ids is not None else select(col(Execution.id))
    matching = runs.where(*conditions).limit(cap + 1).subquery()
    found = int((await session.exec(select(func.count()).select_from(matching))).one())
    return min(found, cap), found > cap


async def status_counts(session: AsyncSession) -> dict[str, int]:
    """Runs per status, all time, every status present (0 when none): tally + runs after it."""
    counts = {status.value: 0 for status in ExecutionStatus}
    tallies = list((await session.exec(select(ExecutionTally))).all())
    upto = max((t.upto_id for t in tallies), default=0)
    for tally in tallies:
        counts[tally.status] = counts.get(tally.status, 0) + tally.count
    # A subquery on the primary-key range: grouped directly, SQLite's planner walks the whole
    # status index instead of the few rows after the watermark (docs/benchmarks.md).
    after = select(Execution.status).where(col(Execution.id) > upto).order_by(col(Execution.id)).subquery()
    recent = await session.exec(select(after.c.status, func.count()).group_by(after.c.status))
    for stored, n in recent.all():
        status = read_status(stored)
        counts[status] = counts.get(status, 0) + int(n)
    return counts


async def refresh_tally(db: Database) -> int:
    """Recount the finished runs up to a new watermark and store the tally; returns the watermark.

    The watermark is below every unfinished run and below the runs of the last `SETTLE_SECONDS`,
    so every run at or under it is final and committed. The recount reads (one full pass, in the
    background); the write is one short transaction. Every web and worker process refreshes it
    (`retention.run_upkeep`), and processes started together do so at the same moment: a write
    that meets the tally another process committed meanwhile (PostgreSQL: a duplicate key) keeps
    that one, as fresh, instead of failing the round (and skipping its retention pass)."""
    async with db.session() as s:
        first_active = (
            await s.exec(select(func.min(Execution.id)).where(col(Execution.status).in_(ACTIVE)))
        ).one()
        settled = (
            await s.exec(
                select(Execution.id)
                .where(col(Execution.queued_at) < utcnow() - timedelta(seconds=SETTLE_SECONDS))
                .order_by(col(Execution.queued_at).desc())
                .limit(1)
            )
        ).first()
        upto = min(settled or 0, (first_active - 1) if first_active is not None else settled or 0)
        rows = await s.exec(
            select(Execution.status, func.count()).where(col(Execution.id) <= upto).group_by(Execution.status)
        )
        found: dict[str, int] = {}
        for stored, n in rows.all():  # several stored texts may read as one status (`read_status`)
            status = read_status(stored)
            found[status] = found.get(status, 0) + int(n)
        await s.rollback()  # end the read before the short write
        await s.exec(delete(ExecutionTally))
        now = utcnow()
        for status in sorted(FINAL_STATUSES):
            s.add(
                ExecutionTally(
                    status=status.value, count=found.get(status.value, 0), upto_id=upto, computed_at=now
                )
            )
        try:
            await s.commit()
        except IntegrityError:
            await s.rollback()
    return upto
