"""Schedules in the UI: the script page's Schedules tab (add, edit, pause/resume, delete; the next five
fire times in the browser's time zone; last result) and the Schedules overview page."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from nicegui import ui

from opscraft.db.models import Script
from opscraft.db.models.automation import MissedPolicy, OverlapPolicy, Schedule
from opscraft.db.types import utcnow
from opscraft.services import schedules, scripts
from opscraft.services.actor import Actor
from opscraft.services.permissions import Permission, can
from opscraft.services.schedules import PREVIEW, ScheduleIn, ScheduleView
from opscraft.ui import ansible_fields, automation_terraform, drafts, labels
from opscraft.ui.choices import first_choices, script_search, searched_select
from opscraft.ui.dialog_submit import submit_dialog
from opscraft.ui.layout import (
    confirmed,
    follow,
    frame,
    guard,
    protected_page,
    reread,
    run_action,
)
from opscraft.ui.parameter_fields import ParameterFields, stored_values
from opscraft.ui.script_tabs import TabAddress, script_tab
from opscraft.ui.widgets import (
    OneRead,
    Redrawn,
    Rows,
    call,
    call_all,
    changed,
    dialog_buttons,
    dialog_card,
    longest,
    once_per_double_click,
    one_shot,
    opens_dialog,
    page_dialog,
    stored_base,
    text_input,
)

TZ_JS = "Intl.DateTimeFormat().resolvedOptions().timeZone"


async def browser_zone() -> ZoneInfo:
    """The browser's time zone (UTC when it cannot be had)."""
    try:
        name = await ui.run_javascript(TZ_JS, timeout=5)
        return ZoneInfo(str(name))
    except (TimeoutError, ZoneInfoNotFoundError, ValueError, RuntimeError):
        return ZoneInfo("UTC")


def _upcoming(view: ScheduleView, zone: ZoneInfo) -> str:
    now = utcnow()
    return view.not_firing() or fire_times_text(view.next_fires(now, PREVIEW), zone, now)


def fire_times_text(times: list[datetime], zone: ZoneInfo, now: datetime) -> str:
    """`Sun 07 Nov 00:30, Sun 07 Nov 01:00 EDT, Sun 07 Nov 01:00 EST (America/New_York)`: aware
    times in `zone`. A wall-clock time that `zone` has twice (the hour a fall-back repeats)
    carries its abbreviation (or offset), else the two fires looked like one listed twice. A
    time in another year than `now` (aware) in `zone` carries its year (`Fri 31 Dec 2027 18:00`),
    else a yearly schedule's five fires read as one date listed five times."""
    year = now.astimezone(zone).year
    return ", ".join(_wall_clock(t.astimezone(zone), year) for t in times) + f" ({zone.key})"


def _wall_clock(local: datetime, year: int) -> str:
    """`local` as `Sun 07 Nov 01:00`, with its year when it is not `year`, and its zone's
    abbreviation when its wall-clock time occurs twice (`fire_times_text`)."""
    text = local.strftime("%a %d %b %H:%M" if local.year == year else "%a %d %b %Y %H:%M")
    twice = local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset()
    return f"{text} {local.strftime('%Z')}" if twice else text


def _last(view: ScheduleView) -> None:
    s = view.schedule
    if s.last_outcome is None:
        ui.label("not fired yet").classes("text-grey-7")
        return
    text = s.last_outcome.replace("_", " ")
    if s.last_execution_id:
        ui.link(
            f"{text}: run #{s.last_execution_id} ({view.last_status or '?'})",
            f"/executions/{s.last_execution_id}",
        ).props(f'data-testid="schedule-last-{s.id}"')
    else:
        ui.label(text).props(f'data-testid="schedule-last-{s.id}"')


# The empty /schedules page: where a schedule is added (its Add button, for those who may).
SCHEDULES_EMPTY_ALL = (
    "No schedules yet. Operators and admins add them with Add schedule here, or on a script's page, "
    "in its Schedules tab."
)


def schedule_rows(
    views: list[ScheduleView], zone: ZoneInfo, *, with_script: bool, on_change: Any = None
) -> None:
    """One card per schedule; `on_change(view, action)` for toggle/delete buttons (None: read-only).
    The empty page of every script's schedules (`with_script`) says where schedules are added
    (a new team looked for a way there: its Add schedule button, `add_schedule`)."""
    if not views:
        empty = SCHEDULES_EMPTY_ALL if with_script else "No schedules yet."
        ui.label(empty).props('data-testid="schedules-empty"')
    for view in views:
        schedule_row(view, zone, with_script=with_script, on_change=on_change)


# The form's fields that hold a stored value as it is stored (the others show it in a form's terms).
EDITED_AS_STORED = ("name", "cron", "timezone", "parameters", "missed_policy", "overlap_policy")


def schedule_row(view: ScheduleView, zone: ZoneInfo, *, with_script: bool, on_change: Any = None) -> None:
    """One schedule's card (`schedule_rows`). `on_change(view, action)`: on a script's tab
    (`with_script` False) Edit, Pause/Resume and Delete; on the overview only the Delete of a
    schedule whose script was deleted (its tab is gone with it; the others change in their tab)."""
    s = view.schedule
    with ui.card().classes("w-full gap-1").props(f'data-testid="schedule-{s.id}"'):
        with ui.row().classes("items-center gap-3 w-full"):
            ui.icon("schedule", color="primary" if s.enabled else "grey")
            ui.label(s.name).classes("font-semibold oc-wrap min-w-0")
            if with_script and view.script_deleted:
                ui.label(f"{view.script_name} (script deleted)").classes("text-grey-7 oc-wrap min-w-0")
            elif with_script:
                ui.link(view.script_name, f"/scripts/{s.script_id}").classes("oc-wrap min-w-0")
            ui.label(f"{s.cron} ({s.timezone})").classes("font-mono text-grey-8 oc-wrap min-w-0")
            ui.label(f"as {view.owner_name or 'nobody'}").classes("text-caption text-grey-7")
            ui.space()
            if on_change is not None and not with_script:
                ui.button("Edit", on_click=opens_dialog(lambda v=view: on_change(v, "edit"))).props(
                    f'flat dense data-testid="schedule-edit-{s.id}"'
                )
                once_per_double_click(
                    ui.button("Pause" if s.enabled else "Resume"), lambda v=view: on_change(v, "toggle")
                ).props(f'flat dense data-testid="schedule-toggle-{s.id}"')
            if on_change is not None and (view.script_deleted or not with_script):
                delete = ui.button(
                    icon="delete", on_click=opens_dialog(lambda v=view: on_change(v, "delete"))
                ).props(f'flat round dense color=negative data-testid="schedule-delete-{s.id}"')
                delete.props["aria-label"] = f"Delete schedule {s.name}"  # free text: a value, not props
        ui.label(f"Next: {_upcoming(view, zone)}").classes("text-caption").props(
            f'data-testid="schedule-next-{s.id}"'
        )
        automation_terraform.caption(s.terraform_action, s.terraform_workspace, f"schedule-terraform-{s.id}")
        ansible_fields.caption(s.run_options, f"schedule-ansible-{s.id}")
        with ui.row().classes("items-center gap-2 text-caption"):
            ui.label("Last:")
            _last(view)
        if s.last_message:  # on a line of its own: a resolver's message can be long
            ui.label(s.last_message).classes("text-caption text-grey-8 break-words").props(
                f'data-testid="schedule-last-message-{s.id}"'
            )


async def delete_schedule(view: ScheduleView) -> bool | None:
    """Ask, then delete `view`'s schedule (`schedules.delete`: its rules, the audit) as the person
    is when they answer (`confirmed`); None when they cancelled or may no longer delete it, else
    whether it was deleted (a failure is said by `run_action`)."""
    s = view.schedule
    actor = await confirmed(
        Permission.edit_scripts, f"Delete the schedule {s.name}?", "It no longer starts runs."
    )
    if actor is None:
        return None
    done = await run_action(lambda: call(schedules.delete, actor, s.id, s.script_id), "Schedule deleted")
    return done is not None


def _picture(data: tuple[list[ScheduleView], ZoneInfo]) -> tuple[Any, ...]:
    """What `schedule_rows` shows of `data` (views, zone), to redraw only when it changed."""
    views, zone = data
    return tuple(_row_picture(v, zone) for v in views)


def _row_picture(view: ScheduleView, zone: ZoneInfo) -> tuple[Any, ...]:
    """What `schedule_row` shows of `view` in `zone`."""
    v = view
    picture = (v.schedule.model_dump(), v.script_name, v.script_deleted, v.owner_name, v.last_status)
    return (*picture, _upcoming(v, zone))


def _draft_key(script_id: int, schedule: Schedule | None, *, listed: bool = False) -> str:
    """The tab's draft of the schedule dialog: `schedule:<script id>:new` or `...:<schedule id>`;
    a new one begun on /schedules (`listed`) `schedules:<script id>:new`, which that page opens
    again after a reload (`LISTED_DRAFTS`), not the script's tab."""
    if listed:
        return f"{LISTED_DRAFTS}{script_id}:new"
    return f"schedule:{script_id}:{'new' if schedule is None else schedule.id}"


LISTED_DRAFTS = "schedules:"
"""The start of the draft keys of the schedules begun on /schedules (`_draft_key`)."""


async def open_form(
    actor: Actor,
    script_id: int,
    view: ScheduleView | None,
    zone: ZoneInfo,
    on_saved: Callable[[], Awaitable[None]],
    *,
    listed: bool = False,
) -> None:
    """The schedule dialog of script `script_id` (the script tab's and, `listed`, the /schedules
    page's: its draft is that page's, `_draft_key`):
    empty to add one (its time zone `zone`, the browser's), filled with `view`'s settings to
    edit it (Save then sends only the fields changed here: `widgets.changed`); `on_saved` after
    a save. The parameters are one field per declared parameter (`ParameterFields`, as the run
    form's), showing the stored values and explaining those the script no longer takes."""
    script = await run_action(lambda: call(scripts.get, actor, script_id))
    if script is None:
        return
    stored = view.schedule if view is not None else None
    loaded = None
    stored_action = stored.terraform_action if stored is not None else None
    with_terraform = automation_terraform.shown_for(script.script_type, stored_action)
    stored_options = stored.run_options if stored is not None else None
    with_ansible = ansible_fields.shown_for(script.script_type, stored_options)
    stored_params = stored_values(stored)
    if stored is not None:
        loaded = {
            "name": stored.name,
            "cron": stored.cron,
            "timezone": stored.timezone,
            "parameters": stored_params,
            "missed_policy": MissedPolicy(stored.missed_policy).value,
            "overlap_policy": OverlapPolicy(stored.overlap_policy).value,
        }
        if with_terraform:
            loaded |= automation_terraform.loaded(stored_action, stored.terraform_workspace)
        if with_ansible:
            loaded["run_options"] = stored_options
    start = loaded or {
        "name": "",
        "cron": "0 3 * * *",
        "timezone": zone.key,
        "missed_policy": MissedPolicy.run_once.value,
        "overlap_policy": OverlapPolicy.skip.value,
    } | (automation_terraform.loaded(None, None) if with_terraform else {})
    title = f"Add a schedule to {script.name}" if stored is None else f"Edit the schedule {stored.name}"
    with page_dialog() as dialog, dialog_card(title) as card:  # the overview's rows are redrawn live
        name = text_input(
            "Name", "schedule-name", value=start["name"], autofocus=True, limit=longest(ScheduleIn, "name")
        )
        cron = text_input(
            "Cron (minute hour day month weekday)",
            "schedule-cron",
            value=start["cron"],
            limit=longest(ScheduleIn, "cron"),
        )
        tz = text_input(
            "Time zone (IANA, e.g. Europe/Paris; empty: UTC)",
            "schedule-tz",
            value=start["timezone"],
            limit=longest(ScheduleIn, "timezone"),
        )
        if script.parameters:
            ui.label("Parameters").classes("text-subtitle2 text-grey-8")
        # A schedule saved switched off may lack a required value (`parameters.resolve`); a save
        # of one the system paused resumes it (`schedules.update_schedule`).
        required = stored is None or stored.enabled or stored.paused_reason is not None
        params = ParameterFields(script.parameters, stored_params, required=required)
        missed = ui.select(labels.MISSED_POLICY, value=start["missed_policy"], label="After downtime").props(
            'outlined dense data-testid="schedule-missed"'
        )
        overlap = ui.select(
            labels.OVERLAP_POLICY, value=start["overlap_policy"], label="While the previous run goes"
        ).props('outlined dense data-testid="schedule-overlap"')
        terraform = automation_terraform.terraform_fields("schedule", start) if with_terraform else None
        ansible = None
        if with_ansible:
            ansible = ansible_fields.ansible_fields("schedule-ansible", stored_options)
        fields = {"name": name, "cron": cron, "timezone": tz} | params.inputs()
        fields |= terraform.inputs() if terraform else {}
        fields |= ansible.inputs() if ansible else {}
        draft = drafts.dialog_draft(
            _draft_key(script_id, stored, listed=listed),
            card,
            fields | {"missed_policy": missed, "overlap_policy": overlap},
            None if stored is None else stored_base(stored, EDITED_AS_STORED),
            stored,
        )

        async def save(current: Actor) -> Any:
            values = {
                "name": name.value or "",
                "cron": cron.value or "",
                "timezone": tz.value or "",  # "empty: UTC", the label says, as the API
                "parameters": params.values(),
                "missed_policy": missed.value,
                "overlap_policy": overlap.value,
            } | (terraform.values() if terraform else {})
            if ansible is not None:
                values["run_options"] = ansible.values()
            data = changed(values, loaded)  # checked by the service as a whole
            if stored is None:
                return await call(schedules.create, current, script_id, data)
            # a field saved meanwhile in another tab: 409 under it, not undone (`three_way`)
            base = draft.held_base()
            return await call(schedules.update_schedule, current, stored.id, data, script_id, base=base)

        async def submit() -> None:
            done = "Schedule added" if stored is None else "Schedule saved"
            problems = fields | params.problem_inputs()
            await submit_dialog(
                dialog, Permission.edit_scripts, save, done, problems, draft=draft, redraw=on_saved
            )

        dialog_buttons(
            dialog, "Add" if stored is None else "Save", "schedule-submit", submit, on_cancel=draft.clear
        )
    dialog.open()


@script_tab("schedules", "Schedules", "schedule", order=60)
async def schedules_tab(actor: Actor, script: Script, _address: TabAddress) -> None:
    """The script page's Schedules tab: the script's schedules, editable with edit_scripts."""
    assert script.id is not None
    script_id = script.id
    edit = can(actor.user, Permission.edit_scripts)
    ui.label(
        "Runs start on their own at each fire time, on behalf of the schedule's owner (who last saved it)."
    ).classes("text-grey-7")
    zone_box: dict[str, ZoneInfo] = {"zone": ZoneInfo("UTC")}

    reads = OneRead()  # the tab's reads of its list, one at a time (`follow`)

    async def load() -> list[ScheduleView] | None:
        return await run_action(lambda: read(actor))

    async def read(reader: Actor) -> list[ScheduleView]:
        return await call_all(schedules.list_schedules, reader, script_id)

    async def update() -> None:
        """Show the schedules as stored now (a change here, in another tab, through the API)."""
        await reread(read, body.show, Permission.view_scripts, reads=reads)

    async def change(view: ScheduleView, action: str) -> None:
        current = await guard(Permission.edit_scripts)
        if current is None:
            return
        s = view.schedule
        assert s.id is not None
        if action == "edit":
            await open_form(actor, script_id, view, zone_box["zone"], update)
            return
        if action == "delete":
            if await delete_schedule(view) is not None:  # a failed one too: maybe gone already
                await update()
            return
        # Only the switch: the page's copy of the other fields may be older than another tab's
        # or the API's save, which sending them back would undo.
        data = {"enabled": not s.enabled}
        saved = await run_action(
            lambda: call(schedules.update_schedule, current, s.id, data, script_id), "Saved"
        )
        if saved is not None:
            await update()

    async def add() -> None:
        await open_form(actor, script_id, None, zone_box["zone"], update)

    async def reopened(view: ScheduleView | None) -> None:
        await open_form(actor, script_id, view, zone_box["zone"], update)

    if edit:
        ui.button("Add schedule", icon="add", on_click=opens_dialog(add)).props(
            'unelevated data-testid="schedule-add"'
        )
    body = Rows(
        lambda view: schedule_row(
            view, zone_box["zone"], with_script=False, on_change=change if edit else None
        ),
        await load() or [],
        key=lambda view: view.schedule.id,
        picture=lambda view: _row_picture(view, zone_box["zone"]),
        empty=("No schedules yet.", "schedules-empty"),
    )

    async def localize() -> None:
        zone_box["zone"] = await browser_zone()
        await update()  # only the rows whose fire times read differently in the browser's zone

    async def listed() -> dict[str, ScheduleView]:
        return {_draft_key(script_id, view.schedule): view for view in await load() or []}

    async def resume_draft() -> None:
        """Reopen the dialog whose typing a reload interrupted (the tab's draft of it)."""
        await drafts.reopen(f"schedule:{script_id}:", reopened, lambda _: listed())

    one_shot(0.1, localize)
    if edit:
        one_shot(0, resume_draft)
    follow(read, body.show, Permission.view_scripts, reads=reads)


async def add_schedule(actor: Actor, zone: ZoneInfo, on_saved: Callable[[], Awaitable[None]]) -> None:
    """The /schedules page's Add: choose the script the schedule runs, then the script tab's
    schedule dialog (`open_form`) for it. Users of Semaphore or Rundeck add a schedule from
    the list of schedules; a schedule belongs to one script, whose parameters its form shows,
    so the script comes first."""
    first = await first_choices(script_search(actor))
    with page_dialog() as dialog, dialog_card("Add a schedule"):
        ui.label(
            "A schedule runs one script: choose it. Its schedules are also on its page, in the Schedules tab."
        ).classes("text-grey-7")
        chosen = searched_select("Script", "schedule-script", first)

        async def next_step() -> None:
            if not chosen.value:
                chosen.error = "Choose the script to run"
                return
            dialog.close()
            await open_form(actor, int(chosen.value), None, zone, on_saved, listed=True)

        dialog_buttons(dialog, "Next", "schedule-script-next", next_step)
    dialog.open()


@protected_page("/schedules", Permission.view_scripts, "Schedules")
async def schedules_page(actor: Actor) -> None:
    """Page /schedules (needs view_scripts): every script's schedules, with fire times in the browser's time
    zone; those of a deleted script say so, with a Delete button for operators and admins.
    """
    with frame(actor, "Schedules"):
        zone_box: dict[str, ZoneInfo] = {"zone": ZoneInfo("UTC")}
        reads = OneRead()  # the page's reads of its list, one at a time (`follow`)

        async def read(reader: Actor) -> tuple[list[ScheduleView], ZoneInfo]:
            return await call_all(schedules.list_schedules, reader), zone_box["zone"]

        async def change(view: ScheduleView, action: str) -> None:
            """Delete (the only button here: on a schedule of a deleted script), then show the list."""
            if action != "delete" or await guard(Permission.edit_scripts) is None:
                return
            if await delete_schedule(view) is not None:
                await update()

        on_change = change if can(actor.user, Permission.edit_scripts) else None

        async def add() -> None:
            await add_schedule(actor, zone_box["zone"], update)

        if on_change is not None:
            ui.button("Add schedule", icon="add", on_click=opens_dialog(add)).props(
                'unelevated data-testid="schedule-add"'
            )
        shown = Redrawn(
            lambda data: schedule_rows(*data, with_script=True, on_change=on_change),
            await read(actor),
            _picture,
        )

        async def update() -> None:
            await reread(read, shown.show, Permission.view_scripts, reads=reads)

        async def localize() -> None:
            zone_box["zone"] = await browser_zone()
            await update()
            if on_change is not None:  # the new schedule whose typing a reload interrupted here
                await drafts.reopen(LISTED_DRAFTS, reopened, begun)

        async def begun(keys: list[str]) -> dict[str, int]:
            """The scripts of the pending drafts `keys` (`schedules:<script id>:new`)."""
            return {key: int(key.split(":")[1]) for key in keys if key.endswith(":new")}

        async def reopened(script_id: int) -> None:
            await open_form(actor, script_id, None, zone_box["zone"], update, listed=True)

        one_shot(0.1, localize)
        follow(read, shown.show, Permission.view_scripts, reads=reads)
