"""`/api/v1/scripts`: the script library (viewers read, operators and admins write)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, Response

from opscraft.api.deps import CurrentActor, Session, permitted
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
    return ScriptSaved.saved(await scripts.create(session, actor, body))


@router.get(
    "/{script_id}", response_model=ScriptOut, summary="Get a script", responses=error_responses(*AUTHED, 404)
)
async def get_script(script_id: IdPath, session: Session, actor: CurrentActor) -> ScriptOut:
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
    return ScriptSaved.saved(await scripts.update(session, actor, script_id, body))


@router.delete(
    "/{script_id}",
    dependencies=[permitted(Permission.edit_scripts)],
    status_code=204,
    summary="Delete a script (soft: past executions stay readable)",
    responses=error_responses(*AUTHED, 404),
)
async def delete_script(script_id: IdPath, session: Session, actor: CurrentActor) -> Response:
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
    rows, total = await scripts.list_versions(session, actor, script_id, skip=skip, limit=limit)
    return Page(items=[VersionSummary.of(v) for v in rows], total=total, skip=skip, limit=limit)


@router.get(
    "/{script_id}/versions/{number}",
    response_model=VersionOut,
    summary="One version with its content",
    responses=error_responses(*AUTHED, 404),
)
async def get_version(script_id: IdPath, number: IdPath, session: Session, actor: CurrentActor) -> VersionOut:
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
    options = body or RollbackRequest()
    result = await scripts.rollback(
        session,
        actor,
        script_id,
        number,
        acknowledge_risks=options.acknowledge_risks,
        change_note=options.change_note,
    )
    return ScriptSaved.saved(result)
