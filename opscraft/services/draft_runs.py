"""Test runs: run what is in a script's editor without saving it.

A test run (a "draft run") runs unsaved content as the user who asks, under the rules of a normal
run (`executions.create`: parameters validated against the schema in the editor, secrets attached
to the script, approval policy, runner) and of a save (`scripts.check_content`: the size limit,
syntax errors refuse it, dangerous patterns need an acknowledgement). It writes no script version
and leaves the script as it is; the content that ran is stored with the execution
(`executions.ran_content`), and the run is marked `draft` everywhere it is shown.

Only roles that may edit scripts start test runs (they could save the content anyway); the
script may be in any status, so a new draft script can be tried before it is activated.
Terraform test runs only plan: the state they would change is the saved script's.
"""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db import stored_shapes
from opscraft.db.models import Execution
from opscraft.db.models.executions import Trigger
from opscraft.db.models.scripts import ScriptType
from opscraft.services import executions, scripts
from opscraft.services.actor import Actor
from opscraft.services.errors import Conflict, Invalid, unreadable
from opscraft.services.permissions import Permission, require

# What a refusal names (services/permissions.require; the routes' early check says the same).
START = "start a test run of unsaved code"


class DeclarationInvalid(Invalid):
    """The content or the parameter declaration refused as a save would refuse them
    (`scripts.check_content`): its fields are a save's (`content`, `parameters.X` for the
    declaration), unlike the run's parameter values that `executions.create` refuses."""


async def start(
    session: AsyncSession,
    actor: Actor,
    script_id: int,
    content: str,
    *,
    script_type: ScriptType | None = None,
    parameter_schema: dict[str, Any] | list[Any] | None = None,
    parameters_in: dict[str, Any] | None = None,
    terraform_action: str | None = None,
    terraform_workspace: str | None = None,
    runner: str | None = None,
    run_options: dict[str, Any] | None = None,
    acknowledge_risks: bool = False,
    trigger: Trigger = Trigger.api,
) -> Execution:
    """Queue a test run of `content` for script `script_id`; returns the `queued` (or
    `awaiting_approval`) execution, marked `draft`.

    `script_type` and `parameter_schema` are the editor's (default: the saved script's);
    `parameters_in` are the run's values, `terraform_workspace` the state a Terraform plan reads.
    Raises Forbidden (a role that may not edit scripts),
    NotFound (no such script), DeclarationInvalid (content or declaration refused as a save
    would refuse them, dangerous patterns not acknowledged), Invalid (a Terraform action other
    than plan, bad parameter values), Conflict (no runner; a type or declaration left to the
    saved script, which holds one that cannot be read: db/stored_shapes.py).
    """
    require(actor.user, Permission.edit_scripts, START)
    require(actor.user, Permission.execute_scripts)
    script = await scripts.get(session, actor, script_id)
    left_out = {
        name
        for name, sent in (("script_type", script_type), ("parameters", parameter_schema))
        if sent is None
    }
    unread = {name: problem for name, problem in stored_shapes.problems(script).items() if name in left_out}
    if unread:  # what the editor leaves out is the saved script's, which cannot be read
        stored = stored_shapes.worded(unread)
        raise Conflict(
            f"the stored settings of script {script.name!r} cannot be read: {stored}: send them or edit it",
            details=unreadable(unread),
        )
    kind = ScriptType(script_type or script.script_type)
    if kind == ScriptType.terraform and terraform_action not in (None, "plan"):
        raise Invalid(
            "a test run of a terraform script only plans (its state is the saved script's): "
            "save the script to apply or destroy",
            details=[{"field": "terraform_action", "message": "must be 'plan' in a test run"}],
        )
    schema_raw = script.parameters if parameter_schema is None else parameter_schema
    try:
        checked = await scripts.check_content(kind, content, schema_raw, acknowledge_risks)
    except Invalid as exc:
        raise DeclarationInvalid(exc.message, details=exc.details) from None
    draft = executions.DraftRun(
        script_type=kind,
        content=checked.content,
        schema=checked.schema,
        findings=[{"rule": f.rule, "line": f.line} for f in checked.checks.findings],
    )
    return await executions.create(
        session,
        actor,
        script_id,
        parameters_in,
        terraform_action,
        terraform_workspace=terraform_workspace,
        runner=runner,
        trigger=trigger,
        run_options=run_options,
        draft=draft,
    )
