"""Schedules: run a script on a cron expression, on behalf of its owner, exactly once per fire time.

Rules:
- a schedule has a 5-field cron expression (minute hour day-of-month month day-of-week, as
  croniter reads it) evaluated in an IANA time zone (zoneinfo), so "0 9 * * 1-5" in
  Europe/Paris stays 09:00 local across daylight-saving changes; parameters are checked by the
  script's parameter resolver when saved and again when it fires;
- creating or editing needs `edit_scripts`; the runs start on behalf of the user who last saved
  it (the owner), whose permission is checked at each fire: a deactivated or deleted owner
  pauses the schedule (audited `schedule.paused`), until someone saves it again;
- exactly once per fire time with any number of processes: a fire is claimed in one transaction
  by advancing `next_fire_at` with a conditional update and inserting the (schedule, fire time)
  row whose primary key forbids a second claim. A process that crashes right after the claim
  loses that one fire (never runs it twice);
- missed fires (the server was down past `MISSED_GRACE`): policy `run_once` runs once now for
  the latest missed time, `skip` records it as skipped and waits for the next;
- overlap, when the schedule's previous run is still queued or running: `skip` records the fire
  as skipped, `queue` keeps it waiting and starts it when the previous run ends (fires beyond
  one waiting are skipped), `allow` starts it anyway.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadCronError, croniter
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db.engine import Database
from opscraft.db.models import Execution, Schedule, ScheduleFire, Script, User
from opscraft.db.models.automation import MissedPolicy, OverlapPolicy
from opscraft.db.models.executions import FINAL_STATUSES
from opscraft.db.types import utcnow
from opscraft.services import audit, parameters
from opscraft.services.actor import Actor
from opscraft.services.errors import Invalid, NotFound, ServiceError
from opscraft.services.permissions import Permission, require
from opscraft.services.run_starter import OwnerRefused, start_for

log = logging.getLogger(__name__)

MISSED_GRACE = timedelta(seconds=60)
BATCH = 200
MAX_IDLE_SECONDS = 5.0
MIN_IDLE_SECONDS = 0.2
PREVIEW = 5


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, examples=["nightly"])
    cron: str = Field(min_length=1, max_length=128, examples=["30 2 * * *"])
    timezone: str = Field(default="UTC", max_length=64, examples=["Europe/Paris"])
    parameters: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True
    missed_policy: MissedPolicy = MissedPolicy.run_once
    overlap_policy: OverlapPolicy = OverlapPolicy.skip


def _bad(field: str, message: str) -> Invalid:
    return Invalid(f"{field}: {message}", details=[{"field": field, "message": message}])


def check_cron(expression: str) -> str:
    """The expression, normalised to single spaces; 422 (field `cron`) unless 5 valid fields."""
    fields = expression.split()
    if len(fields) != 5:
        raise _bad("cron", "needs 5 fields: minute hour day-of-month month day-of-week")
    normal = " ".join(fields)
    try:
        croniter(normal)
    except (CroniterBadCronError, ValueError, KeyError):
        raise _bad("cron", "is not a valid cron expression") from None
    return normal


def check_timezone(name: str) -> ZoneInfo:
    """The zone; 422 (field `timezone`) for a name the IANA database does not know."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise _bad("timezone", "unknown time zone: use an IANA name such as Europe/Paris or UTC") from None


def next_times(cron: str, timezone: str, after: datetime, count: int = 1) -> list[datetime]:
    """The next `count` fire times strictly after `after`, as timezone-aware UTC datetimes."""
    zone = ZoneInfo(timezone)
    it = croniter(cron, after.astimezone(zone))
    return [it.get_next(datetime).astimezone(ZoneInfo("UTC")) for _ in range(count)]


def previous_time(cron: str, timezone: str, before: datetime) -> datetime:
    """The latest fire time strictly before `before`, as timezone-aware UTC."""
    it = croniter(cron, before.astimezone(ZoneInfo(timezone)))
    return it.get_prev(datetime).astimezone(ZoneInfo("UTC"))


async def _script(session: AsyncSession, script_id: int) -> Script:
    script = await session.get(Script, script_id)
    if script is None or script.deleted_at is not None:
        raise NotFound(f"script {script_id} not found")
    return script


def _apply(schedule: Schedule, script: Script, data: ScheduleIn) -> None:
    cron = check_cron(data.cron)
    check_timezone(data.timezone)
    resolved = parameters.resolve(script.parameters, data.parameters)
    schedule.name = data.name.strip()
    schedule.cron, schedule.timezone, schedule.parameters = cron, data.timezone, resolved
    schedule.enabled = data.enabled
    schedule.missed_policy, schedule.overlap_policy = data.missed_policy, data.overlap_policy
    schedule.paused_reason = None
    schedule.next_fire_at = next_times(cron, data.timezone, utcnow())[0] if data.enabled else None
    schedule.updated_at = utcnow()


async def create(session: AsyncSession, actor: Actor, script_id: int, data: ScheduleIn) -> Schedule:
    """A new schedule of `script_id`, owned by the caller; 422 naming `cron`, `timezone` or a
    parameter, 404 for an unknown script."""
    user = require(actor.user, Permission.edit_scripts)
    script = await _script(session, script_id)
    schedule = Schedule(script_id=script_id, name="", cron="", timezone="UTC", owner_id=user.id)
    _apply(schedule, script, data)
    session.add(schedule)
    await session.flush()
    audit.record(session, actor, "schedule.create", "schedule", schedule.id, **_facts(schedule))
    await session.commit()
    return schedule


def _facts(schedule: Schedule) -> dict[str, Any]:
    return {
        "script_id": schedule.script_id,
        "name": schedule.name,
        "cron": schedule.cron,
        "timezone": schedule.timezone,
        "enabled": schedule.enabled,
        "parameters": sorted(schedule.parameters),
    }


async def get(
    session: AsyncSession, actor: Actor, schedule_id: int, script_id: int | None = None
) -> Schedule:
    require(actor.user, Permission.view_scripts)
    schedule = await session.get(Schedule, schedule_id)
    if schedule is None or (script_id is not None and schedule.script_id != script_id):
        raise NotFound(f"schedule {schedule_id} not found")
    return schedule


async def update_schedule(
    session: AsyncSession, actor: Actor, schedule_id: int, data: ScheduleIn, script_id: int | None = None
) -> Schedule:
    """Replace a schedule's settings; the caller becomes its owner (runs start on their behalf)
    and a paused schedule resumes. The next fire time is computed from now."""
    user = require(actor.user, Permission.edit_scripts)
    schedule = await get(session, actor, schedule_id, script_id)
    _apply(schedule, await _script(session, schedule.script_id), data)
    schedule.owner_id = user.id
    audit.record(session, actor, "schedule.update", "schedule", schedule.id, **_facts(schedule))
    await session.commit()
    return schedule


async def delete(session: AsyncSession, actor: Actor, schedule_id: int, script_id: int | None = None) -> None:
    require(actor.user, Permission.edit_scripts)
    schedule = await get(session, actor, schedule_id, script_id)
    await session.delete(schedule)
    audit.record(session, actor, "schedule.delete", "schedule", schedule_id, script_id=schedule.script_id)
    await session.commit()


@dataclass(frozen=True)
class ScheduleView:
    """A schedule with what lists show: script and owner names, last run's status."""

    schedule: Schedule
    script_name: str
    owner_name: str | None
    last_status: str | None


async def list_schedules(
    session: AsyncSession, actor: Actor, script_id: int | None = None
) -> list[ScheduleView]:
    """Every schedule (or a script's), by script and name."""
    require(actor.user, Permission.view_scripts)
    query = (
        select(Schedule, Script.name, User.username, Execution.status)
        .join(Script, col(Script.id) == col(Schedule.script_id))
        .join(User, col(User.id) == col(Schedule.owner_id), isouter=True)
        .join(Execution, col(Execution.id) == col(Schedule.last_execution_id), isouter=True)
        .where(col(Script.deleted_at).is_(None))
    )
    if script_id is not None:
        query = query.where(col(Schedule.script_id) == script_id)
    rows = await session.exec(query.order_by(col(Script.name), col(Schedule.name), col(Schedule.id)))
    return [
        ScheduleView(s, name, owner, str(status) if status else None) for s, name, owner, status in rows.all()
    ]


# --- firing ----------------------------------------------------------------------------------


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


async def _active_run(session: AsyncSession, schedule_id: int) -> bool:
    """Whether a run started by this schedule is not finished yet."""
    rows = await session.exec(
        select(Execution.status)
        .join(ScheduleFire, col(ScheduleFire.execution_id) == col(Execution.id))
        .where(col(ScheduleFire.schedule_id) == schedule_id)
        .order_by(col(ScheduleFire.fire_time).desc())
        .limit(5)
    )
    return any(status not in FINAL_STATUSES for status in rows.all())


async def _claim(
    db: Database, schedule_id: int, due_at: datetime, now: datetime, me: str
) -> ScheduleFire | None:
    """Claim the fire of `schedule_id` due at `due_at`; None when another process has it."""
    async with db.session() as session:
        schedule = await session.get(Schedule, schedule_id)
        if schedule is None or not schedule.enabled or schedule.next_fire_at != due_at:
            return None
        latest, following = due_at, next_times(schedule.cron, schedule.timezone, due_at)[0]
        if following <= now:  # down for a while: jump to the last due time, not one by one
            latest = max(due_at, previous_time(schedule.cron, schedule.timezone, now))
            following = next_times(schedule.cron, schedule.timezone, latest)[0]
            while following <= now:
                latest, following = following, next_times(schedule.cron, schedule.timezone, following)[0]
        missed = now - latest > MISSED_GRACE
        moved = await session.exec(
            update(Schedule)
            .where(col(Schedule.id) == schedule_id, col(Schedule.next_fire_at) == due_at)
            .values(next_fire_at=following, last_fire_at=latest)
        )
        if moved.rowcount != 1:
            await session.rollback()
            return None
        outcome = "skipped_missed" if missed and schedule.missed_policy == MissedPolicy.skip else "due"
        fire = ScheduleFire(schedule_id=schedule_id, fire_time=latest, claimed_by=me, outcome=outcome)
        session.add(fire)
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()
            return None
        return fire


async def _record(session: AsyncSession, fire: ScheduleFire, outcome: str, **values: Any) -> None:
    await session.exec(
        update(ScheduleFire)
        .where(
            col(ScheduleFire.schedule_id) == fire.schedule_id, col(ScheduleFire.fire_time) == fire.fire_time
        )
        .values(outcome=outcome, **values)
    )
    last = {"last_outcome": outcome}
    if values.get("execution_id"):
        last["last_execution_id"] = values["execution_id"]
    await session.exec(update(Schedule).where(col(Schedule.id) == fire.schedule_id).values(**last))
    await session.commit()


async def _start(db: Database, fire: ScheduleFire) -> None:
    """Start the run of a claimed fire (after the overlap policy said so); records the outcome."""
    async with db.session() as session:
        schedule = await session.get(Schedule, fire.schedule_id)
        if schedule is None:
            return
        ref = f"schedule:{fire.schedule_id}"
        try:
            execution = await start_for(
                session, schedule.owner_id, ref, "schedule", schedule.script_id, dict(schedule.parameters)
            )
        except OwnerRefused as exc:
            await session.rollback()
            await _pause(session, fire, str(exc))
            return
        except ServiceError as exc:
            await session.rollback()
            await _record(session, fire, "error", message=exc.message[:500])
            return
        await _record(session, fire, "started", execution_id=execution.id, message=None)


async def _pause(session: AsyncSession, fire: ScheduleFire, reason: str) -> None:
    schedule = await session.get(Schedule, fire.schedule_id)
    assert schedule is not None
    schedule.enabled, schedule.next_fire_at = False, None
    schedule.paused_reason = f"paused: {reason}"[:255]
    audit.record(
        session,
        Actor(None),
        "schedule.paused",
        "schedule",
        schedule.id,
        actor_name=f"schedule:{schedule.id}",
        reason=reason,
        fire_time=fire.fire_time.isoformat(),
    )
    await session.commit()
    await _record(session, fire, "paused_owner", message=reason[:500])


async def _fire(db: Database, schedule_id: int, due_at: datetime, now: datetime, me: str) -> bool:
    fire = await _claim(db, schedule_id, due_at, now, me)
    if fire is None:
        return False
    if fire.outcome == "skipped_missed":
        async with db.session() as session:
            await _record(session, fire, "skipped_missed", message="the server was not running at this time")
        return True
    async with db.session() as session:
        schedule = await session.get(Schedule, schedule_id)
        assert schedule is not None
        policy = schedule.overlap_policy
        busy = policy != OverlapPolicy.allow and await _active_run(session, schedule_id)
        if busy and policy == OverlapPolicy.queue:
            waiting = (
                await session.exec(
                    select(ScheduleFire.fire_time).where(
                        col(ScheduleFire.schedule_id) == schedule_id, col(ScheduleFire.outcome) == "waiting"
                    )
                )
            ).first()
            if waiting is None:
                await _record(session, fire, "waiting", message="the previous run is still going")
                return True
        if busy:
            await _record(session, fire, "skipped_overlap", message="the previous run is still going")
            return True
    await _start(db, fire)
    return True


async def _start_waiting(db: Database, me: str) -> None:
    """Start queued fires (overlap policy `queue`) whose schedule has no active run any more."""
    async with db.session() as session:
        waiting = list(
            (
                await session.exec(
                    select(ScheduleFire)
                    .where(col(ScheduleFire.outcome) == "waiting")
                    .order_by(col(ScheduleFire.fire_time))
                )
            ).all()
        )
    for fire in waiting:
        async with db.session() as session:
            if await _active_run(session, fire.schedule_id):
                continue
            taken = await session.exec(
                update(ScheduleFire)
                .where(
                    col(ScheduleFire.schedule_id) == fire.schedule_id,
                    col(ScheduleFire.fire_time) == fire.fire_time,
                    col(ScheduleFire.outcome) == "waiting",
                )
                .values(outcome="starting", claimed_by=me)
            )
            await session.commit()
            if taken.rowcount != 1:
                continue
        await _start(db, fire)


async def tick(db: Database, now: datetime | None = None, me: str | None = None) -> int:
    """Claim and handle every fire due at `now` (default: the current time); returns how many
    fires this process claimed. Safe to call from any number of processes at once."""
    now = now or utcnow()
    me = me or process_name()
    async with db.session() as session:
        due = await session.exec(
            select(Schedule.id, Schedule.next_fire_at)
            .where(col(Schedule.enabled), col(Schedule.next_fire_at) <= now)
            .order_by(col(Schedule.next_fire_at))
            .limit(BATCH)
        )
        rows = list(due.all())
    claimed = 0
    for schedule_id, due_at in rows:
        try:
            claimed += await _fire(db, int(schedule_id), due_at, now, me)
        except Exception:  # one broken schedule must not stop the others
            log.exception("schedule %s: firing failed", schedule_id)
    await _start_waiting(db, me)
    return claimed


async def seconds_to_next(db: Database) -> float:
    """Seconds until the earliest enabled fire time, between MIN_ and MAX_IDLE_SECONDS."""
    async with db.session() as session:
        earliest = (
            await session.exec(
                select(Schedule.next_fire_at)
                .where(col(Schedule.enabled))
                .order_by(col(Schedule.next_fire_at))
                .limit(1)
            )
        ).first()
    if earliest is None:
        return MAX_IDLE_SECONDS
    return min(max((earliest - utcnow()).total_seconds(), MIN_IDLE_SECONDS), MAX_IDLE_SECONDS)


async def run_scheduler(db: Database) -> None:
    """Fire schedules until cancelled: a tick, then sleep until the next fire time (at most
    MAX_IDLE_SECONDS, so schedules saved by other processes are seen quickly)."""
    me = process_name()
    while True:
        try:
            await tick(db, me=me)
            await asyncio.sleep(await seconds_to_next(db))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("scheduler tick failed; retrying")
            await asyncio.sleep(MAX_IDLE_SECONDS)
