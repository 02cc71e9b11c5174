"""The admin settings page: run-time switches, plus what this server runs on."""

from __future__ import annotations

from typing import Any

from nicegui import ui

from opscraft import __version__, runtime
from opscraft.services import app_settings, partial, retention, warm_pools
from opscraft.services.actor import Actor
from opscraft.services.permissions import Permission
from opscraft.services.warm_pools import WorkerPool
from opscraft.ui.drafts import Draft
from opscraft.ui.layout import frame, guard, notify_ok, protected_page, run_action
from opscraft.ui.widgets import ErrorLine, call_all, one_click, one_shot, whole

FIXED_AT_START = "Fixed by this server's start-up configuration (whoever runs the server can change it)"
"""The start of the note under a setting that the server's environment decides (`Settings`:
`local_runner`, `local_runner_role`, `warm_pool_size`): it named the variable, which an admin in
the UI cannot set; docs/configuration.md names them for whoever runs the server."""

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
    "api_tokens_require_expiry": (
        "Require an expiry on API tokens",
        "New personal access tokens must have an expiry date. Tokens that exist keep theirs: "
        "review them on the API tokens page (Show every user's tokens).",
    ),
}
# Output retention (services/retention.py): number inputs, then the switch for execution rows.
RETENTION_NUMBERS = {
    "output_retention_days": ("Keep output for (days)", "0 keeps output for ever."),
    "output_retention_gb": (
        "Keep at most (GB of output)",
        "0: no cap. Beyond it the oldest output goes first.",
    ),
}
# When retention acts: an admin who saved a period and saw old output stay wondered whether it worked.
RETENTION_WHEN = (
    f"Applied in the background every {round(retention.INTERVAL_SECONDS / 60)} minutes, so within "
    "that time of saving; only finished runs are touched."
)
RETENTION_SWITCH = (
    "retention_delete_executions",
    "Also delete execution rows past the retention period",
    "Needs a number of days above 0. Their output, status and parameters go too; audit events are "
    "always kept.",
)

WARM_POOL_HINT = "0: every Docker run creates its container. Workers apply it within a heartbeat."

LOCAL_RUNNER_ROLES = {"viewer": "Everyone", "operator": "Operators and admins", "admin": "Admins only"}


def _system_facts() -> list[tuple[str, str]]:
    settings = runtime.current().settings
    return [
        ("Version", __version__),
        ("Environment", settings.environment.value),
        ("Database", "SQLite" if settings.is_sqlite else "PostgreSQL"),
        ("Redis", "configured" if settings.redis_url else "not configured"),
        ("Data directory", str(settings.data_dir)),
    ]


def _stored_note(unread: dict[str, str], key: str) -> None:
    """Under setting `key`'s field: what its stored row holds that is not read and what is used
    instead (`app_settings.unreadable`: the field shows that); nothing when it reads."""
    if key in unread:
        note = f"{unread[key]}."
        ui.label(note).classes("text-caption text-negative oc-wrap").props(
            f'data-testid="setting-stored-{key}"'
        )


def _retention_fields(
    draft: Draft, values: dict[str, Any], switches: dict[str, ui.switch], unread: dict[str, str]
) -> tuple[dict[str, ui.number], ErrorLine]:
    """The output retention section; adds its switch to `switches`, returns its number inputs and
    the switch's error line (the service refuses it on with no retention period).
    `unread`: the settings whose stored value is not read (`_stored_note`)."""
    ui.separator()
    ui.label("Output retention").classes("text-subtitle1 font-medium")
    numbers: dict[str, ui.number] = {}
    with ui.row().classes("w-full gap-4 items-start"):
        # No rounding or clamping in the browser (`min`/`precision`: NiceGUI applies them when the
        # field loses focus, racing the Save click): a fraction of a day or a negative number
        # reaches the service, which refuses it under the field (a silently changed value would be
        # saved as something nobody typed).
        for key, (label, hint) in RETENTION_NUMBERS.items():
            with ui.column().classes("gap-0"):
                numbers[key] = (
                    ui.number(label, value=values[key])
                    .props(f'outlined dense hint="{hint}" data-testid="setting-{key}"')
                    .classes("w-60")
                )
                draft.field(key, numbers[key])
                _stored_note(unread, key)
    ui.label(RETENTION_WHEN).classes("text-caption text-grey-7").props('data-testid="retention-when"')
    key, label, help_text = RETENTION_SWITCH
    with ui.column().classes("gap-0"):
        switches[key] = ui.switch(label, value=values[key]).props(f'data-testid="setting-{key}"')
        draft.field(key, switches[key])
        ui.label(help_text).classes("text-caption text-grey-7 pl-12")
        switch_error = ErrorLine(f"setting-{key}-error").classes("pl-12")
        _stored_note(unread, key)
    return numbers, switch_error


def _number(key: str, value: float | None) -> Any:
    """The input's value as the setting's type. An input with no number (empty, or text the
    browser cannot read as a finite number, such as 1e400) and a fraction where a whole number is
    wanted are passed on as they are, so the service refuses them under the field (an empty input
    was saved as 0, off: 1e400 typed into a retention field turned retention off)."""
    kind, _ = app_settings.KNOWN[key]
    if value is None:
        return None
    return whole(float(value)) if kind is int else float(value)


@protected_page("/settings", Permission.manage_settings, title="Settings")
async def settings_page(actor: Actor) -> None:
    """Page /settings (needs manage_settings): the instance settings form, with what environment variables
    force, and the workers' warm pools.
    """
    async with runtime.current().db.session() as s:
        values = await app_settings.get_all(s)
        unread = await app_settings.unreadable(s, actor)
    pools = await call_all(warm_pools.list_pools, actor)
    forced_local = runtime.current().settings.local_runner
    forced_role = runtime.current().settings.local_runner_role
    forced_pool = runtime.current().settings.warm_pool_size
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
                    _stored_note(unread, key)
            if forced_local:
                ui.label(f"{FIXED_AT_START}: the local runner is allowed whatever the switch says.").classes(
                    "text-caption text-warning"
                )
            with ui.column().classes("gap-0"):
                role = (
                    ui.select(
                        LOCAL_RUNNER_ROLES,
                        value=values["local_runner_role"],
                        label="Who may run scripts on the local runner",
                    )
                    .props('outlined dense data-testid="setting-local_runner_role"')
                    .classes("w-80 max-w-full")
                )
                draft.field("local_runner_role", role)
                _stored_note(unread, "local_runner_role")
                ui.label(
                    "A local run can read this server's secret key and master key: allow only roles "
                    "you would trust with them."
                ).classes("text-caption text-grey-7")
                if forced_role:
                    who = LOCAL_RUNNER_ROLES[forced_role].lower()
                    ui.label(f"{FIXED_AT_START}: {who}, whatever is chosen here.").classes(
                        "text-caption text-warning"
                    )
            ui.separator()
            ui.label("Warm containers").classes("text-subtitle1 font-medium")
            pool_size = (
                ui.number("Warm containers per profile in use", value=values["warm_pool_size"])
                .props(f'outlined dense hint="{WARM_POOL_HINT}" data-testid="setting-warm_pool_size"')
                .classes("w-60")
            )
            draft.field("warm_pool_size", pool_size)
            _stored_note(unread, "warm_pool_size")
            if forced_pool is not None:
                ui.label(
                    f"{FIXED_AT_START}: {forced_pool} for this server's worker, whatever is set here."
                ).classes("text-caption text-warning")

            numbers, switch_error = _retention_fields(draft, values, switches, unread)
            numbers["warm_pool_size"] = pool_size

            async def save() -> None:
                current = await guard(Permission.manage_settings)
                if current is None:
                    return
                elements = {**switches, **numbers, "local_runner_role": role}
                submitted = {key: element.value for key, element in elements.items()}
                changes: dict[str, Any] = {key: bool(switch.value) for key, switch in switches.items()}
                changes |= {key: _number(key, field.value) for key, field in numbers.items()}
                changes["local_runner_role"] = role.value
                changes = partial.edited(values, changes)
                if not changes:  # sent, the form as loaded was the API's 422 "nothing to change"
                    notify_ok("Nothing changed")
                    return

                async def update() -> dict[str, Any]:
                    async with runtime.current().db.session() as s:
                        return await app_settings.update(s, current, changes)

                fields = {**numbers, RETENTION_SWITCH[0]: switch_error}
                saved = await run_action(update, "Settings saved", fields)
                if saved is not None:
                    values.update(saved)
                    await draft.saved(values)  # what was typed while saving stays in the tab
                    # As stored (another tab's changes too), in fields not changed since the
                    # click: a number typed while the save was on its way was replaced.
                    for key, element in elements.items():
                        if element.value == submitted[key]:
                            element.value = saved[key]

            ui.button("Save", icon="save", on_click=one_click(save)).props(
                'unelevated data-testid="settings-save"'
            )
            one_shot(0, draft.restore)

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
                ui.label(pool_text(pool)).classes("text-caption oc-wrap").props('data-testid="warm-pool"')
                if pool.error:  # the engine gone or creations failing: the pool is not refilled
                    ui.label(f"{pool.worker_id}: {pool.error}").classes(
                        "text-caption text-negative break-all"
                    ).props('data-testid="warm-pool-error"')


def pool_text(pool: WorkerPool) -> str:
    """One worker's warm pool in a line of the Settings page: `vm-1: 2 warm (2 per profile in
    use, up to 4 under demand), 8 warm starts, 1 cold start` (a count of one in the singular:
    "1 cold starts" it said)."""
    burst = f", up to {pool.burst} under demand" if pool.burst > pool.size else ""
    counts = ((pool.warm_starts, "warm"), (pool.cold_starts, "cold"))
    starts = [f"{n} {kind} start{'s' if n != 1 else ''}" for n, kind in counts]
    return f"{pool.worker_id}: {pool.warm} warm ({pool.size} per profile in use{burst}), {', '.join(starts)}"
