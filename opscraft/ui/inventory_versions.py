"""A shared inventory's version page: one content it has had, what changed from the version
before, and every version (newest first), so that the hosts a past run targeted stay readable
after the inventory changed (a run's page links to the version it read).

Rules are services/shared_inventories.py's (everyone with a role reads them)."""

from __future__ import annotations

from nicegui import ui

from opscraft.services import shared_inventories
from opscraft.services.actor import Actor
from opscraft.services.errors import ServiceError
from opscraft.services.inventory_errors import syntax
from opscraft.services.permissions import Permission
from opscraft.ui import side_by_side
from opscraft.ui.layout import frame, protected_page
from opscraft.ui.not_found import missing
from opscraft.ui.widgets import call, code_block, format_time

# Versions listed on the page, newest first (the API pages through all of them).
LISTED = 200


def version_url(inventory_id: int, number: int) -> str:
    """The address of version `number` of the inventory `inventory_id`."""
    return f"/inventories/{inventory_id}/versions/{number}"


@protected_page("/inventories/{inventory_id}/versions/{number}", Permission.view_scripts, title="Inventory")
async def inventory_version_page(actor: Actor, inventory_id: int, number: int) -> None:
    """Page /inventories/{id}/versions/{number} (needs view_scripts): one saved version of an inventory,
    with its changes from the previous version side by side; an unknown one shows a not-found page.
    """
    try:
        inventory = await call(shared_inventories.get, actor, inventory_id)
        shown = await call(shared_inventories.get_version, actor, inventory_id, number)
        rows, total = await call(shared_inventories.list_versions, actor, inventory_id, limit=LISTED)
        before = None
        if number > 1:
            before = await call(shared_inventories.get_version, actor, inventory_id, number - 1)
    except ServiceError as exc:
        with frame(actor, "Inventory"):
            missing(exc.message, "Back to the inventories", "/inventories", exc.status_code)
        return
    version = shown.version
    current = number == inventory.version
    with frame(actor, f"{inventory.name}, version {number}"):
        ui.link("All inventories", "/inventories").classes("text-caption")
        with ui.row().classes("items-center gap-2"):
            ui.label(f"Version {number} of {inventory.version}").classes("text-h6").props(
                'data-testid="inventory-version-title"'
            )
            if current:
                ui.badge("current", color="positive").props('data-testid="inventory-version-current"')
        ui.label(
            f"Saved {format_time(version.created_at)} by {shown.author_name or 'a deleted user'} · "
            f"content SHA-256 {version.content_sha256}"
        ).classes("text-caption break-all").props('data-testid="inventory-version-facts"')
        code_block(version.content, syntax(version.content)).classes("w-full").props(
            'data-testid="inventory-version-content"'
        )
        if before is not None:
            ui.label(f"Changes from version {number - 1}").classes("text-subtitle1 font-medium")
            ui.add_css(side_by_side.CSS)
            # `side_by_side.table` escapes the content it shows; the table is its own markup.
            ui.html(
                side_by_side.table(
                    before.version.content.splitlines(),
                    version.content.splitlines(),
                    f"version {number - 1}",
                    f"version {number}",
                ),
                sanitize=False,
            ).classes("w-full overflow-auto").props(
                f'{side_by_side.SCROLL_PROPS} aria-label="Changes from version {number - 1}" '
                'data-testid="inventory-version-changes"'
            )
        ui.label("Versions").classes("text-subtitle1 font-medium")
        if total > len(rows):
            listed = f"The {len(rows):,} newest of {total:,} (the API lists them all)."
            ui.label(listed).classes("text-caption")
        with ui.column().classes("gap-1").props('data-testid="inventory-versions"'):
            for row in rows:
                other = row.version
                sha = other.content_sha256[: shared_inventories.SHA_SHOWN]
                author = row.author_name or "a deleted user"
                text = f"Version {other.number} · {format_time(other.created_at)} · {author} · {sha}"
                if other.number == number:
                    ui.label(f"{text} (shown)").classes("font-medium")
                else:
                    ui.link(text, version_url(inventory_id, other.number))
