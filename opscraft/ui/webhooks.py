"""The script page's Webhooks tab: inbound URLs that start the script (URL shown once); add,
edit, pause/resume, delete."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from nicegui import context, ui

from opscraft import runtime
from opscraft.db.models import Script, SignatureScheme, WebhookTrigger
from opscraft.services import scripts, secrets, webhooks
from opscraft.services.actor import Actor
from opscraft.services.permissions import Permission, can
from opscraft.ui import ansible_fields, automation_terraform, drafts, labels
from opscraft.ui import secrets as ui_secrets
from opscraft.ui.choices import first_choices, searched_select, secret_search
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
    format_time,
    longest,
    once_per_double_click,
    one_shot,
    opens_dialog,
    page_dialog,
    prose_input,
    shown_once,
    stored_base,
    stored_json_text,
    stored_note,
    text_input,
    top_level_fields,
)


def _page_origin() -> str:
    """The address the browser opened this page at (`http://ops.example.com:8080`), for a full
    webhook URL when OPSCRAFT_PUBLIC_URL is not set: a path alone (`/api/v1/hooks/...`) cannot be
    pasted into a sender's settings, and its token is shown only once."""
    request = context.client.request
    return str(request.base_url).rstrip("/") if request is not None else ""


def _draft_key(script_id: int, hook: WebhookTrigger | None) -> str:
    """The tab's draft of the webhook dialog: `webhook:<script id>:new` or `...:<webhook id>`."""
    return f"webhook:{script_id}:{'new' if hook is None else hook.id}"


@script_tab("webhooks", "Webhooks", "webhook", order=70)
async def webhooks_tab(actor: Actor, script: Script, _address: TabAddress) -> None:
    """The script page's Webhooks tab: the script's webhooks, editable with edit_scripts; a new webhook's
    URL is shown once.
    """
    assert script.id is not None
    script_id, script_type = script.id, script.script_type
    edit = can(actor.user, Permission.edit_scripts)
    origin = _page_origin()  # read while the page is built: the creation dialog is gone by the URL's turn
    ui.label(
        "POST JSON to a webhook's URL to start this script; map body fields to parameters with JSON "
        "pointers. Runs start on behalf of the webhook's owner. To accept only calls signed by the "
        "sender, choose a signing secret: its value is the key the sender signs with, in the "
        "signature form chosen (OpsCraft's, GitHub's or GitLab's)."
    ).classes("text-grey-7")

    reads = OneRead()  # the tab's reads of its list, one at a time (`follow`)
    # Signing secret id -> until when its previous value is accepted (its rotation window), as of
    # the last read: each row says so, and offers to end it.
    previous: dict[int, datetime] = {}
    end_previous = can(actor.user, Permission.manage_secrets)

    async def read(reader: Actor) -> list[WebhookTrigger]:
        hooks = await call_all(webhooks.list_for_script, reader, script_id)
        signing = sorted({hook.secret_id for hook in hooks if hook.secret_id is not None})
        previous.clear()
        previous.update(await call(secrets.previous_accepted_until, signing))
        return hooks

    async def update() -> None:
        """Show the webhooks as stored now (a change here, in another tab, through the API)."""
        await reread(read, body.show, Permission.view_scripts, reads=reads)

    def _row(hook: WebhookTrigger) -> None:
        with ui.card().classes("w-full gap-1").props(f'data-testid="webhook-{hook.id}"'):
            with ui.row().classes("items-center gap-3 w-full"):
                ui.icon("webhook", color="primary" if hook.enabled else "grey")
                ui.label(hook.name).classes("font-semibold oc-wrap min-w-0")
                ui.label(f"/api/v1/hooks/{hook.id}/{hook.prefix}…").classes("font-mono text-grey-8")
                if hook.secret_id:
                    scheme = hook.signature_scheme
                    form = "" if scheme == SignatureScheme.opscraft else f" ({scheme})"
                    ui.label(f"signed{form}").classes("text-caption text-positive")
                ui.space()
                if edit:
                    ui.button("Edit", on_click=opens_dialog(lambda h=hook: open_form(h))).props(
                        f'flat dense data-testid="webhook-edit-{hook.id}"'
                    )
                    once_per_double_click(
                        ui.button("Pause" if hook.enabled else "Resume"), lambda h=hook: toggle(h)
                    ).props(f'flat dense data-testid="webhook-toggle-{hook.id}"')
                    delete = ui.button(icon="delete", on_click=opens_dialog(lambda h=hook: remove(h))).props(
                        f'flat round dense color=negative data-testid="webhook-delete-{hook.id}"'
                    )
                    delete.props["aria-label"] = (
                        f"Delete webhook {hook.name}"  # free text: a value, not props
                    )
                elif not hook.enabled:
                    ui.label("paused").classes("text-caption text-grey-7")
            mapping = ", ".join(f"{k} ← {v}" for k, v in hook.mapping.items()) or "no mapping"
            ui.label(f"{mapping} · last called {format_time(hook.last_called_at)}").classes(
                "text-caption oc-wrap"
            )
            if hook.secret_id is not None and (until := previous.get(hook.secret_id)) is not None:
                with ui.row().classes("items-center gap-2"):
                    ui.label(f"old key accepted until {format_time(until)}").classes(
                        "text-caption text-warning"
                    ).props(f'data-testid="webhook-previous-{hook.id}"')
                    if end_previous:
                        ui.button(
                            "Refuse old key now", on_click=opens_dialog(lambda h=hook, u=until: refuse(h, u))
                        ).props(f'flat dense data-testid="webhook-end-previous-{hook.id}"')
            automation_terraform.caption(
                hook.terraform_action, hook.terraform_workspace, f"webhook-terraform-{hook.id}"
            )
            ansible_fields.caption(hook.run_options, f"webhook-ansible-{hook.id}")
            stored_note(hook, f"webhook-stored-{hook.id}")

    async def remove(hook: WebhookTrigger) -> None:
        if await guard(Permission.edit_scripts) is None or hook.id is None:
            return
        question = f"Delete the webhook {hook.name}?"
        current = await confirmed(
            Permission.edit_scripts, question, "Callers of its URL get 404 from then on."
        )
        if current is None:
            return
        await run_action(lambda: call(webhooks.delete, current, hook.id, script_id), "Webhook deleted")
        await update()

    async def refuse(hook: WebhookTrigger, until: datetime) -> None:
        """End the rotation window of the webhook's signing secret (for every webhook it signs)."""
        current = await guard(Permission.manage_secrets)
        if current is None or hook.secret_id is None:
            return
        signing = await run_action(lambda: call(secrets.get, current, hook.secret_id))
        if signing is not None:
            await ui_secrets.refuse_previous(hook.secret_id, signing.secret.name, format_time(until))
        await update()

    async def toggle(hook: WebhookTrigger) -> None:
        """Pause or resume: only the switch is sent (the page's copy of the rest may be older)."""
        current = await guard(Permission.edit_scripts)
        if current is None or hook.id is None:
            return
        data = {"enabled": not hook.enabled}
        saved = await run_action(
            lambda: call(webhooks.update_webhook, current, hook.id, data, script_id), "Saved"
        )
        if saved is not None:
            await update()

    async def open_form(hook: WebhookTrigger | None = None) -> None:
        """The webhook dialog: empty to add one (its URL is shown once after), filled with
        `hook`'s settings to edit it (its URL stays; Save sends only the fields changed here:
        `widgets.changed`)."""
        current = await guard(Permission.edit_scripts)
        if current is None:
            return
        fresh = await run_action(lambda: call(scripts.get, current, script_id))  # its parameters now
        if fresh is None:
            return
        loaded = None
        chosen = None
        stored_params = stored_values(hook)
        stored_action = hook.terraform_action if hook is not None else None
        with_terraform = automation_terraform.shown_for(script_type, stored_action)
        stored_options = hook.run_options if hook is not None else None
        with_ansible = ansible_fields.shown_for(script_type, stored_options)
        if hook is not None:
            loaded = {
                "name": hook.name,
                "mapping": stored_json_text(hook, "mapping"),
                "parameters": stored_params,
                "secret_id": hook.secret_id,
                "signature_scheme": hook.signature_scheme,
            }
            if with_terraform:
                loaded |= automation_terraform.loaded(stored_action, hook.terraform_workspace)
            if with_ansible:
                loaded["run_options"] = stored_options
            if hook.secret_id is not None:
                signing = await run_action(lambda: call(secrets.get, current, hook.secret_id))
                if signing is None:
                    return
                chosen = (hook.secret_id, signing.secret.name)
        start = loaded or {
            "name": "",
            "mapping": "{}",
            "secret_id": None,
            "signature_scheme": SignatureScheme.opscraft.value,
        } | (automation_terraform.loaded(None, None) if with_terraform else {})
        title = "Add a webhook" if hook is None else f"Edit the webhook {hook.name}"
        secrets_first = await first_choices(secret_search(actor))
        with page_dialog() as dialog, dialog_card(title) as card:  # the rows are redrawn live
            name = text_input(
                "Name",
                "webhook-name",
                value=start["name"],
                autofocus=True,
                limit=longest(webhooks.WebhookIn, "name"),
            )
            mapping = prose_input(
                'Mapping (JSON: {"PARAM": "/json/pointer"})', "webhook-mapping", value=start["mapping"]
            )
            if fresh.parameters:
                ui.label("Fixed parameters (a mapped value from the body replaces one)").classes(
                    "text-subtitle2 text-grey-8"
                )
            # None required: the body may give it (`parameters.check_preset` says when nothing does);
            # an empty one is the script's default at each call, never stored as fixed.
            fixed = ParameterFields(fresh.parameters, stored_params, required=False, filled=False)
            secret = searched_select(
                "Signing secret (vault, optional)",
                "webhook-secret",
                secrets_first,
                clearable=True,
                chosen=chosen,
            )
            scheme = ui.select(
                labels.SIGNATURE_SCHEME, value=start["signature_scheme"], label="Signature form (when signed)"
            ).props('outlined dense data-testid="webhook-signature-scheme"')
            terraform = automation_terraform.terraform_fields("webhook", start) if with_terraform else None
            ansible = None
            if with_ansible:
                ansible = ansible_fields.ansible_fields("webhook-ansible", stored_options)
            fields = {"name": name, "mapping": mapping} | fixed.inputs()
            fields |= {"secret_id": secret, "signature_scheme": scheme}
            fields |= terraform.inputs() if terraform else {}
            fields |= ansible.inputs() if ansible else {}
            # Not the signing secret: a searched select's label names no option the form holds.
            kept = {key: element for key, element in fields.items() if key != "secret_id"}
            edited = ("name", "mapping", "parameters", "secret_id", "signature_scheme")
            base = None if hook is None else stored_base(hook, edited)
            draft = drafts.dialog_draft(_draft_key(script_id, hook), card, kept, base, hook)

            async def save(current: Actor) -> Any:
                values = {
                    "name": name.value or "",
                    "mapping": mapping.value or "{}",
                    "parameters": fixed.values(),
                    "secret_id": secret.value or None,
                    "signature_scheme": scheme.value,
                } | (terraform.values() if terraform else {})
                if ansible is not None:
                    values["run_options"] = ansible.values()
                # checked by the service as a whole
                data = changed_with_boxes(values, loaded, ("mapping",))
                if hook is None:
                    return await call(webhooks.create, current, script_id, data)
                # a field saved meanwhile in another tab: 409 under it, not undone (`three_way`)
                base = draft.held_base()
                return await call(webhooks.update_webhook, current, hook.id, data, script_id, base=base)

            async def submit() -> None:
                done = "Webhook added" if hook is None else "Webhook saved"
                problems = fields | fixed.problem_inputs()
                saved = await submit_dialog(
                    dialog,
                    Permission.edit_scripts,
                    lambda current: top_level_fields(lambda: save(current), fixed.inputs()),
                    done,
                    problems,
                    draft=draft,
                    redraw=update,
                )
                if saved is not None and hook is None:
                    created, token = saved.result
                    base = runtime.current().settings.public_url or origin
                    shown_url.set_value(base + webhooks.hook_path(created, token))
                    shown.open()

            dialog_buttons(
                dialog, "Add" if hook is None else "Save", "webhook-submit", submit, on_cancel=draft.clear
            )
        dialog.open()

    # Built with the tab (not inside the creation dialog, which is gone by then).
    shown, shown_url = shown_once("Webhook URL", "Copy it now: the token is not shown again.", "webhook-url")

    if edit:
        ui.button("Add webhook", icon="add", on_click=opens_dialog(open_form)).props(
            'unelevated data-testid="webhook-add"'
        )

    body = Rows(
        _row,
        [],
        key=lambda hook: hook.id,
        picture=lambda hook: hook.model_dump() | {"previous": previous.get(hook.secret_id or 0)},
    )

    async def render() -> None:
        """Rendered once the browser is connected (the script page builds faster), then live."""
        body.empty = ("No webhooks yet.", "webhooks-empty")
        rows = await show_and_follow(read, body.show, actor, Permission.view_scripts, reads=reads)
        if rows is None:
            return
        if not edit:
            return

        async def opened() -> dict[str, WebhookTrigger]:
            return {_draft_key(script_id, hook): hook for hook in rows}

        # The dialog whose typing a reload interrupted.
        await drafts.reopen(f"webhook:{script_id}:", open_form, lambda _: opened())

    one_shot(0.1, render)
