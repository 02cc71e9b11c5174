"""`/api/v1/scripts`: the script library (viewers read, operators and admins write)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response

from opscraft.api.deps import NO_BODY, CurrentActor, Session, permitted
from opscraft.api.schemas import (
    AUTHED,
    MAX_ID,
    CheckedByService,
    IdPath,
    Limit,
    Page,
    Skip,
    error_responses,
    filter_query,
)
from opscraft.api.scripts_schemas import (
    DiffOut,
    RollbackRequest,
    ScriptOut,
    ScriptSaved,
    ScriptSummary,
    VersionOut,
    VersionSummary,
)
from opscraft.db.models.scripts import ScriptStatus, ScriptType
from opscraft.services import scripts
from opscraft.services.bodies import WHOLE_TEXT
from opscraft.services.invisible import FilterText
from opscraft.services.permissions import Permission
from opscraft.services.scripts import ScriptCreate, ScriptQuery, ScriptUpdate, Sort

router = APIRouter(prefix="/api/v1/scripts", tags=["scripts"])


@router.get(
    "",
    response_model=Page[ScriptSummary],
    summary="List and search scripts (without their content)",
    responses=error_responses(*AUTHED),
)
async def list_scripts(
    session: Session,
    actor: CurrentActor,
    search: Annotated[
        FilterText | None, filter_query(scripts.MAX_SEARCH, "Words matched in name, description and tags")
    ] = None,
    script_type: ScriptType | None = None,
    status: ScriptStatus | None = None,
    tag: Annotated[FilterText | None, filter_query(scripts.MAX_TAG)] = None,
    sort: Sort = "name",
    skip: Skip = 0,
    limit: Limit = 50,
) -> Page[ScriptSummary]:
    """Needs view_scripts (every role). Live scripts without their content, as `{items, total,
    skip, limit}`. `search`: every word must match name, description or tags (any case; at most
    200 characters); `tag` one tag (at most 50); `script_type`, `status`; `sort` name, -name,
    updated_at or -updated_at. A filter with a control character or over its bound is 422."""
    query = ScriptQuery(search, script_type, status, tag, sort, skip, limit)
    rows, total = await scripts.list_scripts(session, actor, query)
    return Page(items=[ScriptSummary.of(s) for s in rows], total=total, skip=skip, limit=limit)


@router.post(
    "",
    dependencies=[permitted(Permission.edit_scripts)],
    response_model=ScriptSaved,
    status_code=201,
    summary="Create a script (version 1)",
    responses=error_responses(*AUTHED, 409),
)
async def create_script(
    body: Annotated[ScriptCreate, CheckedByService], session: Session, actor: CurrentActor
) -> ScriptSaved:
    """Operator or admin (edit_scripts). Saved as version 1. 422 naming every problem at once
    (fields, parameter declarations, content syntax, timeout, Ansible settings); content with
    dangerous patterns needs `acknowledge_risks: true` (422 otherwise). 409 naming `name` when
    taken (ignoring case, also when requests race). The answer adds lint `findings`, `lint` and
    `notices`. Audited as `script.create`."""
    return ScriptSaved.saved(await scripts.create(session, actor, body))


@router.get(
    "/{script_id}", response_model=ScriptOut, summary="Get a script", responses=error_responses(*AUTHED, 404)
)
async def get_script(script_id: IdPath, session: Session, actor: CurrentActor) -> ScriptOut:
    """Needs view_scripts (every role). The script with its current content and parameter
    declarations. 404 when unknown or deleted."""
    return ScriptOut.of(await scripts.get(session, actor, script_id))


@router.put(
    "/{script_id}",
    dependencies=[permitted(Permission.edit_scripts)],
    response_model=ScriptSaved,
    summary="Update a script (partial); content, type, parameter or run-setting changes add a version",
    responses=error_responses(*AUTHED, 404, 409),
)
async def update_script(
    script_id: IdPath, body: Annotated[ScriptUpdate, CheckedByService], session: Session, actor: CurrentActor
) -> ScriptSaved:
    """Operator or admin (edit_scripts). Fields left out keep their values; a change of content,
    type, parameters or run settings adds a version. 409 when `base_version` is not the current
    version (someone saved meanwhile), when a field sent with a new value was changed since the
    edit's `base` (named in `errors`, nothing written; no `base`: last write wins), or the new name
    is taken; 422 as for create (`base.<field>` for a bad base). Values stored by
    schedules, webhooks or links that the new parameters refuse are saved and reported in
    `notices`. 404 when unknown or deleted. Audited as `script.update`."""
    return ScriptSaved.saved(await scripts.update(session, actor, script_id, body))


@router.delete(
    "/{script_id}",
    dependencies=[permitted(Permission.edit_scripts), NO_BODY],
    status_code=204,
    summary="Delete a script (soft: past executions stay readable)",
    responses=error_responses(*AUTHED, 404),
)
async def delete_script(script_id: IdPath, session: Session, actor: CurrentActor) -> Response:
    """Operator or admin (edit_scripts). A soft delete: the script leaves the library, its past
    runs stay readable; its schedules are paused and the "then run" links of other scripts to it
    disabled, in the same transaction. 404 when unknown or already deleted. Audited as
    `script.delete`."""
    await scripts.delete(session, actor, script_id)
    return Response(status_code=204)


@router.get(
    "/{script_id}/versions",
    response_model=Page[VersionSummary],
    summary="Version history, newest first",
    responses=error_responses(*AUTHED, 404),
)
async def list_versions(
    script_id: IdPath,
    session: Session,
    actor: CurrentActor,
    skip: Skip = 0,
    limit: Limit = 50,
) -> Page[VersionSummary]:
    """Needs view_scripts (every role). `{items, total, skip, limit}` without content, newest
    first. 404 when the script is unknown or deleted."""
    rows, total = await scripts.list_versions(session, actor, script_id, skip=skip, limit=limit)
    return Page(items=[VersionSummary.of(v) for v in rows], total=total, skip=skip, limit=limit)


@router.get(
    "/{script_id}/versions/{number}",
    response_model=VersionOut,
    summary="One version with its content",
    responses=error_responses(*AUTHED, 404),
)
async def get_version(script_id: IdPath, number: IdPath, session: Session, actor: CurrentActor) -> VersionOut:
    """Needs view_scripts (every role). One version with its content and author. 404 when the
    script or that version number is unknown."""
    return VersionOut.of(await scripts.get_version(session, actor, script_id, number))


@router.get(
    "/{script_id}/diff",
    response_model=DiffOut,
    summary="Unified diff between two versions",
    responses=error_responses(*AUTHED, 404),
)
async def diff_versions(
    script_id: IdPath,
    session: Session,
    actor: CurrentActor,
    from_version: Annotated[int, Query(alias="from", ge=1, le=MAX_ID), WHOLE_TEXT],
    to_version: Annotated[int, Query(alias="to", ge=1, le=MAX_ID), WHOLE_TEXT],
) -> DiffOut:
    """Needs view_scripts (every role). A unified diff (difflib) of the content of versions
    `from` and `to`, and the names of the other versioned fields that differ. 404 when the script
    or either version is unknown."""
    return DiffOut.of(await scripts.diff(session, actor, script_id, from_version, to_version))


@router.post(
    "/{script_id}/rollback/{number}",
    dependencies=[permitted(Permission.edit_scripts)],
    response_model=ScriptSaved,
    summary="Roll back: add a new version equal to version `number`",
    responses=error_responses(*AUTHED, 404, 409),
)
async def rollback(
    script_id: IdPath,
    number: IdPath,
    session: Session,
    actor: CurrentActor,
    body: Annotated[RollbackRequest | None, Body()] = None,
) -> ScriptSaved:
    """Operator or admin (edit_scripts). Adds a new version equal to version `number` (content,
    type, parameters, run settings, label); history is never rewritten. 409 when that is the
    current version or equal to it, its shared inventory was deleted, or `base_version` is given
    and someone saved since; 422 when its content has
    dangerous patterns and `acknowledge_risks` is not true. 404 when the script or version is
    unknown. Audited as `script.rollback`."""
    options = body or RollbackRequest()
    result = await scripts.rollback(
        session,
        actor,
        script_id,
        number,
        acknowledge_risks=options.acknowledge_risks,
        change_note=options.change_note,
        base_version=options.base_version,
    )
    return ScriptSaved.saved(result)
