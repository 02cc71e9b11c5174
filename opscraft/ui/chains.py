"""Chained runs in the UI: the script page's "Then run" tab (links) and, on a run's page, the
runs it was started by and started."""

from __future__ import annotations

import json
from typing import Any

from nicegui import ui

from opscraft.db import stored_shapes
from opscraft.db.models import ChainLink, Execution, Script
from opscraft.db.models.chains import ChainOutcome
from opscraft.services import chains, scripts
from opscraft.services.actor import Actor
from opscraft.services.chains import ExecutionChain
from opscraft.services.errors import ServiceError
from opscraft.services.permissions import Permission, can
from opscraft.ui import ansible_fields, automation_terraform, drafts
from opscraft.ui.dialog_submit import submit_dialog
from opscraft.ui.layout import confirmed, guard, reread, run_action, show_and_follow
from opscraft.ui.parameter_fields import ParameterFields, stored_values
from opscraft.ui.script_tabs import TabAddress, script_tab
from opscraft.ui.widgets import (
    OneRead,
    Rows,
    call,
    call_all,
    changed_with_boxes,
    dialog_buttons,
    dialog_card,
    live_timer,
    one_shot,
    opens_dialog,
    page_dialog,
    prose_input,
    stored_base,
    stored_json_text,
    stored_note,
    top_level_fields,
)

OUTCOME_LABELS = {
    ChainOutcome.success.value: "succeeds",
    ChainOutcome.failure.value: "fails (failed, timed out, error)",
    ChainOutcome.any.value: "ends (success or failure)",
}


# A script's name (128 characters, maybe without a space) beside a run's link: wrapped anywhere,
# so that a long one stays within a phone's screen (layout's `.oc-wrap`).
SCRIPT_NAME_TEXT = "text-grey-8 oc-wrap min-w-0"


def _draft_key(script_id: int, link: ChainLink | None) -> str:
    """The tab's draft of the "Then run" dialog: `chain:<script id>:new` or `...:<link id>`."""
    return f"chain:{script_id}:{'new' if link is None else link.id}"


@script_tab("chains", "Then run", "account_tree", order=75)
async def chains_tab(actor: Actor, script: Script, _address: TabAddress) -> None:
    """The script page's "Then run" tab: the chain links started when this script's runs end, editable with
    edit_scripts.
    """
    assert script.id is not None
    script_id = script.id
    edit = can(actor.user, Permission.edit_scripts)
    ui.label(
        "When a run of this script ends, start another script. Map its parameters from this run's "
        "parameters and from lines it prints as ::set-output name=NAME::VALUE (one line per value)."
    ).classes("text-grey-7")

    reads = OneRead()  # the tab's reads of its list, one at a time (`follow`)

    async def read(reader: Actor) -> list[tuple[ChainLink, str]]:
        """The links with the name of the script each starts (as it is named now)."""
        links = await call_all(chains.list_for_script, reader, script_id)
        names = await call(chains.script_names, {link.target_script_id for link in links})
        return [(link, names.get(link.target_script_id, f"script {link.target_script_id}")) for link in links]

    async def update() -> None:
        """Show the links as stored now (a change here, in another tab, through the API)."""
        await reread(read, body.show, Permission.view_scripts, reads=reads)

    def _row(link: ChainLink, target: str) -> None:
        with ui.card().classes("w-full gap-1").props(f'data-testid="chain-{link.id}"'):
            with ui.row().classes("items-center gap-3 w-full"):
                ui.icon("account_tree", color="primary" if link.enabled else "grey")
                ui.label(f"When a run {OUTCOME_LABELS.get(link.outcome, link.outcome)}, run").classes(
                    "text-grey-8"
                )
                ui.link(target, f"/scripts/{link.target_script_id}").classes(
                    "font-semibold oc-wrap min-w-0"
                ).props(f'data-testid="chain-target-{link.id}"')
                if not link.enabled:
                    ui.label("disabled").classes("text-caption text-grey-7")
                ui.space()
                if edit:
                    ui.button("Edit", on_click=opens_dialog(lambda k=link, t=target: open_form(k, t))).props(
                        f'flat dense data-testid="chain-edit-{link.id}"'
                    )
                    ui.button(icon="delete", on_click=opens_dialog(lambda k=link: remove(k))).props(
                        'flat round dense color=negative aria-label="Delete link" '
                        f'data-testid="chain-delete-{link.id}"'
                    )
            mapping = ", ".join(f"{k} ← {v}" for k, v in link.mapping.items()) or "no mapping"
            fixed = ", ".join(f"{k} = {json.dumps(v)}" for k, v in link.parameters.items())
            ui.label(mapping + (f" · {fixed}" if fixed else "")).classes("text-caption font-mono oc-wrap")
            automation_terraform.caption(
                link.terraform_action, link.terraform_workspace, f"chain-terraform-{link.id}"
            )
            ansible_fields.caption(link.run_options, f"chain-ansible-{link.id}")
            stored_note(link, f"chain-stored-{link.id}")

    async def remove(link: ChainLink) -> None:
        if await guard(Permission.edit_scripts) is None or link.id is None:
            return
        consequence = "Runs of this script no longer start the other one."
        current = await confirmed(Permission.edit_scripts, "Delete this link?", consequence)
        if current is None:
            return
        await run_action(lambda: call(chains.delete, current, link.id, script_id), "Link deleted")
        await update()

    async def open_form(link: ChainLink | None = None, target_name: str = "") -> None:
        """The "Then run" dialog: a new link, or `link` (starting `target_name`) to edit; an edit
        sends only the fields changed here (`changed`), as the schedule and webhook forms do."""
        targets = await call(chains.target_choices, actor, script_id)
        choices = {i: name for i, name, _ in targets}
        types = {i: kind for i, _, kind in targets}
        loaded: dict[str, Any] | None = None
        if link is not None:
            choices.setdefault(link.target_script_id, target_name)
            loaded = {
                "target_script_id": link.target_script_id,
                "outcome": str(link.outcome),
                "mapping": stored_json_text(link, "mapping"),
                "parameters": stored_values(link),
                "enabled": link.enabled,
            } | automation_terraform.loaded(link.terraform_action, link.terraform_workspace)
            loaded["run_options"] = link.run_options
        start = loaded or {
            "target_script_id": None,
            "outcome": ChainOutcome.success.value,
            "mapping": "{}",
            "enabled": True,
        } | automation_terraform.loaded(None, None)
        with (
            page_dialog() as dialog,  # the rows it was opened from may be redrawn
            dialog_card("Then run" if link is None else f"Edit the link to {target_name}") as card,
        ):
            target = (
                ui.select(choices, value=start["target_script_id"], label="Script to start", with_input=True)
                .props('outlined dense autofocus data-testid="chain-target"')
                .classes("w-full")
            )
            outcome = (
                ui.select(
                    {k: f"when a run {v}" for k, v in OUTCOME_LABELS.items()},
                    value=start["outcome"],
                    label="When",
                )
                .props('outlined dense data-testid="chain-outcome"')
                .classes("w-full")
            )
            mapping = prose_input(
                'Mapping (JSON: {"PARAM": "/parameters/NAME" or "/outputs/NAME"})',
                "chain-mapping",
                value=start["mapping"],
            )
            # The fixed values, one field per parameter of the script chosen to start (`ParameterFields`,
            # as a webhook's: none required, empty ones left to the defaults); built for each choice.
            params_box = ui.column().classes("w-full gap-1")
            fixed: dict[str, ParameterFields] = {}
            # The script the fixed fields are built for, and the dialog's draft once made: the
            # fields are kept in it as the other dialogs' are (their typing was lost to a reload).
            built: dict[str, Any] = {"target": None, "draft": None}

            async def show_parameters(chosen_id: int | None = None) -> None:
                """The fixed fields of `chosen_id` (by default the script chosen), once per script."""
                chosen_id = target.value if chosen_id is None else chosen_id
                if fixed and built["target"] == chosen_id:
                    return
                params_box.clear()
                draft = built["draft"]
                if draft is not None and "fields" in fixed:
                    draft.forget_fields(fixed["fields"].inputs())
                fixed.clear()
                built["target"] = chosen_id
                if chosen_id is None:
                    return
                try:
                    chosen = await call(scripts.get, actor, chosen_id)
                except ServiceError as exc:
                    with params_box:
                        ui.label(exc.message).classes("text-caption text-negative")
                    return
                same = link is not None and chosen_id == link.target_script_id  # its stored values
                with params_box:
                    if chosen.parameters:
                        ui.label("Fixed parameters (a mapped value replaces one)").classes(
                            "text-subtitle2 text-grey-8"
                        )
                    fixed["fields"] = ParameterFields(
                        chosen.parameters, stored_values(link) if same else None, required=False, filled=False
                    )
                if draft is not None:
                    for name, element in fixed["fields"].inputs().items():
                        draft.field(name, element)

            async def fixed_for_draft(stored: dict[str, Any]) -> None:
                """Before a restore: the fixed fields of the script the draft chose (one the
                dialog offers: the draft's label of it read back), for its values."""
                if "target_script_id" in stored:
                    chosen = draft.fields["target_script_id"][1](stored["target_script_id"])
                    if chosen in choices:
                        await show_parameters(chosen)

            await show_parameters()
            target.on_value_change(lambda: show_parameters())
            enabled = ui.switch("Enabled", value=start["enabled"]).props('data-testid="chain-enabled"')
            terraform = automation_terraform.terraform_fields("chain", start, "if the script to start is one")
            fields = {"target_script_id": target, "outcome": outcome, "mapping": mapping}
            with ui.column().classes("w-full gap-0") as ansible_box:
                ansible = ansible_fields.ansible_fields("chain-ansible", loaded and loaded["run_options"])

            def show_ansible() -> None:
                """The Ansible options for an Ansible target, or a link still holding some."""
                stored = loaded["run_options"] if loaded else None
                ansible_box.set_visibility(ansible_fields.shown_for(types.get(target.value, ""), stored))

            show_ansible()
            target.on_value_change(show_ansible)
            fields |= {"enabled": enabled} | terraform.inputs() | ansible.inputs()
            edited = ("target_script_id", "outcome", "mapping", "parameters", "enabled")
            base = None if link is None else stored_base(link, edited)
            kept = fields | (fixed["fields"].inputs() if "fields" in fixed else {})
            draft = drafts.dialog_draft(
                _draft_key(script_id, link), card, kept, base, link, on_restore=fixed_for_draft
            )
            built["draft"] = draft

            async def submit() -> None:
                shown = fixed.get("fields")
                params = shown.inputs() if shown else {}
                problems = fields | (shown.problem_inputs() if shown else {})

                async def save(current: Actor) -> Any:
                    values = {
                        "target_script_id": target.value,
                        "outcome": outcome.value,
                        "mapping": mapping.value or "{}",
                        "parameters": shown.values() if shown else {},
                        "enabled": enabled.value,
                    } | terraform.values()
                    if loaded is not None or ansible_box.visible:
                        values["run_options"] = ansible.values() if ansible_box.visible else None
                    # checked by the service as a whole
                    data = changed_with_boxes(values, loaded, ("mapping",))
                    if link is None:
                        return await call(chains.create, current, script_id, data)
                    # a field saved meanwhile in another tab: 409 under it, not undone (`three_way`)
                    base = draft.held_base()
                    return await call(chains.update_link, current, link.id, data, script_id, base=base)

                done = "Link added" if link is None else "Link saved"
                await submit_dialog(
                    dialog,
                    Permission.edit_scripts,
                    lambda current: top_level_fields(lambda: save(current), params),
                    done,
                    problems,
                    draft=draft,
                    redraw=update,
                )

            dialog_buttons(
                dialog, "Add" if link is None else "Save", "chain-submit", submit, on_cancel=draft.clear
            )
        dialog.open()

    if edit:
        ui.button("Add link", icon="add", on_click=opens_dialog(open_form)).props(
            'unelevated data-testid="chain-add"'
        )

    # Live as the schedules' and webhooks' tabs: another user's new link, a link disabled by its
    # target's deletion or a target renamed showed only after a reload.
    body = Rows(
        lambda row: _row(*row),
        [],
        key=lambda row: row[0].id,
        picture=lambda row: (row[0].model_dump(), row[1], stored_shapes.note(row[0])),
    )

    async def render() -> None:
        """Rendered once the browser is connected: the script page builds faster; then live, and
        the dialog whose typing a reload interrupted is opened again (the tab's draft of it)."""
        body.empty = ("No links yet.", "chains-empty")
        if await show_and_follow(read, body.show, actor, Permission.view_scripts, reads=reads) is None:
            return
        if not edit:
            return
        await drafts.reopen(f"chain:{script_id}:", reopen_form, lambda _: listed())

    async def listed() -> dict[str, ChainLink]:
        links = await call_all(chains.list_for_script, actor, script_id)
        return {_draft_key(script_id, link): link for link in links}

    async def reopen_form(link: ChainLink | None) -> None:
        names = await call(chains.script_names, {link.target_script_id} if link else set())
        await open_form(link, names.get(link.target_script_id, "") if link else "")

    one_shot(0.1, render)


def _chain_key(chain: ExecutionChain) -> tuple[Any, ...]:
    return (
        chain.started_by.run.id if chain.started_by else None,
        tuple((s.run.id, s.run.status, s.run.execution_id) for s in chain.started),
    )


async def chain_panel(actor: Actor, execution: Execution) -> None:
    """On the run page: "Started by run #N" and "Started run #M" (or why a link did not start
    a run); follows the run until its links have fired."""
    assert execution.id is not None
    execution_id = execution.id
    state: dict[str, Any] = {"chain": await call(chains.chain_of, actor, execution_id)}

    @ui.refreshable
    def panel() -> None:
        chain: ExecutionChain = state["chain"]
        if chain.started_by is None and not chain.started:
            return
        with ui.card().classes("w-full gap-1").props('data-testid="chain-panel"'):
            ui.label("Chained runs").classes("text-subtitle1 font-medium")
            if chain.started_by is not None:
                parent = chain.started_by.run
                with ui.row().classes("items-center gap-2"):
                    ui.icon("north_west", color="primary")
                    ui.label("Started by")
                    ui.link(
                        f"run #{parent.source_execution_id}", f"/executions/{parent.source_execution_id}"
                    ).props('data-testid="chain-started-by"')
                    source = chain.started_by.script_name or "a deleted script"
                    ui.label(f"of {source}").classes(SCRIPT_NAME_TEXT)
            for step in chain.started:
                run = step.run
                with ui.row().classes("items-center gap-2").props(f'data-testid="chain-step-{run.id}"'):
                    ui.icon("south_east", color="primary" if run.execution_id else "grey")
                    if run.execution_id is not None:
                        ui.label("Started")
                        ui.link(f"run #{run.execution_id}", f"/executions/{run.execution_id}").props(
                            f'data-testid="chain-started-{run.execution_id}"'
                        )
                        ui.label(f"of {step.script_name or 'a deleted script'}").classes(SCRIPT_NAME_TEXT)
                    elif run.status in ("pending", "starting"):
                        ui.label(f"Starting {step.script_name or 'a script'}…").classes(SCRIPT_NAME_TEXT)
                    else:
                        ui.label(
                            f"Did not start {step.script_name or 'a script'}: {run.error or run.status}"
                        ).classes("text-negative oc-wrap min-w-0")

    panel()

    async def follow() -> None:
        chain = await call(chains.chain_of, actor, execution_id)
        if _chain_key(chain) != _chain_key(state["chain"]):
            state["chain"] = chain
            panel.refresh()
        if chain.settled:
            timer.deactivate()

    if not state["chain"].settled:
        timer = live_timer(2.0, follow)
