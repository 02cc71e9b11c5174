"""Chained runs: `/api/v1/scripts/{id}/chains` ("then run" links) and
`/api/v1/executions/{id}/chain` (the runs a run was started by and started). Rules:
services/chains.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from opscraft.api.deps import NO_BODY, CurrentActor, Session, permitted
from opscraft.api.executions_schemas import StoredRunOptions
from opscraft.api.schemas import AUTHED, CheckedByService, IdPath, Limit, Page, Skip, error_responses
from opscraft.api.stored_problem import StoredProblem
from opscraft.db import stored_shapes
from opscraft.db.models import ChainLink
from opscraft.services import chains
from opscraft.services.chains import ChainStep, LinkChanges, LinkIn
from opscraft.services.permissions import Permission

router = APIRouter(tags=["chains"])
PATH = "/api/v1/scripts/{script_id}/chains"


class LinkOut(BaseModel):
    """A chain link as the API shows it: when a run of `script_id` ends with `outcome`, start
    `target_script_id` with `parameters` plus the source run's values renamed by `mapping`.
    """

    id: int
    script_id: int
    target_script_id: int
    target_script_name: str | None
    outcome: str
    mapping: dict[str, str]
    parameters: dict[str, Any]
    enabled: bool
    terraform_action: str | None = Field(
        description="Terraform scripts only: the action of the runs it starts (`plan` or `apply`); "
        "null for other script types"
    )
    terraform_workspace: str | None = Field(
        description="Terraform scripts only: the workspace of the runs it starts; null for other script types"
    )
    run_options: StoredRunOptions
    owner_id: int | None = Field(description="The link's author: the user who last saved it")
    owner_name: str | None
    created_at: datetime
    updated_at: datetime
    stored_problem: StoredProblem

    @classmethod
    def of(cls, link: ChainLink, target_name: str | None, owner_name: str | None) -> LinkOut:
        """Build the API shape of a stored link, given its target script's and owner's names (None once
        deleted).
        """
        assert link.id is not None
        return cls(
            id=link.id,
            script_id=link.script_id,
            target_script_id=link.target_script_id,
            target_script_name=target_name,
            outcome=str(link.outcome),
            mapping=link.mapping,
            parameters=link.parameters,
            enabled=link.enabled,
            terraform_action=link.terraform_action,
            terraform_workspace=link.terraform_workspace,
            run_options=link.run_options,
            owner_id=link.owner_id,
            owner_name=owner_name,
            created_at=link.created_at,
            updated_at=link.updated_at,
            stored_problem=stored_shapes.note(link),
        )


async def _out(session: Session, link: ChainLink) -> LinkOut:
    names = await chains.script_names(session, {link.target_script_id})
    return LinkOut.of(link, names.get(link.target_script_id), await chains.owner_name(session, link))


class ChainStepOut(BaseModel):
    """One firing of a chain link: the source run, the run it started (if any) and how the start went."""

    link_id: int | None
    source_execution_id: int
    source_script_name: str | None = Field(
        default=None,
        description="Set in `started_by` (the run that started this one); in `started` it is this run",
    )
    execution_id: int | None = Field(description="The chained run; None when it did not start")
    target_script_id: int
    target_script_name: str | None = Field(
        default=None, description="Set in `started`; in `started_by` the target is this run"
    )
    status: str = Field(description="pending, starting, started, refused or error")
    error: str | None
    created_at: datetime


class ExecutionChainOut(BaseModel):
    """A run's place in chains: the firing that started it and the firings its end caused."""

    started_by: ChainStepOut | None = Field(description="The firing that started this run, if chained")
    started: list[ChainStepOut] = Field(description="The firings this run's end caused")


def _step(step: ChainStep, *, source_side: bool) -> ChainStepOut:
    run = step.run
    return ChainStepOut(
        link_id=run.link_id,
        source_execution_id=run.source_execution_id,
        source_script_name=step.script_name if source_side else None,
        execution_id=run.execution_id,
        target_script_id=run.target_script_id,
        target_script_name=None if source_side else step.script_name,
        status=str(run.status),
        error=run.error,
        created_at=run.created_at,
    )


@router.get(
    PATH,
    response_model=Page[LinkOut],
    summary='A script\'s "then run" links',
    responses=error_responses(*AUTHED, 404),
)
async def list_links(
    script_id: IdPath, session: Session, actor: CurrentActor, skip: Skip = 0, limit: Limit = 50
) -> Page[LinkOut]:
    """Needs view_scripts (every role). A page (`{items, total, skip, limit}`, `limit` at most
    500) of the links whose source is this script, oldest first; 404 when the script is unknown or
    deleted."""
    rows, total = await chains.list_for_script(session, actor, script_id, skip=skip, limit=limit)
    return Page(items=[await _out(session, link) for link in rows], total=total, skip=skip, limit=limit)


@router.post(
    PATH,
    dependencies=[permitted(Permission.edit_scripts)],
    response_model=LinkOut,
    status_code=201,
    summary='Add a "then run" link (422 naming target_script_id for a cycle; 409 for a duplicate)',
    responses=error_responses(*AUTHED, 404, 409),
)
async def create_link(
    script_id: IdPath, body: Annotated[LinkIn, CheckedByService], session: Session, actor: CurrentActor
) -> LinkOut:
    """Operator or admin (edit_scripts). When a run of this script ends with `outcome` (success;
    failure: failed, timed_out or error; any), `target_script_id` starts on behalf of that run's
    user. `mapping` takes values from the run's facts by JSON pointer (`/parameters/X`,
    `/outputs/X`, `/run/id`, `/run/status`, `/run/exit_code`). 422 naming `target_script_id` for a
    cycle (with its path) or an unknown target, `mapping.X` or `parameters.X` for what the target
    refuses, `terraform_action` or `terraform_workspace` as a manual run of the target would be
    refused (`plan` or `apply` and the workspace of a Terraform target's run), `run_options.KEY`
    likewise (`limit`, `tags`, `skip_tags`, `check`, `diff` of an Ansible target's run);
    409 for a second link with the same target and outcome; 404 for an unknown script.
    Audited as `chain_link.create`."""
    return await _out(session, await chains.create(session, actor, script_id, body))


@router.get(
    PATH + "/{link_id}", response_model=LinkOut, summary="A link", responses=error_responses(*AUTHED, 404)
)
async def get_link(script_id: IdPath, link_id: IdPath, session: Session, actor: CurrentActor) -> LinkOut:
    """Needs view_scripts (every role). 404 when unknown or of another script."""
    return await _out(session, await chains.get(session, actor, link_id, script_id))


@router.put(
    PATH + "/{link_id}",
    dependencies=[permitted(Permission.edit_scripts)],
    response_model=LinkOut,
    summary="Change a link's settings (fields left out keep their values; you become its author)",
    responses=error_responses(*AUTHED, 404, 409),
)
async def update_link(
    script_id: IdPath,
    link_id: IdPath,
    body: Annotated[LinkChanges, CheckedByService],
    session: Session,
    actor: CurrentActor,
) -> LinkOut:
    """Operator or admin (edit_scripts). Fields left out keep their stored values; checked as on
    create (422 for a cycle or a refused mapping, 409 for a duplicate). You become its author. 404
    when unknown or of another script. Audited as `chain_link.update`; a body that changes
    nothing (`{}`, or the values it has) writes nothing and is not audited. 409 naming each
    field changed since the edit's `base` (nothing written; no `base`: last write wins)."""
    return await _out(session, await chains.update_link(session, actor, link_id, body, script_id))


@router.delete(
    PATH + "/{link_id}",
    status_code=204,
    summary="Delete a link",
    responses=error_responses(*AUTHED, 404),
    dependencies=[permitted(Permission.edit_scripts), NO_BODY],
)
async def delete_link(script_id: IdPath, link_id: IdPath, session: Session, actor: CurrentActor) -> Response:
    """Operator or admin (edit_scripts). Firings it already caused stay recorded. 404 when
    unknown or of another script. Audited as `chain_link.delete`."""
    await chains.delete(session, actor, link_id, script_id)
    return Response(status_code=204)


@router.get(
    "/api/v1/executions/{execution_id}/chain",
    response_model=ExecutionChainOut,
    summary="The chained runs around a run: the run that started it, the runs it started",
    responses=error_responses(*AUTHED, 404),
)
async def execution_chain(execution_id: IdPath, session: Session, actor: CurrentActor) -> ExecutionChainOut:
    """Needs view_scripts (every role). `started_by`: the firing that started this run (null
    when it was not chained); `started`: each firing its end caused, with the new run's id or why
    it did not start (`refused`, `error`). 404 when the execution is unknown."""
    chain = await chains.chain_of(session, actor, execution_id)
    return ExecutionChainOut(
        started_by=_step(chain.started_by, source_side=True) if chain.started_by else None,
        started=[_step(s, source_side=False) for s in chain.started],
    )
