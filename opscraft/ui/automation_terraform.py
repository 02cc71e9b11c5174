"""The Terraform action and workspace fields of the schedule, webhook and "then run" link forms:
what the runs they start do (services/executions.automation_terraform judges them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nicegui import ui

from opscraft.db.models.scripts import ScriptType
from opscraft.execution import terraform_backend
from opscraft.services.executions import AUTOMATION_ACTIONS
from opscraft.ui.execute_dialog import TERRAFORM_ACTIONS
from opscraft.ui.widgets import carried


@dataclass(frozen=True)
class TerraformFields:
    """The two fields of a form, by the field name a refusal names."""

    action: ui.select
    workspace: ui.input

    def values(self) -> dict[str, Any]:
        """The chosen action, and the workspace as typed (None when left empty: the service's
        `default`), for the service to judge as the API's."""
        return {
            "terraform_action": self.action.value,
            "terraform_workspace": str(self.workspace.value or "") or None,
        }

    def inputs(self) -> dict[str, ui.element]:
        """Field name -> element, for `run_action` to put each refusal under its field."""
        return {"terraform_action": self.action, "terraform_workspace": self.workspace}


def shown_for(script_type: str, stored_action: str | None) -> bool:
    """Whether a form of a `script_type` script's schedule or webhook has the fields: for a
    Terraform script, and for a row that still names an action (its script was one when it was
    saved), so that the choice can be seen and put back to `plan` in `default`."""
    return script_type == ScriptType.terraform or stored_action is not None


def loaded(action: str | None, workspace: str | None) -> dict[str, Any]:
    """What the fields show of a stored row (`plan` and `default` for a row naming none)."""
    return {
        "terraform_action": action or "plan",
        "terraform_workspace": workspace or terraform_backend.DEFAULT_WORKSPACE,
    }


def terraform_fields(testid: str, start: dict[str, Any], note: str = "") -> TerraformFields:
    """The fields (`data-testid` `<testid>-terraform-action` and `-terraform-workspace`) showing
    `start` (`loaded`); `note` says when they apply (a link's target may be of any type)."""
    ui.label("Terraform" + (f" ({note})" if note else "")).classes("text-subtitle2 text-grey-8 mt-2")
    action = (
        ui.select(
            {key: TERRAFORM_ACTIONS[key] for key in AUTOMATION_ACTIONS},
            value=start["terraform_action"],
            label="Terraform action",
        )
        .props(f'outlined dense data-testid="{testid}-terraform-action"')
        .props('hint="An apply waits for approval as a manual one does when the script requires it"')
        .classes("w-full")
    )
    workspace = (
        ui.input("Terraform workspace", value=start["terraform_workspace"], validation={})
        .props(f"outlined dense {carried(terraform_backend.WORKSPACE_CHARS)}")
        .props(f'data-testid="{testid}-terraform-workspace"')
        .props('hint="The state the runs use: another than default needs OpsCraft\'s state backend"')
        .classes("w-full")
    )
    return TerraformFields(action, workspace)


def caption(action: str | None, workspace: str | None, testid: str) -> None:
    """`Terraform: apply in prod` on a row that names an action (nothing for other types)."""
    if action is not None:
        ui.label(f"Terraform: {action} in {workspace or terraform_backend.DEFAULT_WORKSPACE}").classes(
            "text-caption font-mono oc-wrap"
        ).props(f'data-testid="{testid}"')
