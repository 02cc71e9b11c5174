"""Starting a run for a schedule or an inbound webhook: a system actor on behalf of its owner.

`executions.create` checks the owner's permission at the time of the run (through the system
actor, `Actor.on_behalf_of`) and audits a refusal as `execution.refused`; this turns that
refusal into `OwnerRefused`, so the trigger can react (a schedule pauses itself).
"""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db.models import Execution, User
from opscraft.db.models.executions import Trigger
from opscraft.services import executions
from opscraft.services.actor import Actor
from opscraft.services.errors import Forbidden, Invalid


class OwnerRefused(Exception):
    """The trigger's owner may not start the run now (deactivated, deleted or no permission)."""


async def start_for(
    session: AsyncSession,
    owner_id: int | None,
    ref: str,
    trigger: Trigger,
    script_id: int,
    parameters: dict[str, Any],
    terraform_action: str | None = None,
    terraform_workspace: str | None = None,
    run_options: dict[str, Any] | None = None,
) -> Execution:
    """Start `script_id` with `parameters` for the system actor `ref` (e.g. "schedule:3") on
    behalf of `owner_id`, whose permissions are checked now. `terraform_action` and
    `terraform_workspace` are the trigger's stored choice (`executions.start_values`), checked
    by `executions.create` as a manual run's: an `apply` is held for approval as one.
    `run_options` are the trigger's stored Ansible run options (`executions.automation_run_options`),
    checked by `executions.create` as a manual run's. Raises OwnerRefused, or the ServiceError of
    `executions.create` (422 parameters, or a Terraform choice or Ansible options the script
    refuses now, e.g. its type changed: the message says which trigger named them; 409 script not
    active or no runner...)."""
    owner = await session.get(User, owner_id) if owner_id is not None else None
    action, workspace = executions.start_values(terraform_action, terraform_workspace)
    try:
        return await executions.create(
            session,
            Actor.on_behalf_of(owner, ref),
            script_id,
            parameters,
            action,
            terraform_workspace=workspace,
            trigger=trigger,
            run_options=run_options,
        )
    except Forbidden as exc:
        raise OwnerRefused(exc.message) from None
    except Invalid as exc:
        fields = [str(d.get("field", "")) for d in exc.details]
        for prefix, choice, kind in STORED_CHOICES:
            if any(field.startswith(prefix) for field in fields):
                raise Invalid(
                    f"{exc.message} ({ref} names {choice}: edit it, or make the script {kind} script again)",
                    details=exc.details,
                ) from None
        raise


# The trigger's stored choices a run may refuse at fire time: the field prefix a refusal names,
# what the message calls the choice, and the script type it fits.
STORED_CHOICES = (
    ("terraform_", "this Terraform choice", "a Terraform"),
    ("run_options", "these Ansible run options", "an Ansible"),
)
