"""Run-centred helpers over `services.executions`: run again with the same parameters, and each
script's last run (for the scripts list)."""

from __future__ import annotations

from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db import stored_shapes
from opscraft.db.models import Execution, Script
from opscraft.execution import terraform_plan
from opscraft.services import executions
from opscraft.services.actor import Actor
from opscraft.services.errors import Conflict, unreadable
from opscraft.services.permissions import Permission, require

# The stored columns of a run that its run again repeats (read as empty when they cannot be).
RERUN_COLUMNS = ("parameters", "run_options")


async def rerun(
    session: AsyncSession,
    actor: Actor,
    execution_id: int,
    *,
    confirm_destroy: bool = False,
    trigger: executions.Trigger = executions.Trigger.api,
) -> Execution:
    """Queue a new run of the same script with the parameters, Terraform action and workspace, Ansible run
    options (a `--limit` or `--check` run is run again limited, or dry) and runner of execution
    `execution_id`; every rule of `executions.create` applies (the script must still be active,
    the parameters must still fit its current schema). `trigger`: how it was asked for (`ui` for
    the page's Run again), as for `executions.create`. The new run's `rerun_of` is `execution_id`.

    A Terraform `destroy` is confirmed again for every run (`confirm_destroy`, as for
    `executions.create`). Raises NotFound (no such execution or script), Conflict (script not
    active), Invalid (parameters no longer valid, a destroy not confirmed), Forbidden (no
    permission to execute, or to destroy). The apply of a saved plan is not run again (Conflict:
    a plan is applied once, from its plan run), nor a run of a script whose type changed since
    (Conflict: its Terraform action or Ansible options would not be the same run's). A test run
    of unsaved content (`draft`) is not run again: its content was never saved (Conflict); nor
    is a run whose stored parameters or run options cannot be read (db/stored_shapes.py: they
    read as empty, and the new run would silently lose them): Conflict naming each (`errors`)."""
    require(actor.user, Permission.execute_scripts)
    previous = await executions.get(session, actor, execution_id)
    if previous.draft:
        raise Conflict(
            f"execution {execution_id} was a test run of unsaved content: test-run it again from the "
            "script's editor, or save the script and run it"
        )
    script = await session.get(Script, previous.script_id)  # `create` says what else is wrong with it
    live = script is not None and script.deleted_at is None and not stored_shapes.problems(script)
    now = script.script_type if live and script is not None else previous.script_type
    if now != previous.script_type:  # its Terraform action and Ansible options are its old type's
        raise Conflict(
            f"execution {execution_id} was a {previous.script_type} run, and its script is a {now} "
            "script now: start a new run of it"
        )
    if previous.terraform_action == terraform_plan.APPLY_PLAN:  # terraform_plans.apply: once per plan
        raise Conflict(
            f"execution {execution_id} applied a saved plan, and each plan is applied once: run a new "
            "plan and apply that"
        )
    unread = {k: p for k, p in stored_shapes.problems(previous).items() if k in RERUN_COLUMNS}
    if unread:
        raise Conflict(
            f"the stored settings of execution {execution_id} cannot be read: "
            f"{stored_shapes.worded(unread)}: start a new run with the values it needs",
            details=unreadable(unread),
        )
    return await executions.create(
        session,
        actor,
        previous.script_id,
        dict(previous.parameters),
        previous.terraform_action,
        terraform_workspace=previous.terraform_workspace,
        runner=previous.runner,
        trigger=trigger,
        run_options=previous.run_options,
        confirm_destroy=confirm_destroy,
        rerun_of=previous.id,
    )


async def last_runs(session: AsyncSession, actor: Actor, script_ids: list[int]) -> dict[int, Execution]:
    """The most recent execution of each script in `script_ids` (scripts never run are absent)."""
    require(actor.user, Permission.view_scripts)
    if not script_ids:
        return {}
    latest = (
        select(func.max(col(Execution.id)))
        .where(col(Execution.script_id).in_(script_ids))
        .group_by(col(Execution.script_id))
    )
    rows = await session.exec(select(Execution).where(col(Execution.id).in_(latest)))
    return {row.script_id: row for row in rows}
