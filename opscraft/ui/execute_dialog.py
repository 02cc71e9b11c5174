"""The "Execute" button of the script page: a form generated from the script's parameter schema.

The same form starts a test run of the editor's unsaved content (`TestRun`, services/draft_runs.py).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nicegui import Client, context, ui
from nicegui.elements.mixins.validation_element import ValidationElement

from opscraft.db.models import Execution, Script, User
from opscraft.db.models.scripts import ScriptStatus, ScriptType
from opscraft.execution import terraform_backend
from opscraft.services import (
    draft_runs,
    executions,
    run_option_rights,
    scripts,
    shared_inventories,
)
from opscraft.services.actor import Actor
from opscraft.services.errors import Invalid, ServiceError
from opscraft.services.executions import RunnerOptions
from opscraft.services.permissions import Permission, can
from opscraft.ui import drafts
from opscraft.ui.ansible_fields import AnsibleFields, ansible_fields
from opscraft.ui.drafts import Draft
from opscraft.ui.execution_widgets import banner, sentence
from opscraft.ui.layout import confirmed, guard, notify_error, run_action
from opscraft.ui.parameter_fields import ParameterFields
from opscraft.ui.script_tabs import script_action
from opscraft.ui.script_widgets import findings_of, risk_dialog
from opscraft.ui.widgets import (
    FORM_DIALOG_PROPS,
    call,
    carried,
    click_opening,
    dialog_title,
    enter_presses,
    one_click,
    one_shot,
)

# Per browser tab (NiceGUI client): its run form, None while it is being built (`open_dialog`).
_FORMS: weakref.WeakKeyDictionary[Client, ui.dialog | None] = weakref.WeakKeyDictionary()
TERRAFORM_ACTIONS = {"plan": "Plan (no changes)", "apply": "Apply (-auto-approve)", "destroy": "Destroy"}


def _workspace_input() -> ui.input | None:
    """The Terraform workspace field (`default` to start with), when OpsCraft keeps Terraform
    state (`executions.workspaces_kept`); None otherwise: every run then uses `default`."""
    if not executions.workspaces_kept():
        return None
    return (
        ui.input("Terraform workspace", value=terraform_backend.DEFAULT_WORKSPACE, validation={})
        .props(f"outlined dense {carried(terraform_backend.WORKSPACE_CHARS)}")
        .props('data-testid="terraform-workspace-input"')
        .props('hint="The state this run uses: one per workspace (dev, staging, prod...)"')
        .classes("w-full")
    )


def _workspace_value(workspace: ui.input | None) -> str | None:
    """The typed workspace as typed, for the service to judge as the API's (None without the
    field or when left empty: the service's default)."""
    if workspace is None:
        return None
    return str(workspace.value or "") or None


def _show_field_errors(
    params: dict[str, ui.element], others: dict[str, ui.element], exc: ServiceError
) -> None:
    """Each refusal under its field: `parameters.NAME` under that parameter's input, any other
    field (`run_options.limit`, `terraform_workspace`) under the input of that name."""
    for detail in exc.details:
        field = str(detail.get("field", ""))
        name = field.removeprefix("parameters.")
        element = params.get(name) if name != field else others.get(field)
        if isinstance(element, ValidationElement):
            element.error = str(detail.get("message", "is invalid"))


RUNNER_LABELS = {"docker": "Docker container", "local": "Local process (not isolated)"}


def _runner_choice(options: RunnerOptions, user: User) -> ui.toggle | None:
    """A runner toggle when both runners can take the run; a warning when only the local one can."""
    available = [name for name in ("docker", "local") if getattr(options, name)]
    if not available:
        why = options.local_refusal
        message = sentence(executions.no_runner(user))
        if why:
            message = f"No runner is available to you: the Docker engine is not reachable, and {why}."
        banner("error", "red", message)
        return None
    toggle = None
    if len(available) > 1:
        ui.label("Runner").classes("text-subtitle2 text-grey-8 mt-2")
        toggle = ui.toggle({n: RUNNER_LABELS[n] for n in available}, value=options.default)
        toggle.props('data-testid="runner-choice"')
    warning = banner(
        "warning",
        "orange",
        "Not isolated: the local runner runs the script as a plain process on the server.",
        "not-isolated",
    )
    if toggle is not None:
        warning.bind_visibility_from(toggle, "value", value="local")
    else:
        warning.set_visibility(options.default == "local")
    return toggle


@dataclass(frozen=True)
class TestRun:
    """What the editor holds (type, content, normalised parameter schema) for a test run, and
    what to do with the started run (the editor links to it: leaving would lose the edit)."""

    script_type: ScriptType
    content: str
    schema: list[dict[str, Any]]
    on_started: Callable[[Execution], None]


async def open_dialog(actor: Actor, script_id: int, test_run: TestRun | None = None) -> None:
    """Build and open the dialog for the script as it is now (or, with `test_run`, for the
    editor's unsaved content); submitting starts the run.

    One run form at a time per browser tab: a double-click on Execute or on a list's Run (or a
    click while the form is still being built) used to stack a second form over the first."""
    client = context.client
    if client in _FORMS:
        form = _FORMS[client]
        if form is None or (form.value and not form.is_deleted):
            return
    _FORMS[client] = None
    form = None
    try:
        form = await _open(actor, script_id, test_run)
    finally:
        if form is None:
            _FORMS.pop(client, None)
        else:
            _FORMS[client] = form


async def _open(actor: Actor, script_id: int, test_run: TestRun | None) -> ui.dialog | None:
    """`open_dialog`'s form, opened; None when the script cannot be read."""
    try:
        script = await call(scripts.get, actor, script_id)
        runners = await call(executions.runner_options, actor.user)
        script_type = test_run.script_type if test_run else script.script_type
        network_missing = (
            script_type == ScriptType.ansible
            and not script.network_enabled
            and await call(shared_inventories.reaches_network, actor, script)
        )
        diff_refused = script_type == ScriptType.ansible and await call(
            run_option_rights.diff_refused, actor.user, script_id
        )
    except ServiceError as exc:
        notify_error(exc.message)
        return None
    with (
        ui.dialog().props(FORM_DIALOG_PROPS) as dialog,
        ui.card().classes("w-[34rem] max-w-full gap-3").props('data-testid="execute-dialog"') as card,
    ):
        draft = Draft(f"test-{run_draft_key(script_id)}" if test_run else run_draft_key(script_id), card)
        schema = test_run.schema if test_run else script.parameters
        with ui.row().classes("items-center gap-2 w-full"):
            ui.icon("science" if test_run else "play_circle", color="primary").classes("text-3xl")
            with ui.column().classes("gap-0"):
                title = f"Test run of {script.name}" if test_run else f"Run {script.name}"
                dialog_title(title)
                ui.label(f"{script_type} · version {script.current_version}").classes(
                    "text-caption text-grey-7"
                )
        if test_run:
            banner(
                "science",
                "deep-purple",
                "Runs the unsaved content in the editor as a draft run, in your name. Nothing is saved: "
                f"the script stays at version {script.current_version}.",
                "test-run-notice",
            )
        if schema:
            ui.label("Parameters").classes("text-subtitle2 text-grey-8 mt-2")
        else:
            ui.label("This script takes no parameters.").classes("text-grey-7")
        params = ParameterFields(schema)
        fields = params.elements
        for name, element in fields.items():
            draft.field(name, element)
        if fields:  # typing goes to the first parameter as soon as the form shows (layout.py's dialog focus)
            next(iter(fields.values())).props("autofocus")
        action = None
        workspace = _workspace_input() if script_type == ScriptType.terraform else None
        if script_type == ScriptType.terraform and test_run:
            ui.label("Terraform: a test run only plans (no changes).").classes("text-grey-8")
        elif script_type == ScriptType.terraform:
            ui.label("Terraform action").classes("text-subtitle2 text-grey-8 mt-2")
            # Destroy is offered only to the roles the service lets destroy (services/executions.py).
            may_destroy = can(actor.user, Permission.destroy_infrastructure)
            offered = {k: v for k, v in TERRAFORM_ACTIONS.items() if k != "destroy" or may_destroy}
            action = ui.toggle(offered, value="plan").props('data-testid="terraform-action"')
            if not may_destroy:
                ui.label("Destroy: operators and admins only.").classes("text-caption text-grey-7").props(
                    'data-testid="destroy-not-allowed"'
                )
        may_choose = run_option_rights.may_choose(actor.user, script.viewers_choose_run_options)
        ansible = script_type == ScriptType.ansible
        options = _ansible_options(network_missing, may_choose, diff_refused) if ansible else None
        # The option inputs by the field a refusal names (`run_options.limit`, services/executions.py).
        option_inputs: dict[str, ui.element] = options.inputs() if options else {}
        if workspace is not None:
            option_inputs["terraform_workspace"] = workspace
        runner = _runner_choice(runners, actor.user)
        if runners.docker and executions.docker_cannot_reach_state(script_type, script.network_enabled):
            ui.label(
                f"Docker: {executions.NO_NETWORK_FOR_STATE[0].upper()}{executions.NO_NETWORK_FOR_STATE[1:]}."
            ).classes("text-caption text-warning").props('data-testid="terraform-network-notice"')

        async def submit(acknowledge: bool = False) -> bool:
            """True once the run has started (the dialog is done)."""
            needed = Permission.edit_scripts if test_run else Permission.execute_scripts
            current = await guard(needed)
            if current is None:
                return False
            if action is not None and action.value == "destroy":
                current = await confirm_destroy(script.name, needed)
                if current is None:
                    return False
            invalid = params.invalid()
            if invalid:
                notify_error(f"Fix the highlighted parameters: {', '.join(invalid)}")
                return False
            for element in option_inputs.values():
                element.validate()  # no rules of its own: clears the last refusal
            submit_button.props("loading")
            try:
                if test_run:
                    execution = await call(
                        draft_runs.start,
                        current,
                        script_id,
                        test_run.content,
                        script_type=test_run.script_type,
                        parameter_schema=test_run.schema,
                        parameters_in=params.values(),
                        terraform_workspace=_workspace_value(workspace),
                        runner=runner.value if runner else None,
                        trigger=executions.Trigger.ui,
                        run_options=options.values() if options else None,
                        acknowledge_risks=acknowledge,
                    )
                else:
                    execution = await call(
                        executions.create,
                        current,
                        script_id,
                        params.values(),
                        terraform_action=action.value if action else None,
                        terraform_workspace=_workspace_value(workspace),
                        runner=runner.value if runner else None,
                        trigger=executions.Trigger.ui,
                        run_options=options.values() if options else None,
                        confirm_destroy=action is not None and action.value == "destroy",
                    )
            except Invalid as exc:
                findings = findings_of(exc)
                if findings and test_run:
                    risk_dialog(findings, lambda: submit(True), action="run")
                    return False
                _show_field_errors(fields, option_inputs, exc)
                notify_error(exc.message)
                return False
            except ServiceError as exc:
                notify_error(exc.message)
                return False
            finally:
                submit_button.props(remove="loading")
            await draft.clear()
            dialog.close()
            if test_run:
                test_run.on_started(execution)
            else:
                ui.navigate.to(f"/executions/{execution.id}")
            return True

        with ui.row().classes("w-full justify-end gap-2 mt-2"):

            async def cancel() -> None:
                await draft.clear()
                dialog.close()

            ui.button("Cancel", on_click=cancel).props("flat")
            submit_button = ui.button(
                "Test run" if test_run else "Run", icon="play_arrow", on_click=one_click(submit)
            ).props('unelevated data-testid="execute-submit"')
    enter_presses(dialog, submit_button)  # Enter in a one-line field runs, as in every form dialog
    dialog.on("hide", dialog.delete)
    dialog.open()
    if schema:
        one_shot(0, draft.restore)
    return dialog


def run_draft_key(script_id: int) -> str:
    """The browser-tab draft of a script's run form (see `ui.drafts`)."""
    return f"run:{script_id}"


def _ansible_options(network_missing: bool, may_choose: bool, diff_refused: bool) -> AnsibleFields | None:
    """Ansible's run options, or (None) one line saying why this user may not choose them
    (services/run_option_rights.py; Diff alone disabled, saying why, when `diff_refused`); a
    notice when the playbook targets hosts over the network and the script's network is off
    (hosts with `ansible_connection=local` run in the run itself)."""
    refused = run_option_rights.DIFF_REFUSED if diff_refused else None
    fields = ansible_fields("ansible", diff_refused=refused) if may_choose else None
    if fields is None:
        said = f"Run options (limit, tags, check, diff) are not offered: {run_option_rights.WHY_NOT}."
        ui.label(said).classes("text-caption text-grey-7").props('data-testid="run-options-not-allowed"')
    if network_missing:
        ui.label(
            "This playbook targets hosts from its inventory, but the script's network is off: "
            "in Docker the run cannot reach them. An operator can enable Network in the script's settings."
        ).classes("text-caption text-warning").props('data-testid="ansible-network-notice"')
    return fields


async def confirm_destroy(name: str, permission: Permission) -> Actor | None:
    """Destroy always asks: it removes every resource the state holds. The actor to start it as,
    checked with `permission` as the answer comes (`layout.confirmed`: the role needed to destroy
    is the service's to check, on that actor), or None."""
    return await confirmed(
        permission,
        f"Destroy every resource of {name}?",
        "terraform destroy removes everything this script's state holds.",
        "Destroy",
        "confirm-destroy",
    )


@script_action("execute")
async def execute_button(actor: Actor, script: Script) -> None:
    """The script page's header button; only users who may execute see it.

    Only active scripts run: on a draft or deprecated script Execute is disabled with the reason
    next to it, and those who may edit scripts get a one-click Activate.
    """
    if not can(actor.user, Permission.execute_scripts):
        return
    script_id = script.id
    assert script_id is not None

    async def open_checked() -> None:
        current = await guard(Permission.execute_scripts)
        if current is not None:
            await open_dialog(current, script_id)

    async def clicked() -> None:
        """Not while the page reopens a draft's dialog, nor from behind an open one
        (`widgets.click_opening`)."""
        with click_opening(button) as free:
            if free:
                await open_checked()

    runnable = script.status == ScriptStatus.active
    button = ui.button("Execute", icon="play_arrow", on_click=one_click(clicked)).props(
        'unelevated color=positive data-testid="execute-button"'
    )
    if runnable:
        one_shot(0, lambda: drafts.reopen_one(run_draft_key(script_id), open_checked))
        return
    button.disable()
    reason = f"This script is {script.status}: only active scripts can run."
    if can(actor.user, Permission.edit_scripts):

        async def activate() -> None:
            current = await guard(Permission.edit_scripts)
            if current is None or script_id is None:
                return
            done = await run_action(
                lambda: call(scripts.update, current, script_id, {"status": ScriptStatus.active.value}),
                "Activated: the script can run now",
            )
            if done is not None:
                ui.navigate.reload()

        ui.button("Activate", icon="check_circle", on_click=one_click(activate)).props(
            'unelevated color=primary data-testid="activate-button"'
        )
    else:
        reason += " An operator or an admin can activate it."
    ui.label(reason).classes("text-caption text-grey-8 self-center").props('data-testid="not-runnable"')
