"""The Inventories page: shared Ansible inventories (everyone reads; operators and admins edit).

Rules and checks are services/shared_inventories.py's; problems show under their fields."""

from __future__ import annotations

from nicegui import ui

from opscraft import runtime
from opscraft.db.models import Inventory
from opscraft.db.models.inventories import content_sha256
from opscraft.services import partial, scripts, shared_inventories
from opscraft.services.actor import Actor
from opscraft.services.inventory_errors import syntax
from opscraft.services.permissions import Permission, can
from opscraft.ui import drafts
from opscraft.ui.dialog_submit import submit_dialog
from opscraft.ui.inventory_versions import version_url
from opscraft.ui.layout import confirmed, frame, guard, protected_page, run_action
from opscraft.ui.widgets import (
    TALL_TEXT_PROPS,
    Redrawn,
    call,
    call_all,
    dialog_buttons,
    dialog_card,
    format_time,
    live_seconds,
    live_timer,
    long_text,
    longest,
    one_shot,
    opens_dialog,
    page_dialog,
    prose_input,
    text_input,
)

Listed = list[tuple[Inventory, list[str]]]
"""The listed inventories with the names of the scripts that use each."""


def _draft_key(inventory: Inventory | None) -> str:
    """The tab's draft of the inventory dialog: `inventory:new` or `inventory:<id>`."""
    return f"inventory:{'new' if inventory is None else inventory.id}"


def _picture(listed: Listed | None) -> object:
    """What the list shows of `listed`: a redraw happens only when this changes
    (`widgets.Redrawn`), so a button being clicked is not replaced by an identical one."""
    if listed is None:
        return None
    return [
        (i.id, i.name, i.description, i.version, i.updated_at, content_sha256(i.content), tuple(used))
        for i, used in listed
    ]


@protected_page("/inventories", Permission.view_scripts, title="Inventories")
async def inventories_page(actor: Actor) -> None:
    """Page /inventories (needs view_scripts): the shared Ansible inventories and the scripts using each;
    creating and editing need edit_scripts.
    """
    edit = can(actor.user, Permission.edit_scripts)
    with frame(actor, "Inventories"):
        ui.label(
            "Shared Ansible inventories (INI or YAML): an Ansible script uses one instead of its own "
            "inventory text; each run reads it when it starts."
        ).classes("text-grey-7")

        async def load() -> Listed | None:
            async def read() -> Listed:
                rows = await call_all(shared_inventories.list_all, actor)
                async with runtime.current().db.session() as session:
                    return [(row, await shared_inventories.used_by(session, row.id or 0)) for row in rows]

            return await run_action(read)

        def draw(listed: Listed | None) -> None:
            if listed is None:  # refused: the message is in a notification
                return
            if not listed:
                ui.label("No shared inventories yet.").props('data-testid="inventories-empty"')
            for inventory, used in listed:
                _row(inventory, used)

        def _row(inventory: Inventory, used: list[str]) -> None:
            assert inventory.id is not None
            with ui.card().classes("w-full gap-1").props(f'data-testid="inventory-{inventory.name}"'):
                with ui.row().classes("items-center gap-3 w-full"):
                    ui.icon("lan", color="primary")
                    ui.label(inventory.name).classes("font-semibold oc-wrap min-w-0")
                    ui.label(inventory.description).classes("text-grey-8 oc-wrap min-w-0")
                    ui.space()
                    ui.label(f"updated {format_time(inventory.updated_at)}").classes("text-caption")
                    if edit:
                        # Named with the inventory (names are letters, digits, '.', '_', '-'):
                        # a screen reader's list of buttons said "Edit" once per inventory.
                        ui.button(icon="edit", on_click=opens_dialog(lambda i=inventory: open_form(i))).props(
                            f'flat round dense aria-label="Edit {inventory.name}" '
                            f'data-testid="inventory-edit-{inventory.name}"'
                        ).tooltip("Edit")
                        ui.button(icon="delete", on_click=opens_dialog(lambda i=inventory: remove(i))).props(
                            f'flat round dense color=negative aria-label="Delete {inventory.name}" '
                            f'data-testid="inventory-delete-{inventory.name}"'
                        ).tooltip("Delete")
                uses = f"Used by: {', '.join(used)}" if used else "Not used by any script"
                sha = content_sha256(inventory.content)[: shared_inventories.SHA_SHOWN]
                with ui.row().classes("items-center gap-2"):
                    ui.label(f"{uses} · content SHA-256 {sha} (runs show the one they read) ·").classes(
                        "text-caption"
                    ).props(f'data-testid="inventory-uses-{inventory.name}"')
                    ui.link(
                        f"version {inventory.version} and history",
                        version_url(inventory.id, inventory.version),
                    ).classes("text-caption").props(f'data-testid="inventory-history-{inventory.name}"')
                if problem := shared_inventories.stored_problem(inventory.content):
                    ui.label(problem).classes("text-caption text-negative oc-wrap").props(
                        f'data-testid="inventory-problem-{inventory.name}"'
                    )
                long_text(inventory.content, syntax(inventory.content), "Show the inventory")

        async def remove(inventory: Inventory) -> None:
            if await guard(Permission.edit_scripts) is None or inventory.id is None:
                return
            current = await confirmed(
                Permission.edit_scripts,
                f"Delete the inventory {inventory.name}?",
                "It is removed for good (one a script uses is refused).",
            )
            if current is None:
                return
            done = await run_action(
                lambda: _delete(current, inventory.id or 0), f"Inventory {inventory.name} deleted"
            )
            if done:
                await update()

        async def _delete(current: Actor, inventory_id: int) -> bool:
            await call(shared_inventories.delete, current, inventory_id)
            return True

        async def _save(current: Actor, inventory: Inventory | None, data: dict[str, str]) -> Inventory:
            if inventory is None or inventory.id is None:
                return await call(shared_inventories.create, current, data)
            return await call(shared_inventories.update, current, inventory.id, data)

        async def open_form(listed: Inventory | None) -> None:
            inventory = listed
            if listed is not None and listed.id is not None:  # as stored now, not as last listed
                inventory = await run_action(lambda: call(shared_inventories.get, actor, listed.id or 0))
                if inventory is None:
                    await update()
                    return
            title = f"Edit {inventory.name}" if inventory else "New inventory"
            with page_dialog() as dialog, dialog_card(title).classes("w-[48rem]") as card:
                name = text_input(
                    "Name",
                    "inventory-name",
                    value=inventory.name if inventory else "",
                    autofocus=True,
                    limit=scripts.MAX_NAME,
                )
                description = prose_input(
                    "Description",
                    "inventory-description",
                    value=inventory.description if inventory else "",
                    limit=longest(shared_inventories.InventoryIn, "description"),
                )
                content = (
                    ui.textarea(
                        "Inventory (INI or YAML; host and group variables included)",
                        value=inventory.content if inventory else "",
                    )
                    .props(f'outlined {TALL_TEXT_PROPS} input-class="font-mono"')
                    .props('data-testid="inventory-content"')
                    .classes("w-full")
                )
                fields = {"name": name, "description": description, "content": content}
                base = None
                if inventory is not None:  # the content by its digest, as the service compares it
                    base = {"name": inventory.name, "description": inventory.description}
                    base["content_sha256"] = content_sha256(inventory.content)
                draft = drafts.dialog_draft(_draft_key(inventory), card, fields, base, inventory)

                async def save(current: Actor) -> Inventory:
                    data = {
                        "name": name.value or "",  # the service trims it (names.trimmed)
                        "description": description.value or "",
                        "content": content.value or "",
                    }
                    if inventory is not None:  # only what was edited: another tab's save stays
                        shown = {"name": inventory.name, "description": inventory.description}
                        data = partial.edited(shown | {"content": inventory.content}, data)
                        # as when the edit started (a restored draft's): saved meanwhile, 409 under it
                        held = draft.held_base()
                        data["base"] = {key: held.get(key, shown[key]) for key in shown}
                        if "content" in data:  # refused if another save changed the text meanwhile
                            data["base_content_sha256"] = held.get("content_sha256") or content_sha256(
                                inventory.content
                            )
                    return await _save(current, inventory, data)

                async def submit() -> None:
                    await submit_dialog(
                        dialog,
                        Permission.edit_scripts,
                        save,
                        "Inventory saved",
                        fields,
                        draft=draft,
                        redraw=update,
                    )

                dialog_buttons(dialog, "Save", "inventory-save", submit, on_cancel=draft.clear)
            dialog.open()

        if edit:  # as wide as its label: the page's column stretches what stands in it
            ui.button("New inventory", icon="add", on_click=opens_dialog(lambda: open_form(None))).props(
                'unelevated data-testid="inventory-new"'
            ).classes("self-start")
        shown = Redrawn(draw, await load(), _picture)

        async def update() -> None:
            """Redraw the rows when they differ from the database's (a save here, or in another
            tab, by another user, through the API: the list followed none of those)."""
            shown.show(await load())

        live_timer(live_seconds(), update)

        async def listed() -> dict[str, Inventory]:
            return {_draft_key(inventory): inventory for inventory, _ in await load() or []}

        if edit:  # the dialog whose typing a reload interrupted (the tab's draft of it)
            one_shot(0, lambda: drafts.reopen("inventory:", open_form, lambda _: listed()))
