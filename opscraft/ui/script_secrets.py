"""The script page's Secrets tab: which secrets a script runs with; attach and detach.

Everyone who sees the script sees the names of its secrets (the script refers to them by name
anyway); only operators and admins attach and detach. Values are never shown.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from opscraft import runtime
from opscraft.db.models import Script
from opscraft.services import secrets
from opscraft.services.actor import Actor
from opscraft.services.permissions import Permission, can
from opscraft.services.secrets import Attachment
from opscraft.ui.choices import first_choices, searched_select, secret_search
from opscraft.ui.layout import guard, reread, run_action, show_and_follow
from opscraft.ui.script_tabs import TabAddress, script_tab
from opscraft.ui.widgets import OneRead, Rows, call_all, format_time, one_click


@script_tab("secrets", "Secrets", "key")
async def secrets_tab(actor: Actor, script: Script, _address: TabAddress) -> None:
    """The script page's Secrets tab: the secrets attached to the script; attaching and detaching need
    manage_secrets.
    """
    assert script.id is not None
    script_id = script.id
    manage = can(actor.user, Permission.manage_secrets)
    ui.label(
        "Attached secrets are passed to every run as environment variables of the same name; "
        "their values never appear in the output (they are masked as ***)."
    ).classes("text-grey-7")

    taken: set[int] = set()  # the attached secrets' ids: the attach form offers the others
    reads = OneRead()  # the tab's reads of its list, one at a time (`follow`)

    async def read(reader: Actor) -> list[Attachment]:
        return await call_all(secrets.list_for_script, reader, script_id)

    def show(attached: list[Attachment]) -> bool:
        taken.clear()
        taken.update(item.secret_id for item in attached)
        return rows.show(attached)

    async def update() -> None:
        """Show the attachments as stored now (a change here, in another tab, through the API)."""
        await reread(read, show, Permission.view_scripts, reads=reads)

    def _attachment_row(item: Attachment, manage: bool) -> None:
        with ui.row().classes("items-center gap-3 w-full"):
            ui.icon("key", color="primary")
            ui.label(item.name).classes("font-mono").props(f'data-testid="attached-{item.name}"')
            by = f" by {item.attached_by_name}" if item.attached_by_name else ""
            ui.label(f"attached {format_time(item.attached_at)}{by}").classes("text-caption text-grey-7")
            if manage:
                ui.button(icon="link_off", on_click=lambda i=item: detach(i)).props(
                    f'flat round dense color=negative aria-label="Detach {item.name}" '
                    f'data-testid="detach-{item.name}"'
                ).tooltip("Detach")

    @ui.refreshable
    async def attach_form() -> None:
        """Redrawn after this tab's own attach or detach (its choices then leave out what is
        attached), not at a live re-read: a choice being made stays."""
        first = await first_choices(secret_search(actor, taken))
        with ui.row().classes("items-center gap-2 mt-2"):
            select = searched_select("Secret to attach", "attach-select", first)
            select.classes("w-72")
            ui.button("Attach", icon="link", on_click=one_click(lambda: attach(select))).props(
                'unelevated data-testid="attach-submit"'
            )
            ui.link("Manage secrets", "/secrets").classes("text-caption")
        if not select.options:
            ui.label(
                "Every secret is attached already, or none exists: create one on the Secrets page."
            ).classes("text-caption text-grey-7")

    async def change(call: Any, done: str, fields: dict[str, Any] | None = None) -> None:
        current = await guard(Permission.manage_secrets)
        if current is None:
            return

        async def action() -> bool:
            async with runtime.current().db.session() as s:
                await call(s, current)
            return True

        if await run_action(action, done, fields):
            await update()
            attach_form.refresh()

    async def attach(select: ui.select) -> None:
        secret_id = select.value
        if secret_id is None:
            select.error = "Choose the secret to attach first"
            return
        await change(
            lambda s, a: secrets.attach(s, a, script_id, secret_id), "Secret attached", {"secret_id": select}
        )

    async def detach(item: Attachment) -> None:
        await change(lambda s, a: secrets.detach(s, a, script_id, item.secret_id), f"{item.name} detached")

    # Live as the other lists: another user's attach or detach showed only after a reload.
    rows = Rows(lambda item: _attachment_row(item, manage), [], key=lambda item: item.secret_id)
    rows.container.classes(replace="w-full gap-1").props('data-testid="script-secrets"')
    rows.empty = ("No secrets are attached to this script.", "script-secrets-empty")
    if await show_and_follow(read, show, actor, Permission.view_scripts, reads=reads) is None:
        return
    if manage:
        await attach_form()
