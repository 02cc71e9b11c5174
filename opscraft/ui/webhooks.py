"""The script page's Webhooks tab: inbound URLs that start the script (URL shown once)."""

from __future__ import annotations

from typing import Any

from nicegui import context, ui

from opscraft import runtime
from opscraft.db.models import Script, WebhookTrigger
from opscraft.services import webhooks
from opscraft.services.actor import Actor
from opscraft.services.parameters import json_from_text
from opscraft.services.permissions import Permission, can
from opscraft.ui.choices import searched_select, secret_search
from opscraft.ui.layout import guard, run_action
from opscraft.ui.script_tabs import script_tab
from opscraft.ui.widgets import call, confirm, dialog_buttons, dialog_card, format_time, text_input


def _page_origin() -> str:
    """The address the browser opened this page at (`http://ops.example.com:8080`), for a full
    webhook URL when OPSCRAFT_PUBLIC_URL is not set: a path alone (`/api/v1/hooks/...`) cannot be
    pasted into a sender's settings, and its token is shown only once."""
    request = context.client.request
    return str(request.base_url).rstrip("/") if request is not None else ""


@script_tab("webhooks", "Webhooks", "webhook", order=70)
async def webhooks_tab(actor: Actor, script: Script) -> None:
    assert script.id is not None
    script_id = script.id
    edit = can(actor.user, Permission.edit_scripts)
    origin = _page_origin()  # read while the page is built: the creation dialog is gone by the URL's turn
    ui.label(
        "POST JSON to a webhook's URL to start this script; map body fields to parameters with JSON "
        "pointers. Runs start on behalf of the webhook's owner. See docs/automation.md for signing."
    ).classes("text-grey-7")

    @ui.refreshable
    async def body() -> None:
        rows = await run_action(lambda: call(webhooks.list_for_script, actor, script_id))
        if rows is None:
            return
        if not rows:
            ui.label("No webhooks yet.").props('data-testid="webhooks-empty"')
        for hook in rows:
            _row(hook)

    def _row(hook: WebhookTrigger) -> None:
        with ui.card().classes("w-full gap-1").props(f'data-testid="webhook-{hook.id}"'):
            with ui.row().classes("items-center gap-3 w-full"):
                ui.icon("webhook", color="primary" if hook.enabled else "grey")
                ui.label(hook.name).classes("font-semibold")
                ui.label(f"/api/v1/hooks/{hook.id}/{hook.prefix}…").classes("font-mono text-grey-8")
                if hook.secret_id:
                    ui.label("signed").classes("text-caption text-positive")
                ui.space()
                if edit:
                    delete = ui.button(icon="delete", on_click=lambda h=hook: remove(h)).props(
                        f'flat round dense color=negative data-testid="webhook-delete-{hook.id}"'
                    )
                    delete.props["aria-label"] = (
                        f"Delete webhook {hook.name}"  # free text: a value, not props
                    )
            mapping = ", ".join(f"{k} ← {v}" for k, v in hook.mapping.items()) or "no mapping"
            ui.label(f"{mapping} · last called {format_time(hook.last_called_at)}").classes("text-caption")

    async def remove(hook: WebhookTrigger) -> None:
        current = await guard(Permission.edit_scripts)
        if current is None or hook.id is None:
            return
        if not await confirm(f"Delete the webhook {hook.name}?", "Callers of its URL get 404 from then on."):
            return
        await run_action(lambda: call(webhooks.delete, current, hook.id, script_id), "Webhook deleted")
        body.refresh()

    async def open_add() -> None:
        with ui.dialog() as dialog, dialog_card("Add a webhook"):
            name = text_input("Name", "webhook-name", autofocus=True)
            mapping = text_input('Mapping (JSON: {"PARAM": "/json/pointer"})', "webhook-mapping")
            mapping.value = "{}"
            fixed = text_input("Fixed parameters (JSON object)", "webhook-params")
            fixed.value = "{}"
            secret = await searched_select(
                "Signing secret (vault, optional)", "webhook-secret", secret_search(actor), clearable=True
            )

            async def submit() -> None:
                current = await guard(Permission.edit_scripts)
                if current is None:
                    return

                async def save() -> Any:
                    data = {  # checked by the service as a whole: every problem at once
                        "name": name.value or "",
                        "mapping": json_from_text(mapping.value),
                        "parameters": json_from_text(fixed.value),
                        "secret_id": secret.value or None,
                    }
                    return await call(webhooks.create, current, script_id, data)

                fields = {"name": name, "mapping": mapping, "parameters": fixed, "secret_id": secret}
                created = await run_action(save, "Webhook added", fields)
                if created is not None:
                    dialog.delete()
                    body.refresh()
                    hook, token = created
                    base = runtime.current().settings.public_url or origin
                    shown_url.set_value(base + webhooks.hook_path(hook, token))
                    shown.open()

            dialog_buttons(dialog, "Add", "webhook-submit", submit)
        dialog.open()

    # Built with the tab (not inside the creation dialog, which is gone by then).
    with ui.dialog() as shown, dialog_card("Webhook URL"):
        ui.label("Copy it now: the token is not shown again.").classes("text-warning")
        shown_url = (
            ui.input().props('readonly outlined dense data-testid="webhook-url"').classes("w-full font-mono")
        )
        ui.button("Done", on_click=lambda: (shown_url.set_value(""), shown.close())).props("unelevated")

    if edit:
        ui.button("Add webhook", icon="add", on_click=open_add).props('unelevated data-testid="webhook-add"')

    async def render() -> None:
        """Rendered once the browser is connected: the script page builds faster."""
        with container:
            await body()

    container = ui.column().classes("w-full gap-2")
    ui.timer(0.1, render, once=True)
