"""The script page's approval requirement form: require approvals for a script's runs, change how
many and how long a request waits, or (admins) remove the requirement.

Before it, the Overview said only "not required (PUT /api/v1/scripts/{id}/approval requires it)":
a team working in the browser could not make a script wait for a second person without the API.
The service rules stay the service's (`services.approvals.set_policy`, `remove_policy`): an
operator may add or raise a requirement, only an admin lowers or removes one (403 said in the form).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from nicegui import ui

from opscraft.services import approvals
from opscraft.services.actor import Actor
from opscraft.services.permissions import Permission, can
from opscraft.ui.dialog_submit import submit_dialog
from opscraft.ui.widgets import call, confirm, dialog_buttons, dialog_card, page_dialog, whole

# The form's two fields, their labels and the service field each one is checked as.
FIELDS = {
    "required": f"Approvals needed (1-{approvals.MAX_REQUIRED})",
    "expires_after_hours": f"Expires after (hours, 1-{approvals.MAX_EXPIRY_HOURS})",
}
EXPIRY_HINT = "A request not decided by then ends rejected"


async def open_policy_form(
    actor: Actor, script_id: int, current: tuple[int, int] | None, on_saved: Callable[[], Awaitable[None]]
) -> None:
    """Open the form for `script_id`'s approval requirement; `current`: its (required, hours), None
    when its runs need no approval (the form then offers 1 approval, 24 hours). Save sets it
    (`approvals.set_policy`), **Remove requirement** (admins, when one is set) removes it after a
    confirmation (`approvals.remove_policy`); `on_saved` runs after either."""
    required, hours = current or (1, 24)
    title = "Require approval" if current is None else "Change the approval requirement"
    with page_dialog() as dialog, dialog_card(title):
        ui.label(
            "Every run of this script, however it starts, then waits on the Approvals page until "
            "that many other operators or admins approve it."
        ).classes("text-grey-8")
        inputs = {
            "required": ui.number(FIELDS["required"], value=required)
            .classes("w-full")
            .props('outlined dense autofocus data-testid="approval-required"'),
            "expires_after_hours": ui.number(FIELDS["expires_after_hours"], value=hours)
            .classes("w-full")
            .props(f'outlined dense hint="{EXPIRY_HINT}" data-testid="approval-hours"'),
        }

        async def save(who: Actor) -> Any:
            data = {key: whole(field.value) for key, field in inputs.items()}  # a fraction: refused
            return await call(approvals.set_policy, who, script_id, approvals.PolicyIn.model_validate(data))

        async def submit() -> None:
            done = "Approval requirement saved"
            if await submit_dialog(dialog, Permission.edit_scripts, save, done, inputs) is not None:
                await on_saved()

        if current is not None and can(actor.user, Permission.relax_approvals):

            async def remove() -> None:
                question = "Remove the approval requirement?"
                consequence = (
                    "New runs of this script start without approval; runs already waiting still need theirs."
                )
                if not await confirm(question, consequence, "Remove", "confirm-remove-approval"):
                    return
                removed = await submit_dialog(
                    dialog,
                    Permission.relax_approvals,
                    lambda who: call(approvals.remove_policy, who, script_id),
                    "Approval requirement removed",
                    {},
                )
                if removed is not None:
                    await on_saved()

            ui.button("Remove requirement", icon="delete", on_click=remove, color="negative").props(
                'flat data-testid="approval-remove"'
            )
        dialog_buttons(dialog, "Save", "approval-submit", submit)
    dialog.open()
