"""`/api/v1/scripts/{id}/schedules` (CRUD), `/api/v1/schedules` (overview). Rules: services/schedules.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field, StringConstraints

from opscraft.api.deps import NO_BODY, CurrentActor, Session, permitted
from opscraft.api.executions_schemas import StoredRunOptions
from opscraft.api.schemas import AUTHED, CheckedByService, IdPath, Limit, Page, Skip, error_responses
from opscraft.db.models.automation import MissedPolicy, OverlapPolicy
from opscraft.db.types import utcnow
from opscraft.services import schedules
from opscraft.services.permissions import Permission
from opscraft.services.schedules import PREVIEW, ScheduleChanges, ScheduleIn, ScheduleView

router = APIRouter(tags=["schedules"])
PATH = "/api/v1/scripts/{script_id}/schedules"
TZ_QUERY = Query(
    max_length=64, description="Show `next_fire_times_local` in this IANA zone (default: the schedule's)"
)
# Trimmed as a schedule's `timezone` is in a body: `?tz=%20UTC` was a 422 where `" UTC"` was UTC.
Zone = Annotated[str | None, StringConstraints(strip_whitespace=True), TZ_QUERY]


def _check_tz(tz: str | None) -> None:
    """422 naming `tz` for an unknown zone even when the list is empty (no row would check it)."""
    if tz:  # empty: each schedule's own zone, as `ScheduleOut.of` reads it
        schedules.check_timezone(tz, field="tz")


class ScheduleOut(BaseModel):
    """A schedule as the API shows it: its cron rule and zone, policies, the next fire times (UTC and local)
    and how its last fire went.
    """

    id: int
    script_id: int
    script_name: str
    script_deleted: bool = Field(
        description="Its script was deleted (the schedule is paused; only `GET /api/v1/schedules` lists it, "
        "and it can still be deleted)"
    )
    name: str
    cron: str
    timezone: str
    parameters: dict[str, Any]
    enabled: bool
    paused_reason: str | None
    owner_id: int | None
    owner_name: str | None
    missed_policy: MissedPolicy
    overlap_policy: OverlapPolicy
    terraform_action: str | None = Field(
        description="Terraform scripts only: the action of the runs it starts (`plan` or `apply`); "
        "null for other script types"
    )
    terraform_workspace: str | None = Field(
        description="Terraform scripts only: the workspace of the runs it starts; null for other script types"
    )
    run_options: StoredRunOptions
    next_fire_times: list[datetime] = Field(description=f"The next {PREVIEW} fire times, UTC")
    next_fire_times_local: list[datetime] = Field(description="The same, in the requested time zone")
    last_fire_at: datetime | None
    last_outcome: str | None
    last_message: str | None = Field(
        description="Why the last fire started no run (e.g. a parameter the script refuses); "
        "null when it started one"
    )
    last_execution_id: int | None
    last_status: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, view: ScheduleView, tz: str | None = None) -> ScheduleOut:
        """Build the API shape of a schedule; the next fire times are computed now, shown in `tz` when given
        (else the schedule's zone).

        Raises Invalid (422, field `tz`) for an unknown or refused time zone.
        """
        s = view.schedule
        assert s.id is not None
        upcoming = view.next_fires(utcnow(), PREVIEW)
        # a stored zone is shown as stored (one saved before a rule refused it, e.g. Factory, too)
        zone = schedules.check_timezone(tz, field="tz") if tz else view.zone()
        return cls(
            id=s.id,
            script_id=s.script_id,
            script_name=view.script_name,
            script_deleted=view.script_deleted,
            name=s.name,
            cron=s.cron,
            timezone=s.timezone,
            parameters=s.parameters,
            enabled=s.enabled,
            paused_reason=s.paused_reason if not s.enabled else view.not_firing(),
            owner_id=s.owner_id,
            owner_name=view.owner_name,
            missed_policy=s.missed_policy,
            overlap_policy=s.overlap_policy,
            terraform_action=s.terraform_action,
            terraform_workspace=s.terraform_workspace,
            run_options=s.run_options,
            next_fire_times=upcoming,
            next_fire_times_local=[t.astimezone(zone) for t in upcoming],
            last_fire_at=s.last_fire_at,
            last_outcome=s.last_outcome,
            last_message=s.last_message,
            last_execution_id=s.last_execution_id,
            last_status=view.last_status,
            created_at=s.created_at,
            updated_at=s.updated_at,
        )


@router.get(
    "/api/v1/schedules",
    response_model=Page[ScheduleOut],
    summary="Every schedule, with its next fire times and last result",
    responses=error_responses(*AUTHED),
)
async def overview(
    session: Session,
    actor: CurrentActor,
    tz: Zone = None,
    skip: Skip = 0,
    limit: Limit = 50,
) -> Page[ScheduleOut]:
    """Needs view_scripts (every role). A page (`{items, total, skip, limit}`, `limit` at most
    500) of every schedule, by script and name, each with its next 5 fire times (UTC and in `tz`,
    default the schedule's own zone) and its last fire's outcome, message and run; those of a
    deleted script too (`script_deleted`, paused), so they can be found and deleted. 422 naming
    `tz` when it is not an IANA zone."""
    _check_tz(tz)
    rows, total = await schedules.list_schedules(session, actor, skip=skip, limit=limit)
    return Page(items=[ScheduleOut.of(v, tz) for v in rows], total=total, skip=skip, limit=limit)


@router.get(
    PATH,
    response_model=Page[ScheduleOut],
    summary="A script's schedules",
    responses=error_responses(*AUTHED, 404),
)
async def list_for_script(
    script_id: IdPath,
    session: Session,
    actor: CurrentActor,
    tz: Zone = None,
    skip: Skip = 0,
    limit: Limit = 50,
) -> Page[ScheduleOut]:
    """Needs view_scripts (every role). As `GET /api/v1/schedules` for one script (a page of its
    schedules by name); 404 when the script is unknown or deleted, 422 naming `tz` when it is not
    an IANA zone."""
    _check_tz(tz)
    rows, total = await schedules.list_schedules(session, actor, script_id, skip=skip, limit=limit)
    return Page(items=[ScheduleOut.of(v, tz) for v in rows], total=total, skip=skip, limit=limit)


@router.post(
    PATH,
    dependencies=[permitted(Permission.edit_scripts, schedules.MANAGE)],
    response_model=ScheduleOut,
    status_code=201,
    summary="Add a schedule (5-field cron in a time zone); runs start on your behalf",
    responses=error_responses(*AUTHED, 404, 409),
)
async def create(
    script_id: IdPath, body: Annotated[ScheduleIn, CheckedByService], session: Session, actor: CurrentActor
) -> ScheduleOut:
    """Operator or admin (edit_scripts). 5-field cron (croniter) in an IANA `timezone`; 422
    naming `cron` (a field out of range, or no date ever matches), `timezone`, each parameter the
    script's resolver refuses, or `terraform_action` / `terraform_workspace` (a Terraform script's
    `plan` or `apply` and workspace, checked as a manual run's), or `run_options.KEY` (an Ansible
    script's `limit`, `tags`, `skip_tags`, `check`, `diff`, checked as a manual run's);
    409 naming `name` when the script has a schedule of that name
    (ignoring case and width); 404 for an unknown script. You become its owner: its runs start on
    your behalf, with your permissions at each fire. Audited as `schedule.create`."""
    schedule = await schedules.create(session, actor, script_id, body)
    assert schedule.id is not None
    return ScheduleOut.of(await schedules.view(session, actor, script_id, schedule.id))


@router.get(
    PATH + "/{schedule_id}",
    response_model=ScheduleOut,
    summary="A schedule",
    responses=error_responses(*AUTHED, 404),
)
async def get_one(
    script_id: IdPath,
    schedule_id: IdPath,
    session: Session,
    actor: CurrentActor,
    tz: Zone = None,
) -> ScheduleOut:
    """Needs view_scripts (every role). 404 when the schedule is unknown or belongs to another
    script; 422 naming `tz` when it is not an IANA zone."""
    return ScheduleOut.of(await schedules.view(session, actor, script_id, schedule_id), tz)


@router.put(
    PATH + "/{schedule_id}",
    dependencies=[permitted(Permission.edit_scripts, schedules.MANAGE)],
    response_model=ScheduleOut,
    summary="Change a schedule (fields left out keep their values; you own it; a paused one resumes)",
    responses=error_responses(*AUTHED, 404, 409),
)
async def update(
    script_id: IdPath,
    schedule_id: IdPath,
    body: Annotated[ScheduleChanges, CheckedByService],
    session: Session,
    actor: CurrentActor,
) -> ScheduleOut:
    """Operator or admin (edit_scripts). Fields left out keep their stored values; checked as on
    create (422 naming the field, 409 for a taken name). You become its owner, a schedule the system
    paused resumes (unless `enabled` is sent), and the next fire time is computed from now. 404 when
    unknown or of another script. Audited as `schedule.update`. A body that changes nothing (`{}`,
    or the values it has) writes nothing: no new owner or fire time, no event. 409 naming each
    field changed since the edit's `base` (nothing written; no `base`: last write wins)."""
    await schedules.update_schedule(session, actor, schedule_id, body, script_id)
    return ScheduleOut.of(await schedules.view(session, actor, script_id, schedule_id))


@router.delete(
    PATH + "/{schedule_id}",
    dependencies=[permitted(Permission.edit_scripts, schedules.MANAGE), NO_BODY],
    status_code=204,
    summary="Delete a schedule",
    responses=error_responses(*AUTHED, 404),
)
async def delete(script_id: IdPath, schedule_id: IdPath, session: Session, actor: CurrentActor) -> Response:
    """Operator or admin (edit_scripts). Runs it already started are kept. 404 when unknown or of
    another script. Audited as `schedule.delete`."""
    await schedules.delete(session, actor, schedule_id, script_id)
    return Response(status_code=204)
