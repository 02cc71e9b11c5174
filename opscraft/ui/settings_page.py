"""The admin settings page: run-time switches, plus what this server runs on."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from opscraft import __version__, runtime
from opscraft.services import app_settings, warm_pools
from opscraft.services.actor import Actor
from opscraft.services.permissions import Permission
from opscraft.ui.drafts import Draft
from opscraft.ui.layout import frame, guard, protected_page, run_action

SWITCHES = {
    "registration_open": (
        "Open self-registration",
        "Anyone who reaches this server may create an account (as a viewer) with POST /api/v1/auth/register.",
    ),
    "local_runner_enabled": (
        "Allow the local runner",
        "Run scripts as plain processes on this machine when no Docker engine is reachable. "
        "They are not isolated: enable only on a machine you trust the script authors with.",
    ),
}


def _system_facts() -> list[tuple[str, str]]:
    settings = runtime.current().settings
    return [
        ("Version", __version__),
        ("Environment", settings.environment.value),
        ("Database", "SQLite" if settings.is_sqlite else "PostgreSQL"),
        ("Redis", "configured" if settings.redis_url else "not configured"),
        ("Data directory", str(settings.data_dir)),
    ]


@protected_page("/settings", Permission.manage_settings, title="Settings")
async def settings_page(actor: Actor) -> None:
    async with runtime.current().db.session() as s:
        values = await app_settings.get_all(s)
        pools = await warm_pools.list_pools(s, actor, runtime.current().settings.worker_lost_seconds)
    forced_local = runtime.current().settings.local_runner
    with frame(actor, "Settings"), ui.row().classes("w-full gap-4 items-start"):
        with ui.card().classes("w-[36rem] max-w-full gap-4") as card:
            ui.label("Run-time settings").classes("text-lg font-semibold")
            draft = Draft("settings", card)
            switches: dict[str, ui.switch] = {}
            for key, (label, help_text) in SWITCHES.items():
                with ui.column().classes("gap-0"):
                    switches[key] = ui.switch(label, value=values[key]).props(f'data-testid="setting-{key}"')
                    draft.field(key, switches[key])
                    ui.label(help_text).classes("text-caption text-grey-7 pl-12")
            if forced_local:
                ui.label(
                    "OPSCRAFT_LOCAL_RUNNER=1 allows the local runner on this server whatever the switch says."
                ).classes("text-caption text-warning")

            async def save() -> None:
                current = await guard(Permission.manage_settings)
                if current is None:
                    return
                changes = {key: bool(switch.value) for key, switch in switches.items()}

                async def update() -> dict[str, Any]:
                    async with runtime.current().db.session() as s:
                        return await app_settings.update(s, current, changes)

                saved = await run_action(update, "Settings saved")
                if saved is not None:
                    draft.clear()
                    for key, switch in switches.items():
                        switch.value = saved[key]

            ui.button("Save", icon="save", on_click=save).props('unelevated data-testid="settings-save"')
            ui.timer(0, draft.restore, once=True)

        with ui.card().classes("w-96 gap-2"):
            ui.label("This server").classes("text-lg font-semibold")
            for label, value in _system_facts():
                with ui.row().classes("w-full justify-between no-wrap gap-4"):
                    ui.label(label).classes("text-grey-7 whitespace-nowrap")
                    ui.label(value).classes("text-right break-all")
            ui.label("Warm containers").classes("text-subtitle2 mt-2")
            if not pools:
                ui.label("No live worker.").classes("text-caption text-grey-7")
            for pool in pools:
                ui.label(
                    f"{pool.worker_id}: {pool.warm} warm ({pool.size} per profile in use), "
                    f"{pool.warm_starts} warm starts, {pool.cold_starts} cold starts"
                ).classes("text-caption break-all").props('data-testid="warm-pool"')
