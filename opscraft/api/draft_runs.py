"""`/api/v1/scripts/{script_id}/test-runs`: run unsaved content of a script (services/draft_runs.py)."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import Field

from opscraft.api.deps import CurrentActor, Session, permitted
from opscraft.api.executions_schemas import AnsibleRunOptions, ExecutionOut, TerraformWorkspace
from opscraft.api.schemas import AUTHED, IdPath, error_responses
from opscraft.db.models.scripts import ScriptType
from opscraft.services import draft_runs
from opscraft.services.bodies import Body
from opscraft.services.errors import Invalid
from opscraft.services.input_words import NOT_EMPTY
from opscraft.services.parameters import Declarations, ParameterValues
from opscraft.services.permissions import Permission
from opscraft.services.storable import Text

router = APIRouter(prefix="/api/v1/scripts", tags=["executions"])


class TestRunCreate(Body):
    """The editor's unsaved content and the run's values; checked as a save would check them."""

    model_config = {"extra": "forbid"}

    content: Text = Field(json_schema_extra=NOT_EMPTY, examples=["#!/bin/bash\necho 'trying a change'"])
    script_type: ScriptType | None = Field(default=None, description="Default: the saved script's type")
    parameter_schema: Declarations | None = Field(
        default=None,
        description="The parameter declaration in the editor, in any form a save accepts "
        "(default: the saved script's)",
        examples=[[{"name": "COUNT", "type": "integer", "default": 3}]],
    )
    parameters: ParameterValues = Field(default_factory=dict, examples=[{"COUNT": 5}])
    terraform_action: Literal["plan"] | None = Field(
        default=None, description="Terraform scripts only: a test run only plans"
    )
    terraform_workspace: TerraformWorkspace = None
    runner: Literal["docker", "local"] | None = Field(
        default=None,
        description="Default: Docker when reachable, else the local runner when an admin enabled it",
    )
    run_options: AnsibleRunOptions | None = Field(
        default=None, description="Ansible scripts only: --limit, --tags, --skip-tags, --check, --diff"
    )
    acknowledge_risks: bool = Field(
        default=False, description="Required (true) to run content with dangerous-pattern findings"
    )


def _schema_fields(exc: Invalid) -> Invalid:
    """The save checks name a bad declaration `parameters.X` (a save's field); in this body
    `parameters` are the run's values and the declaration is `parameter_schema`, so rename
    those fields (a value error stays `parameters.X`)."""
    renamed = [dict(e) for e in exc.details]
    message = exc.message
    for error in renamed:
        field = str(error.get("field", ""))
        if field == "parameters" or field.startswith(("parameters.", "parameters[")):
            error["field"] = "parameter_schema" + field.removeprefix("parameters")
            message = message.replace(f"{field}: ", f"{error['field']}: ")
    return Invalid(message, details=renamed)


@router.post(
    "/{script_id}/test-runs",
    dependencies=[permitted(Permission.edit_scripts, draft_runs.START)],
    response_model=ExecutionOut,
    status_code=202,
    summary="Test run: run unsaved content as a draft run (no version is saved, the script is unchanged)",
    responses=error_responses(*AUTHED, 404, 409),
)
async def create_test_run(
    script_id: IdPath, body: TestRunCreate, session: Session, actor: CurrentActor
) -> ExecutionOut:
    """Operator or admin (edit_scripts and execute_scripts). Runs the editor's unsaved `content`
    as a test run (`draft: true`) of a script in any status; no version is saved and the script is
    unchanged. The content and `parameter_schema` are checked as a save would check them (422 naming
    each, `acknowledge_risks` for dangerous patterns); a Terraform test run only plans (422
    otherwise). 404 for an unknown script; 409 when no runner can take it. Approval policies apply.
    Audited as `execution.create` with the content's SHA-256."""
    try:
        execution = await draft_runs.start(
            session,
            actor,
            script_id,
            body.content,
            script_type=body.script_type,
            parameter_schema=body.parameter_schema,
            parameters_in=body.parameters,
            terraform_action=body.terraform_action,
            terraform_workspace=body.terraform_workspace,
            runner=body.runner,
            run_options=body.run_options.model_dump(exclude_defaults=True) if body.run_options else None,
            acknowledge_risks=body.acknowledge_risks,
        )
    except draft_runs.DeclarationInvalid as exc:
        raise _schema_fields(exc) from None
    return ExecutionOut.of(execution)
