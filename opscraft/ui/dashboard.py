"""The home page."""

from __future__ import annotations

from nicegui import ui

from opscraft.services.actor import Actor
from opscraft.ui.layout import frame, protected_page


@protected_page("/", title="Dashboard")
async def dashboard(actor: Actor) -> None:
    with frame(actor, "Dashboard"):
        ui.label(f"Welcome, {actor.user.full_name or actor.user.username}.").props('data-testid="welcome"')
