"""A form dialog's Save, one way for the dialogs that save through a service and then go: a
script's schedules, webhooks and "then run" links, notification channels and rules, shared
inventories, API tokens and a script's approval requirement (the paged tables' dialogs, users
and secrets, have `paged.PagedTable.apply`, which also reloads a table whose row was deleted)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from nicegui import ui

from opscraft.services.actor import Actor
from opscraft.services.permissions import Permission
from opscraft.ui.drafts import Draft
from opscraft.ui.layout import close_saved, guard, run_action


@dataclass(frozen=True)
class Saved:
    """A dialog's save that succeeded (`submit_dialog`) and what its service call returned
    (`result`: None for one that answers nothing, the removal of an approval requirement)."""

    result: Any


async def submit_dialog(
    dialog: ui.dialog,
    permission: Permission | None,
    save: Callable[[Actor], Awaitable[Any]],
    done: str | None,
    fields: Mapping[str, Any],
    *,
    draft: Draft | None = None,
    redraw: Callable[[], Awaitable[None]] | None = None,
) -> Saved | None:
    """Save `dialog`'s form: re-check the session and `permission` (`layout.guard`: refused, it
    says so and the dialog stays), run `save(actor)` (a service call), and once it succeeded
    redraw the list behind the dialog (`redraw`), then end the dialog, say `done` and forget its
    `draft` (`layout.close_saved`, in that order: said before the redraw, the notice sent a
    person to a row's button that the redraw then replaced).

    A problem with a field in `fields` (field name -> input element) is shown under it, the
    rest in a red notification (`layout.run_action`), the dialog left open with what was typed.
    Returns `Saved` with `save`'s result (what a caller shows once the dialog is gone: a new
    token), None when nothing was saved. A service that answers None succeeded all the same
    (`run_action` says None for both: such a dialog stayed open, its notice unsaid)."""
    actor = await guard(permission)
    if actor is None:
        return None

    async def action() -> Saved:
        return Saved(await save(actor))

    saved: Saved | None = await run_action(action, fields=fields)
    if saved is None:
        return None
    if redraw is not None:
        await redraw()
    await close_saved(dialog, done, draft)
    return saved
