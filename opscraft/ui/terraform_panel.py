"""Terraform on the run page: the saved plan of a plan run (summary, "Apply this plan") and, for
operators, the versions of the state the run works on, the ones it wrote marked, the current one
badged, and "Roll back" to any other (services/terraform_state.py refuses one with the current
content, and the refusal is shown)."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from opscraft.db.models import Execution, TerraformPlan, TerraformState
from opscraft.db.models.executions import FINAL_STATUSES, ExecutionStatus, Trigger
from opscraft.db.models.scripts import ScriptType
from opscraft.execution import terraform_backend
from opscraft.services import terraform_plans, terraform_state
from opscraft.services.actor import Actor
from opscraft.services.errors import NotFound
from opscraft.services.permissions import Permission, can
from opscraft.ui.execution_widgets import banner, name_value_grid
from opscraft.ui.layout import guard, run_action
from opscraft.ui.widgets import call, close_then, dialog_title, format_time, one_click, opens_dialog

ACTION_SIGNS = {"create": "+", "update": "~", "delete": "-", "read": "<="}
# The state's latest versions the run page lists (the API pages through all of them).
SHOWN_VERSIONS = 10


def _actions(actions: list[str]) -> str:
    if sorted(actions) == ["create", "delete"]:
        return "-/+ replace"
    return ", ".join(f"{ACTION_SIGNS.get(a, '')} {a}".strip() for a in actions)


def summary_line(plan: TerraformPlan) -> str:
    """Terraform's own summary line: `Plan: 1 to add, 0 to change, 0 to destroy.`, with the imports
    first when there are any (`Plan: 1 to import, 0 to add, ...`, Terraform's ChangeSummary)."""
    imports = f"{plan.to_import} to import, " if plan.to_import else ""
    return f"Plan: {imports}{plan.to_add} to add, {plan.to_change} to change, {plan.to_destroy} to destroy."


def _resource_actions(resource: dict[str, Any]) -> str:
    """A listed resource's actions as the plan output words them: an import or a move first (both
    change the state even when the resource itself is a no-op)."""
    actions = [a for a in resource["actions"] if a != "no-op"]
    words = ["import"] if resource.get("importing") else []
    if resource.get("previous_address"):
        words.append(f"moved from {resource['previous_address']}")
    return ", ".join([*words, _actions(actions)] if actions else words)


class TerraformPanel:
    """Redrawn with the page (`refresh`) when the run's status changes."""

    def __init__(self, actor: Actor, execution: Execution) -> None:
        self.actor = actor
        self.execution = execution
        self.draw = ui.refreshable(self._draw)

    async def refresh(self, actor: Actor, execution: Execution) -> None:
        """Redraw the panel for `execution` as `actor` sees it."""
        self.actor, self.execution = actor, execution
        await self.draw.refresh()

    async def _draw(self) -> None:
        run = self.execution
        if run.script_type != ScriptType.terraform or run.status not in FINAL_STATUSES:
            return
        if run.terraform_action == "plan" and run.status == ExecutionStatus.success:
            await self._plan()
        if can(self.actor.user, Permission.edit_scripts):
            await self._state()

    async def _plan(self) -> None:
        try:
            plan, stale = await call(terraform_plans.get, self.actor, self.execution.id)
        except NotFound:
            return
        with ui.card().classes("w-full gap-2").props('flat bordered data-testid="plan-panel"'):
            with ui.row().classes("w-full items-center justify-between"):
                ui.label("Saved plan").classes("text-subtitle1 font-medium")
                self._apply_button(plan, stale)
            ui.label(summary_line(plan)).classes("text-body1 font-medium").props('data-testid="plan-summary"')
            if stale:
                banner(
                    "history",
                    "orange",
                    "The state changed since this plan was made: it can no longer be applied. Plan again.",
                    "plan-stale",
                )
            if plan.apply_execution_id is not None:
                with ui.row().classes("items-center gap-1").props('data-testid="plan-applied"'):
                    ui.label("Applied by")
                    ui.link(f"execution #{plan.apply_execution_id}", f"/executions/{plan.apply_execution_id}")
            detail = plan.summary or {}
            rows = [(r["address"], _resource_actions(r)) for r in detail.get("resources", [])]
            rows += [(f"output.{o['name']}", _actions(o["actions"])) for o in detail.get("outputs", [])]
            if rows:
                with name_value_grid():
                    for address, actions in rows:
                        ui.label(actions).classes("font-mono text-grey-8")
                        ui.label(address).classes("font-mono break-all").props('data-testid="plan-change"')
            if detail.get("truncated"):
                ui.label("More changes than listed: see the plan output above.").classes("text-grey-7")

    def _apply_button(self, plan: TerraformPlan, stale: bool) -> None:
        if not can(self.actor.user, Permission.edit_scripts) or stale:
            return
        if plan.apply_execution_id is not None:
            return
        ui.button("Apply this plan", icon="play_arrow", on_click=opens_dialog(self._confirm_apply)).props(
            'unelevated color=primary data-testid="apply-plan"'
        ).tooltip("Apply exactly this plan (terraform apply of the saved plan)")

    def _confirm_apply(self) -> None:
        with ui.dialog() as dialog, ui.card().classes("gap-3"):
            dialog_title(f"Apply the plan of execution #{self.execution.id}?")
            ui.label(
                "Exactly the changes listed are made. A script that requires approval waits for it."
            ).classes("text-grey-8")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Not now", on_click=dialog.close).props("flat")

                async def confirmed() -> bool:
                    # Outside the dialog, which deletes itself once hidden: the navigation to the
                    # apply run was made in its deleted slot and lost (seen on a busy machine).
                    await close_then(dialog, self.apply)
                    return True  # the dialog is closed: a click already on its way must not apply again

                ui.button("Apply", on_click=one_click(confirmed)).props(
                    'unelevated color=primary data-testid="apply-plan-confirm"'
                )
        dialog.on("hide", dialog.delete)
        dialog.open()

    async def apply(self) -> None:
        """Apply the run's reviewed plan (re-checking edit_scripts; the services check the rest) and open
        the apply run.
        """
        actor = await guard(Permission.edit_scripts)
        if actor is None:
            return
        started = await run_action(
            lambda: call(terraform_plans.apply, actor, self.execution.id, trigger=Trigger.ui)
        )
        if started is not None:
            ui.navigate.to(f"/executions/{started.id}")

    @property
    def workspace(self) -> str:
        """The workspace whose state the run used (`default` for runs from before workspaces)."""
        return self.execution.terraform_workspace or terraform_backend.DEFAULT_WORKSPACE

    async def _state(self) -> None:
        run = self.execution
        try:
            view, versions, total = await call(
                terraform_state.list_versions,
                self.actor,
                run.script_id,
                self.workspace,
                limit=SHOWN_VERSIONS,
            )
        except NotFound:
            return
        state = view.state
        with ui.card().classes("w-full gap-2").props('flat bordered data-testid="state-panel"'):
            ui.label(f"Terraform state (workspace {self.workspace})").classes("text-subtitle1 font-medium")
            if state.lock_id is not None:
                lock_line(state, view.lock_ended)
            if not versions:
                ui.label("No state stored yet: an apply writes the first version.").classes("text-grey-7")
                return
            with ui.grid(columns="auto auto auto 1fr auto").classes("gap-x-6 gap-y-1 items-center"):
                for version in versions:
                    mine = version.execution_id == run.id
                    ui.label(f"v{version.number}").classes(
                        "font-mono" + (" font-bold" if mine else "")
                    ).props(f'data-testid="state-version-{version.number}"')
                    ui.label(f"serial {version.serial}").classes("font-mono text-grey-8")
                    ui.label(format_time(version.created_at)).classes("text-grey-8")
                    by = (
                        "written by this run"
                        if mine
                        else (f"run #{version.execution_id}" if version.execution_id else "")
                    )
                    # A rollback's note, or the errored.tfstate a run could not store.
                    written = " · ".join(part for part in (by, version.note) if part)
                    ui.label(written).classes("text-grey-8").props(
                        f'data-testid="state-written-{version.number}"'
                    )
                    if version.number == state.current_version:
                        ui.badge("current", color="primary").props(
                            f'data-testid="state-current-{version.number}"'
                        )
                    else:
                        ui.button(
                            "Roll back",
                            icon="history",
                            on_click=opens_dialog(lambda n=version.number: self._confirm_rollback(n)),
                        ).props(f'flat dense color=primary data-testid="state-rollback-{version.number}"')
            if total > len(versions):
                ui.label(
                    f"The latest {len(versions)} of {total} versions; the API lists them all: "
                    f"GET /api/v1/scripts/{run.script_id}/terraform/states/"
                    f"{self.workspace}/versions?skip={len(versions)}"
                ).classes("text-grey-7").props('data-testid="state-versions-more"')

    def _confirm_rollback(self, number: int) -> None:
        with ui.dialog() as dialog, ui.card().classes("gap-3"):
            dialog_title(f"Roll the state back to version {number}?")
            ui.label(
                "Its content becomes the current state, as a new version; no version is lost. The "
                "next plan compares the configuration with it."
            ).classes("text-grey-8")
            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=dialog.close).props("flat")

                async def confirmed() -> bool:
                    await close_then(dialog, lambda: self.rollback(number))
                    return True  # the dialog is closed: a click already on its way must not roll back again

                ui.button("Roll back", icon="history", on_click=one_click(confirmed)).props(
                    'unelevated color=primary data-testid="state-rollback-confirm"'
                )
        dialog.on("hide", dialog.delete)
        dialog.open()

    async def rollback(self, number: int) -> None:
        """Roll the run's state back to version `number` (the service's refusal is shown as is)."""
        actor = await guard(Permission.edit_scripts)
        if actor is None:
            return
        run = self.execution
        done = await run_action(
            lambda: call(terraform_state.rollback, actor, run.script_id, self.workspace, number),
            f"State rolled back to version {number}",
        )
        if done is not None:
            await self.draw.refresh()


def lock_line(state: TerraformState, ended: bool) -> None:
    """Who holds the state's lock; a lock left by a run that is over is said to block nothing."""
    testid = "state-lock-ended" if ended else "state-locked"
    with ui.row().classes("items-center gap-1").props(f'data-testid="{testid}"'):
        ui.icon("lock_open" if ended else "lock", color="grey-7" if ended else "orange-9")
        ui.label("Lock left by" if ended else "Locked by")
        holder = state.locked_by_execution
        if holder is not None:
            ui.link(f"execution #{holder}", f"/executions/{holder}")
        else:
            ui.label("an unknown run")
        if ended:
            ui.label("which ended before releasing it: the next run takes it over").classes("text-grey-8")
        else:
            ui.label(f"since {format_time(state.locked_at)}").classes("text-grey-8")
