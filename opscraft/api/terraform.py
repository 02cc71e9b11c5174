"""Terraform state: the HTTP backend runs use (`/api/v1/terraform/state/...`, per-run Basic
credentials) and the operators' routes under `/api/v1/scripts/{id}/terraform/states`; saved
plans: `/api/v1/executions/{id}/terraform/plan` (read) and `.../apply` (apply exactly it)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from opscraft.api.deps import NO_BODY, CurrentActor, Session, permitted
from opscraft.api.executions_schemas import ExecutionOut
from opscraft.api.schemas import AUTHED, IdPath, Limit, Page, Skip, error_responses
from opscraft.db.models import Execution, TerraformPlan, TerraformStateVersion
from opscraft.services import terraform_plans, terraform_state
from opscraft.services.bodies import WHOLE_TEXT, Body
from opscraft.services.permissions import Permission
from opscraft.services.terraform_state import MAX_LOCK_ID, Locked

router = APIRouter(tags=["terraform"])
BACKEND = "/api/v1/terraform/state/{script_id}/{workspace}"
STATES = "/api/v1/scripts/{script_id}/terraform/states"
Workspace = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
VersionNumber = Annotated[int, Path(ge=1, le=2**31 - 1), WHOLE_TEXT]
LOCK_ID_TEXT = (
    f"The lock's ID: 1-{MAX_LOCK_ID} characters, no control or invisible character "
    "(Terraform sends a UUID); anything else is refused with a 422 naming `ID`"
)
# The bound as the schema states it; `terraform_state.check_lock_id` enforces it (and says why).
LOCK_ID_BOUNDS = {"minLength": 1, "maxLength": MAX_LOCK_ID}
# `?ID=` on POST and DELETE: the lock the run holds, when it holds one.
LockIdQuery = Annotated[
    str | None,
    Query(description=LOCK_ID_TEXT + "; only while the state is locked", json_schema_extra=LOCK_ID_BOUNDS),
]


class LockInfo(BaseModel):
    """Terraform's lock info, as its HTTP backend sends it with LOCK (Terraform's
    `statemgr.LockInfo`; field names are Terraform's)."""

    ID: str = Field(description=LOCK_ID_TEXT, json_schema_extra=LOCK_ID_BOUNDS)
    Operation: str | None = None
    Info: str | None = None
    Who: str | None = None
    Version: str | None = None
    Created: str | None = None
    Path: str | None = None


LOCKED = {
    423: {
        "description": "Locked by another run: the body is the holder's lock info (Terraform's protocol)",
        "model": LockInfo,
    }
}
BACKEND_ERRORS = {**error_responses(401, 403, 422), **LOCKED}
# LOCK and UNLOCK read their body themselves (lock info is stored as sent); the schema says its shape.
LOCK_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/LockInfo"}}},
    }
}


async def _run(
    request: Request, session: Session, script_id: int, workspace: str, *, write: bool = False
) -> Execution:
    user, password = terraform_state.basic_credentials(request.headers.get("authorization"))
    return await terraform_state.authenticate_run(session, script_id, workspace, user, password, write=write)


def _locked(exc: Locked) -> JSONResponse:
    return JSONResponse(exc.info, status_code=423)


@router.get(
    BACKEND,
    summary="Backend: the current state (runs only)",
    responses={**BACKEND_ERRORS, 204: {"description": "No state yet"}},
)
async def backend_get(
    request: Request, session: Session, script_id: IdPath, workspace: Workspace
) -> Response:
    """Terraform's `http` backend protocol (developer.hashicorp.com/terraform/language/backend/http):
    only a running run, with the HTTP Basic credentials it was given (`TF_HTTP_USERNAME`
    `run-<id>`, `TF_HTTP_PASSWORD`) for this script and workspace; no user token works. 200 with
    the current state (JSON), 204 when there is none yet. 401 for missing or wrong credentials, or
    credentials of another state; 403 when the run is over."""
    run = await _run(request, session, script_id, workspace)
    text = await terraform_state.read(session, run, workspace)
    if text is None:
        return Response(status_code=204)
    return Response(text, media_type="application/json")


@router.post(BACKEND, summary="Backend: store a new state version (runs only)", responses=BACKEND_ERRORS)
async def backend_post(
    request: Request, session: Session, script_id: IdPath, workspace: Workspace, ID: LockIdQuery = None
) -> Response:
    """Terraform's `http` backend: a running run of this script and workspace that may change
    the state (HTTP Basic run credentials; 401 as for GET, 403 for a run that is over or only
    plans). Stores the body as the next state version; while the state is locked, `?ID=` must be
    the holder's lock id (423 with the holder's lock info otherwise; 422 naming `ID` when
    malformed). 413 over `OPSCRAFT_MAX_STATE_BYTES`; 422 when not UTF-8. Audited as
    `terraform.state_write`."""
    run = await _run(request, session, script_id, workspace, write=True)
    body = await request.body()
    try:
        await terraform_state.write(session, run, workspace, body.decode(), ID)
    except UnicodeDecodeError:
        return JSONResponse({"detail": "the state must be UTF-8 JSON", "errors": []}, status_code=422)
    except Locked as exc:
        return _locked(exc)
    return Response(status_code=200)


@router.delete(
    BACKEND, summary="Backend: purge the state (versions are kept; runs only)", responses=BACKEND_ERRORS
)
async def backend_delete(
    request: Request, session: Session, script_id: IdPath, workspace: Workspace, ID: LockIdQuery = None
) -> Response:
    """Terraform's `http` backend: a running run that may change the state (HTTP Basic run
    credentials; 401, 403 as for POST). Empties the state: its versions are kept and can be rolled back to.
    While locked, `?ID=` must be the holder's lock id (423 with its lock info otherwise)."""
    run = await _run(request, session, script_id, workspace, write=True)
    try:
        await terraform_state.purge(session, run, workspace, ID)
    except Locked as exc:
        return _locked(exc)
    return Response(status_code=200)


@router.api_route(
    f"{BACKEND}/lock",
    methods=["LOCK"],
    openapi_extra=LOCK_BODY,
    summary="Backend: take the lock (runs only)",
    responses=BACKEND_ERRORS,
)
async def backend_lock(
    request: Request, session: Session, script_id: IdPath, workspace: Workspace
) -> Response:
    """Terraform's `http` backend (method LOCK): a running run with its HTTP Basic credentials
    (401, 403 as for GET). The body is Terraform's lock info (`ID` 1-64 characters, other fields
    at most 1,024; 422 naming the field otherwise). 200 with the lock info when taken (again by the
    same `ID`: idempotent); 423 with the holder's info when another run in progress holds it. A lock
    left by a run that is over is taken over (audited as `terraform.lock_release`)."""
    run = await _run(request, session, script_id, workspace)
    try:
        info = await terraform_state.lock(session, run, workspace, await request.body())
    except Locked as exc:
        return _locked(exc)
    return Response(json.dumps(info), media_type="application/json")


@router.api_route(
    f"{BACKEND}/lock",
    methods=["UNLOCK"],
    openapi_extra=LOCK_BODY,
    summary="Backend: release the lock (runs only)",
    responses=BACKEND_ERRORS,
)
async def backend_unlock(
    request: Request, session: Session, script_id: IdPath, workspace: Workspace
) -> Response:
    """Terraform's `http` backend (method UNLOCK): a running run with its HTTP Basic credentials
    (401, 403 as for GET). Releases the lock when the body's `ID` matches the holder's (423 with
    the holder's info otherwise); 200 also when nothing is locked. `terraform force-unlock` sends no
    lock info and gets 422: an admin breaks a lock with `DELETE
    /api/v1/scripts/{script_id}/terraform/states/{workspace}/lock`."""
    run = await _run(request, session, script_id, workspace)
    try:
        await terraform_state.unlock(session, run, workspace, await request.body())
    except Locked as exc:
        return _locked(exc)
    return Response(status_code=200)


class StateOut(BaseModel):
    """A script's Terraform state in one workspace: its current version and its lock (Terraform's HTTP
    backend LOCK/UNLOCK).
    """

    id: int
    script_id: int
    workspace: str
    current_version: int
    locked: bool = Field(description="Held by a run in progress: other runs wait for it")
    lock_ended: bool = Field(
        description="The lock below was left by a run that is over (killed before Terraform released it): "
        "it blocks nothing, the script's next run takes it over"
    )
    locked_by_execution: int | None
    locked_at: datetime | None
    lock_info: dict[str, object] | None
    updated_at: datetime

    @classmethod
    def of(cls, view: terraform_state.StateView) -> StateOut:
        """Build the API shape of a state; `locked` is false when the lock was left by a run that is over."""
        state = view.state
        assert state.id is not None
        return cls(
            id=state.id,
            script_id=state.script_id,
            workspace=state.workspace,
            current_version=state.current_version,
            locked=state.lock_id is not None and not view.lock_ended,
            lock_ended=view.lock_ended,
            locked_by_execution=state.locked_by_execution,
            locked_at=state.locked_at,
            lock_info=state.lock_info,
            updated_at=state.updated_at,
        )


class StateVersionOut(BaseModel):
    """One stored version of a Terraform state: its Terraform `serial` and `lineage`, size in bytes, hex
    SHA-256, and the run that wrote it.
    """

    number: int
    serial: int | None
    lineage: str | None
    size_bytes: int
    sha256: str
    execution_id: int | None
    created_by: int | None
    note: str
    created_at: datetime
    current: bool

    @classmethod
    def of(cls, version: TerraformStateVersion, current: int) -> StateVersionOut:
        """Build the API shape of a state version; `current` is true when its number is `current`."""
        fields = version.model_dump(include=set(cls.model_fields) - {"current"})
        return cls(**fields, current=version.number == current)


class StateVersionsOut(BaseModel):
    """One page of a state's versions, newest first, with the state itself."""

    state: StateOut
    versions: list[StateVersionOut] = Field(description="One page of the versions, newest first")
    total: int = Field(description="How many versions the state has")
    skip: int
    limit: int


class RolledBack(BaseModel):
    """The answer to a state rollback: the number of the new current version."""

    version: int


@router.get(
    STATES,
    response_model=Page[StateOut],
    summary="A script's Terraform states (operators)",
    responses=error_responses(*AUTHED, 404),
)
async def list_states(
    session: Session, actor: CurrentActor, script_id: IdPath, skip: Skip = 0, limit: Limit = 50
) -> Page[StateOut]:
    """Operator or admin (edit_scripts: states may hold secrets). A page (`{items, total, skip,
    limit}`, `limit` at most 500) of its states by workspace, each with its current version and
    lock (`locked` by a run in progress; `lock_ended` when left by a run that is over). 404 when
    the script is unknown, or is not a Terraform script and has no state."""
    rows, total = await terraform_state.list_states(session, actor, script_id, skip=skip, limit=limit)
    return Page(items=[StateOut.of(s) for s in rows], total=total, skip=skip, limit=limit)


@router.get(
    f"{STATES}/{{workspace}}/versions",
    response_model=StateVersionsOut,
    summary="Every version of a state, newest first (operators)",
    responses=error_responses(*AUTHED, 404),
)
async def list_versions(
    session: Session,
    actor: CurrentActor,
    script_id: IdPath,
    workspace: Workspace,
    skip: Skip = 0,
    limit: Limit = 50,
) -> StateVersionsOut:
    """Operator or admin (edit_scripts). The state and a page of its versions, newest first:
    number, serial, lineage, size, SHA-256, run, author, note; metadata only, no content. `total`
    counts them all (`skip`, `limit`: at most 500). 404 for an unknown script or workspace."""
    view, versions, total = await terraform_state.list_versions(
        session, actor, script_id, workspace, skip=skip, limit=limit
    )
    current = view.state.current_version
    return StateVersionsOut(
        state=StateOut.of(view),
        versions=[StateVersionOut.of(v, current) for v in versions],
        total=total,
        skip=skip,
        limit=limit,
    )


@router.get(
    f"{STATES}/{{workspace}}/versions/{{number}}",
    summary="Download a state version (operators, audited)",
    responses=error_responses(*AUTHED, 404),
)
async def download(
    session: Session, actor: CurrentActor, script_id: IdPath, workspace: Workspace, number: VersionNumber
) -> Response:
    """Operator or admin (edit_scripts). The version's state as a JSON attachment
    (`terraform-<script>-<workspace>-v<n>.tfstate`), decrypted: it may hold secrets in clear.
    404 for an unknown script, workspace or version. Audited as `terraform.state_download`."""
    text = await terraform_state.download(session, actor, script_id, workspace, number)
    filename = f"terraform-{script_id}-{workspace}-v{number}.tfstate"
    return Response(
        text,
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.post(
    f"{STATES}/{{workspace}}/versions/{{number}}/rollback",
    dependencies=[permitted(Permission.edit_scripts, terraform_state.ROLL_BACK), NO_BODY],
    response_model=RolledBack,
    summary="Make a version current again, as a new version (operators)",
    responses=error_responses(*AUTHED, 404, 409),
)
async def rollback(
    session: Session, actor: CurrentActor, script_id: IdPath, workspace: Workspace, number: VersionNumber
) -> RolledBack:
    """Operator or admin (edit_scripts). Adds a new version with that version's content (its serial
    raised, as Terraform requires); history is kept. 409 while a run in progress holds the lock, or
    when that is the current version or has its content. 404 for an unknown script, workspace or
    version. Audited as `terraform.state_rollback`."""
    return RolledBack(version=await terraform_state.rollback(session, actor, script_id, workspace, number))


@router.delete(
    f"{STATES}/{{workspace}}/lock",
    dependencies=[permitted(Permission.manage_settings), NO_BODY],
    status_code=204,
    summary="Break the lock a crashed run left (admins, audited)",
    responses=error_responses(*AUTHED, 404, 409),
)
async def break_lock(
    session: Session, actor: CurrentActor, script_id: IdPath, workspace: Workspace
) -> Response:
    """Admin only (manage_settings). Releases a lock a crashed run left (`locked_by_execution`
    names its holder). 409 when the state
    is not locked; 404 for an unknown script or workspace. Audited as `terraform.lock_break` with
    the holder's lock info."""
    await terraform_state.break_lock(session, actor, script_id, workspace)
    return Response(status_code=204)


PLAN = "/api/v1/executions/{execution_id}/terraform/plan"


class PlanOut(BaseModel):
    """The saved plan of a plan run: what it changes (from `terraform show -json`), the state
    it was made against, whether that state has changed since (`stale`), and its apply run."""

    execution_id: int
    script_id: int
    workspace: str
    script_version: int
    to_import: int = Field(description="Resources an import block brings into the state")
    to_add: int
    to_change: int
    to_destroy: int
    resources: list[dict[str, object]] = Field(
        description="Changed resources: address, actions; `importing` (true) for one an import block "
        "brings in, `previous_address` for one a moved block renames (their actions may be no-op)"
    )
    outputs: list[dict[str, object]] = Field(description="Changed outputs: name, actions")
    truncated: bool = Field(description="More than 1000 resources or outputs changed; the first are listed")
    prior_serial: int = Field(description="Serial of the state the plan was made against (0: none)")
    prior_lineage: str
    stale: bool = Field(description="The state changed since the plan: it can no longer be applied")
    apply_execution_id: int | None = Field(description="The run that applies it, if any")
    size_bytes: int
    sha256: str
    created_at: datetime

    @classmethod
    def of(cls, plan: TerraformPlan, stale: bool) -> PlanOut:
        """Build the API shape of a stored plan from its summary (resources, outputs); the encrypted plan
        file itself is never included.
        """
        detail = plan.summary or {}
        return cls(
            **plan.model_dump(exclude={"summary", "ciphertext", "salt", "nonce", "key_version", "id"}),
            resources=list(detail.get("resources", [])),
            outputs=list(detail.get("outputs", [])),
            truncated=bool(detail.get("truncated", False)),
            stale=stale,
        )


class PlanApply(Body):
    """Body of a reviewed plan's apply: which runner the apply runs on (default: the plan run's)."""

    model_config = {"extra": "forbid"}

    runner: Literal["docker", "local"] | None = Field(
        default=None, description="Default: the runner of the plan run"
    )


@router.get(
    PLAN,
    response_model=PlanOut,
    summary="The saved plan of a plan run and its summary",
    responses=error_responses(*AUTHED, 404),
)
async def get_plan(session: Session, actor: CurrentActor, execution_id: IdPath) -> PlanOut:
    """Needs view_scripts (every role). The summary of the plan saved by a successful plan run
    (from `terraform show -json`): counts, changed resources and outputs (the first 1000), the state
    it was made against and whether that changed since (`stale`), and its apply run. The plan file
    itself is never returned. 404 when the run saved no plan."""
    plan, stale = await terraform_plans.get(session, actor, execution_id)
    return PlanOut.of(plan, stale)


@router.post(
    f"{PLAN}/apply",
    dependencies=[permitted(Permission.edit_scripts, terraform_plans.APPLY_PLAN)],
    response_model=ExecutionOut,
    status_code=202,
    summary="Apply exactly this saved plan (operators; held for approval when the script requires it)",
    responses=error_responses(*AUTHED, 404, 409),
)
async def apply_plan(
    session: Session, actor: CurrentActor, execution_id: IdPath, body: PlanApply | None = None
) -> ExecutionOut:
    """Operator or admin (edit_scripts). Starts an `apply_plan` run of exactly this plan (the plan
    run's script version and parameters); `awaiting_approval` when the script requires approval.
    409 when the plan is stale, was already applied, or the script is not active; 422 for a bad
    `runner`; 404 when the run saved no plan. Audited as `terraform.plan_apply`."""
    execution = await terraform_plans.apply(
        session, actor, execution_id, runner=body.runner if body is not None else None
    )
    return ExecutionOut.of(execution)
