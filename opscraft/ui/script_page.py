"""One script: overview, read-only content, version history with diff and rollback, extension tabs.

After its own tabs the page renders the tabs registered in `ui.script_tabs` (executions,
secrets) and, in its header, the registered action buttons (execute).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from nicegui import ui

from opscraft.db.models import ApprovalPolicy, Script
from opscraft.db.models.scripts import ScriptType
from opscraft.services import approvals, line_endings, script_checks, scripts, secrets, shared_inventories
from opscraft.services.actor import Actor
from opscraft.services.errors import Invalid, ServiceError
from opscraft.services.permissions import Permission, can
from opscraft.services.scripts import RUN_SETTINGS
from opscraft.ui import address, approval_policy, layout, side_by_side
from opscraft.ui.execution_widgets import parameter_text
from opscraft.ui.layout import frame, guard, notify_error, notify_ok, protected_page, run_action
from opscraft.ui.not_found import missing
from opscraft.ui.paged import KeptPage
from opscraft.ui.script_tabs import ACTIONS, ScriptTab, TabAddress, ordered_tabs
from opscraft.ui.script_widgets import (
    LANGUAGES,
    editor,
    findings_of,
    keep_notices,
    risk_dialog,
    show_kept_notices,
    status_badge,
    type_badge,
)
from opscraft.ui.widgets import (
    IDENTIFIER,
    NARROW_HIDDEN,
    STICKY_ACTIONS,
    WRAPPED,
    OneRead,
    call,
    close_then,
    data_table,
    dialog_title,
    format_time,
    joined,
    one_click,
    opens_dialog,
    stored_note,
)

VERSIONS_PAGE = 20
VERSION_COLUMNS: list[dict[str, Any]] = [
    {"name": "number", "label": "Version", "field": "number", "align": "left"},
    {"name": "label", "label": "Label", "field": "label", "align": "left", **joined(NARROW_HIDDEN, WRAPPED)},
    {"name": "note", "label": "Change note", "field": "note", "align": "left", **WRAPPED},
    {
        "name": "author",
        "label": "Author",
        "field": "author",
        "align": "left",
        **joined(NARROW_HIDDEN, IDENTIFIER),
    },
    {"name": "time", "label": "Saved", "field": "time", "align": "left"},
    {"name": "actions", "label": "", "field": "number", "align": "right", **STICKY_ACTIONS},
]
VERSION_ACTIONS = """
<q-td :props="props" class="text-right">
  <q-badge v-if="props.row.current" color="primary" label="current" class="q-mr-sm" />
  <q-btn v-if="props.row.can_rollback && !props.row.current" flat dense no-caps no-wrap icon="history"
         label="Roll back" color="primary" :data-testid="'rollback-' + props.row.number"
         @click="$parent.$emit('rollback', props.row.number)" />
</q-td>"""
SETTING_LABELS = {
    "timeout_seconds": "Timeout (s)",
    "memory_mb": "Memory (MiB)",
    "cpus": "CPUs",
    "network_enabled": "Network access",
    "max_concurrent": "Max concurrent runs",
}
ANSIBLE_LABELS = {"ssh_user": "SSH user", "ssh_key_secret": "SSH key (file secret)"}


def approval_text(script_id: int, policy: ApprovalPolicy | None, warning: str | None = None) -> str:
    """What the Overview says of a script's approval policy (`approvals.get_policy`): the
    Approvals page said runs "of scripts that require approval" wait there, and no page said
    which scripts do. Operators and admins set it from the button beside it (`approval_policy`),
    as `PUT /api/v1/scripts/{script_id}/approval` does. `warning` (`approvals.reach_warning`)
    follows when the team cannot give that many."""
    if policy is None:
        return "not required"
    count = f"{policy.required} approval{'' if policy.required == 1 else 's'}"
    expiry = f"a request expires after {policy.expires_after_hours} h"
    said = f"{count} by other operators or admins before a run starts; {expiry}"
    return f"{said}. Warning: {warning}" if warning else said


@dataclass(frozen=True)
class OverviewFacts:
    """What the Overview tab shows of rows other than the script, which other users change:
    its shared inventory's name (None: it has none), whether its SSH key secret is attached
    (`secrets.ssh_key_attached`) and its approval policy in words (`approval_text`)."""

    inventory_name: str | None
    key_attached: bool | None
    approval: str
    policy: tuple[int, int] | None = None  # (required, expires_after_hours); None: not required


async def _overview_facts(actor: Actor, script: Script) -> OverviewFacts:
    """The `OverviewFacts` of `script` as they are now, read as `actor`."""
    key_attached = await call(secrets.ssh_key_attached, actor, script)
    policy = await call(approvals.get_policy, actor, script.id)
    warning = await call(approvals.reach_warning, policy.required) if policy else None
    approval = approval_text(script.id or 0, policy, warning)
    values = None if policy is None else (policy.required, policy.expires_after_hours)
    return OverviewFacts(await _inventory_name(actor, script), key_attached, approval, values)


def _overview(script: Script, facts: OverviewFacts, on_approval: Callable[[], Any] | None = None) -> None:
    """The Overview tab of `script`, with `facts` of the rows it names; `on_approval` (operators
    and admins) opens the approval requirement's form from a button beside it."""
    inventory_name, key_attached = facts.inventory_name, facts.key_attached
    with ui.column().classes("w-full gap-4").props('data-testid="overview"'):
        ui.label(script.description or "No description.").classes("text-body1 whitespace-pre-wrap oc-wrap")
        stored_note(script, "script-stored")
        if script.tags:
            with ui.row().classes("gap-1"):
                for tag in script.tags:
                    ui.chip(tag, color="primary").props("outline dense")
        ui.label("Parameters").classes("text-subtitle1 font-medium")
        if script.parameters:
            rows = [
                {
                    "name": p["name"],
                    "type": p["type"] + (f" ({', '.join(p['options'])})" if p.get("options") else ""),
                    "default": "" if p.get("default") is None else parameter_text(p["default"]),
                    "required": "yes" if p.get("required") else "",
                    "description": p.get("description") or "",
                }
                for p in script.parameters
            ]
            columns = [{"name": k, "label": k.capitalize(), "field": k, "align": "left"} for k in rows[0]]
            data_table(columns, rows, "name", "Parameters").props(
                'flat bordered dense hide-pagination data-testid="parameters-table"'
            )
        else:
            ui.label("This script takes no parameters.").classes("text-grey-7")
        ui.label("Run settings").classes("text-subtitle1 font-medium")
        with ui.grid(columns=2).classes("gap-x-8 gap-y-1").props('data-testid="run-settings"'):
            for key in RUN_SETTINGS:
                if key not in SETTING_LABELS:
                    continue
                value = getattr(script, key)
                ui.label(SETTING_LABELS[key]).classes("text-grey-7")
                shown = ("on" if value else "off") if isinstance(value, bool) else value or "no limit"
                ui.label(str(shown))
            ui.label("Approval").classes("text-grey-7")
            with ui.column().classes("gap-1 min-w-0 items-start"):
                ui.label(facts.approval).classes("oc-wrap min-w-0").props('data-testid="approval-policy"')
                if on_approval is not None:
                    ui.button(
                        "Require approval" if facts.policy is None else "Change",
                        on_click=opens_dialog(on_approval),
                    ).props('flat dense padding="0 4px" data-testid="approval-edit"')
            if script.script_type == ScriptType.ansible:
                ui.label("Inventory").classes("text-grey-7")
                if script.inventory_id:
                    ui.link(f"shared inventory {inventory_name}", "/inventories").props(
                        'data-testid="shared-inventory"'
                    )
                else:
                    ui.label("from the script" if script.inventory else "localhost")
                for key, label in ANSIBLE_LABELS.items():
                    ui.label(label).classes("text-grey-7")
                    value = ui.label(getattr(script, key) or "none")
                    if key == "ssh_key_secret" and key_attached is False:
                        value.set_text(
                            f"{script.ssh_key_secret}: not attached to this script, so its runs end in "
                            "error: attach it on the Secrets tab"
                        )
                        value.classes("text-negative").props('data-testid="ssh-key-unattached"')
                ui.label("Run options").classes("text-grey-7")
                ui.label(
                    "viewers may choose them"
                    if script.viewers_choose_run_options
                    else "chosen by operators and admins only"
                ).props('data-testid="run-options-rights"')
            ui.label("Created").classes("text-grey-7")
            ui.label(format_time(script.created_at))
            ui.label("Updated").classes("text-grey-7")
            ui.label(format_time(script.updated_at))


async def _inventory_name(actor: Actor, script: Script) -> str | None:
    """The name of the script's shared inventory (None: it has none)."""
    if not script.inventory_id:
        return None
    return (await call(shared_inventories.get, actor, script.inventory_id)).name


def _content(script: Script) -> None:
    """The Content tab: the current version's content, read-only, under what a run of it would
    be refused for before any task (`script_checks.stored_problems`)."""
    for problem in script_checks.stored_problems(script.script_type, script.content, script.inventory):
        ui.label(problem).classes("text-caption text-negative oc-wrap").props(
            'data-testid="script-content-problem"'
        )
    editor(script.content, LANGUAGES[script.script_type], read_only=True).props(
        'data-testid="script-content"'
    )


class VersionsView(KeptPage):
    """History table, a diff between any two versions, and rollback for operators and admins.

    `on_read(script)` is awaited with the script each re-read finds (a version saved since the
    page was built, a rollback refused by it), for the rest of the page to follow. The table's
    `page` is kept in the address (`/scripts/5?tab=versions&page=2`: `paged.KeptPage`)."""

    def __init__(
        self, actor: Actor, script: Script, on_read: Callable[[Script], Awaitable[None]], page: int = 1
    ) -> None:
        super().__init__(VERSIONS_PAGE, page)
        self.actor = actor
        self.script = script
        self.on_read = on_read
        # a turn of the pager, a rollback: one read at a time, each of the page as it is then
        # (an older one ending last showed its rows under the pager's newer page, for good)
        self.reads = OneRead()
        self.compares = OneRead()  # the same for the differences (Compare, a switch of the view)
        self.can_edit = can(actor.user, Permission.edit_scripts)
        self.table = data_table(VERSION_COLUMNS, [], "number", "Versions")
        self.table.props('flat bordered dense hide-pagination data-testid="versions-table"')
        self.table.add_slot("body-cell-actions", VERSION_ACTIONS)
        # a double-click asked twice (a second dialog under the one answered)
        self.table.on(
            "rollback", opens_dialog(lambda number: self.confirm_rollback(int(number)), with_args=True)
        )
        self.pager = ui.pagination(1, 1, direction_links=True, on_change=self._on_page)
        numbers = list(range(script.current_version, 0, -1))
        ui.label("Compare versions").classes("text-subtitle1 font-medium mt-4")
        with ui.row().classes("items-center gap-3"):
            self.from_n = ui.select(numbers, label="From", value=max(1, script.current_version - 1))
            self.from_n.props('outlined dense data-testid="diff-from"').classes("w-28")
            self.to_n = ui.select(numbers, label="To", value=script.current_version)
            self.to_n.props('outlined dense data-testid="diff-to"').classes("w-28")
            ui.button("Compare", icon="compare_arrows", on_click=self.compare).props(
                'unelevated data-testid="diff-compare"'
            )
            self.changed = ui.label().classes("text-grey-8").props('data-testid="diff-changed"')
        self.view = ui.toggle({"unified": "Unified", "split": "Side by side"}, value="unified")
        self.view.props('dense data-testid="diff-mode"').on_value_change(self.compare)
        ui.add_css(side_by_side.CSS)
        self.diff = editor("", "diff", read_only=True, label="Differences between the versions").props(
            'data-testid="diff-view"'
        )
        self.split = (
            ui.html("", sanitize=False)
            .classes("w-full overflow-auto")
            .props(f'{side_by_side.SCROLL_PROPS} aria-label="Differences between the versions, side by side"')
        )
        self.split.props('data-testid="diff-split"').set_visibility(False)

    def address(self) -> str:
        """The Versions tab of the script's page; the table's page is added."""
        return tab_address(self.script.id, "versions")

    async def _on_page(self, event: Any) -> None:
        if event.value and event.value != self.page:
            self.page = int(event.value)
            await self.refresh()
            self.keep_page()

    async def refresh(self, *, reread_script: bool = True) -> None:
        """Read the script again (unless `reread_script` is False: the page was just built from
        it) and show the current page of its versions: a version saved since the page was built
        (another tab, another user) is listed, offered to compare and counted by the rollback
        question. One at a time (`OneRead`)."""
        await self.reads.run(lambda: self._read_and_show(reread_script))

    async def _read_and_show(self, reread_script: bool) -> None:
        """`refresh`'s read of the page of versions as it is when the read starts, and its showing."""
        actor = await guard(Permission.view_scripts)
        if actor is None:
            return

        async def read() -> tuple[Script, tuple[list[scripts.VersionRow], int]]:
            script = await call(scripts.get, actor, self.script.id) if reread_script else self.script
            while True:  # a page past the last (an address's `?page=9`): the last
                listed = await call(
                    scripts.list_versions, actor, script.id, skip=self.skip, limit=self.page_size
                )
                self.count(listed[1])
                if not self.past_last():
                    return script, listed
                self.keep_page()

        result = await run_action(read)
        if result is None:
            return
        self.script, (rows, total) = result
        if reread_script:
            await self.on_read(self.script)
        numbers = list(range(self.script.current_version, 0, -1))
        if self.to_n.options != numbers:
            self.from_n.set_options(numbers, value=self.from_n.value)
            self.to_n.set_options(numbers, value=self.to_n.value)
        self.table.rows = [
            {
                "number": row.version.number,
                "label": row.version.version_label,
                "note": row.version.change_note,
                "author": row.author_name or "—",
                "time": format_time(row.version.created_at),
                "current": row.version.number == self.script.current_version,
                "can_rollback": self.can_edit,
            }
            for row in rows
        ]
        self.pager.max = self.last_page
        self.pager.value = self.page
        self.pager.set_visibility(total > self.page_size)

    async def compare(self) -> None:
        """Show the difference between the two chosen versions, unified or side by side; one
        at a time (`OneRead`), each of the versions chosen when it starts."""
        await self.compares.run(self._compare)

    async def _compare(self) -> None:
        actor = await guard(Permission.view_scripts)
        if actor is None or not self.from_n.value or not self.to_n.value:
            return
        result = await run_action(
            lambda: call(scripts.diff, actor, self.script.id, int(self.from_n.value), int(self.to_n.value))
        )
        if result is None:
            return
        self.diff.set_value(result.diff or "(the content is identical)")
        split = self.view.value == "split"
        self.diff.set_visibility(not split)
        self.split.set_visibility(split)
        if split:
            numbers = (int(self.from_n.value), int(self.to_n.value))
            old, new = [
                (await call(scripts.get_version, actor, self.script.id, n)).version.content for n in numbers
            ]
            # `side_by_side.table` escapes the content it shows; the table is its own markup.
            self.split.content = side_by_side.table(
                line_endings.lines(old),
                line_endings.lines(new),
                f"version {numbers[0]}",
                f"version {numbers[1]}",
            )
        others = [c for c in result.changed if c != "content"]
        self.changed.text = f"Also changed: {', '.join(others)}" if others else ""

    async def confirm_rollback(self, number: int) -> None:
        """Open the dialog confirming a rollback to version `number`, after reading the versions
        again: the version the rollback adds is counted from the newest saved, not the page's."""
        await self.refresh()
        seen = self.script.current_version  # a version saved before the answer refuses it
        with ui.dialog() as dialog, ui.card().classes("gap-3").props('data-testid="rollback-dialog"'):
            dialog_title(f"Roll back to version {number}?")
            ui.label(
                f"This adds version {seen + 1} with the content, type, parameters "
                f"and run settings of version {number}. No version is lost."
            ).classes("text-grey-8")

            async def confirm() -> bool:
                await close_then(dialog, lambda: self.rollback(number, False, seen))
                return True  # the dialog is closed: a click already on its way must not roll back again

            with ui.row().classes("w-full justify-end gap-2"):
                ui.button("Cancel", on_click=dialog.close).props("flat")
                ui.button("Roll back", icon="history", on_click=one_click(confirm)).props(
                    'unelevated data-testid="rollback-confirm"'
                )
        dialog.on("hide", dialog.delete)
        dialog.open()

    async def rollback(self, number: int, acknowledge: bool, seen: int) -> None:
        """Roll the script back to version `number` (re-checking edit_scripts) if it is still at
        version `seen`, the one the question was asked at: a version saved meanwhile (another tab,
        another user) refuses it, said in a notification, and is listed, rather than being replaced
        unseen. Content with dangerous-pattern findings asks for acknowledgement first.
        """
        actor = await guard(Permission.edit_scripts)
        if actor is None:
            return
        try:
            saved = await call(
                scripts.rollback,
                actor,
                self.script.id,
                number,
                acknowledge_risks=acknowledge,
                base_version=seen,
            )
        except Invalid as exc:
            findings = findings_of(exc)
            if findings:
                risk_dialog(findings, lambda: self.rollback(number, True, seen))
            else:
                notify_error(exc.message)
            return
        except ServiceError as exc:
            notify_error(exc.message)
            await self.refresh()
            return
        done = f"Rolled back to version {number}: now version {saved.script.current_version}"
        keep_notices(done, saved.notices)
        ui.navigate.to(f"/scripts/{self.script.id}?tab=versions")


def _header(script: Script) -> None:
    """The script's type, status, label and current version, under its name."""
    with ui.row().classes("items-center gap-2"):
        type_badge(str(script.script_type))
        status_badge(str(script.status))
        ui.label(f"label {script.version} · version {script.current_version}").classes("text-grey-7").props(
            'data-testid="script-version"'
        )


def _versions_label(script: Script) -> str:
    """The Versions tab's label, with the count of versions."""
    return f"Versions ({script.current_version})"


async def _actions(actor: Actor, script: Script) -> None:
    for render in ACTIONS.values():
        await render(actor, script)
    if not can(actor.user, Permission.edit_scripts):
        return
    ui.button("Edit", icon="edit", on_click=lambda: ui.navigate.to(f"/scripts/{script.id}/edit")).props(
        'unelevated data-testid="edit-script"'
    )
    ui.button("Delete", icon="delete", on_click=opens_dialog(lambda: _confirm_delete(script))).props(
        'flat color=negative data-testid="delete-script"'
    )


def _confirm_delete(script: Script) -> None:
    with ui.dialog() as dialog, ui.card().classes("gap-3").props('data-testid="delete-dialog"'):
        dialog_title(f"Delete {script.name}?")
        ui.label(
            "The script leaves the library and its name becomes free; its past executions and "
            "versions stay readable from the execution history."
        ).classes("text-grey-8")

        async def confirm() -> None:
            actor = await guard(Permission.edit_scripts)
            if actor is None:
                return
            try:
                await call(scripts.delete, actor, script.id)
            except ServiceError as exc:
                notify_error(exc.message)
                return
            dialog.close()
            notify_ok(f"Deleted {script.name}")
            ui.navigate.to("/scripts")

        with ui.row().classes("w-full justify-end gap-2"):
            ui.button("Cancel", on_click=dialog.close).props("flat")
            ui.button("Delete", icon="delete", on_click=one_click(confirm)).props(
                'unelevated color=negative data-testid="delete-confirm"'
            )
    dialog.on("hide", dialog.delete)
    dialog.open()


def _tab_address(ext: ScriptTab, opened: str, given: dict[str, Any]) -> TabAddress:
    """The `TabAddress` of the registered tab `ext`: the parameters of `given` (the page
    address's) it reads when it is the tab `opened`; those of another tab are named as ignored."""
    mine = {name: value for name, value in given.items() if name in ext.reads}
    if ext.key == opened:
        return TabAddress(mine)
    if mine:
        address.say_ignored({name: f"is the {ext.label} tab's (tab={ext.key})" for name in mine})
    return TabAddress()


def tab_address(script_id: int | None, tab: str) -> str:
    """The address of the script page's `tab` (`/scripts/5?tab=versions`; the overview's:
    `/scripts/5`)."""
    return f"/scripts/{script_id}" if tab == "overview" else f"/scripts/{script_id}?{urlencode({'tab': tab})}"


@protected_page("/scripts/{script_id}", Permission.view_scripts, title="Script")
async def script_page(
    actor: Actor,
    script_id: int,
    tab: str = "overview",
    page: int = 1,
    status: str | None = None,
    user_id: int | None = None,
    trigger: str | None = None,
    since: address.Day | None = None,
    until: address.Day | None = None,
    cursor: str | None = None,
    host: str | None = None,
    host_status: str | None = None,
) -> None:
    """Page /scripts/{id} (needs view_scripts): the script's overview, content, versions and the registered
    tabs; `tab` selects the open tab (an unknown one is named and ignored), and is kept in the
    address when another is opened; `page` is the Versions table's (past the last: the last);
    the other parameters are those a registered tab reads (`ScriptTab.reads`: the Executions
    tab's filters, `/scripts/5?tab=executions&status=failed`), given to it when it is the tab
    opened, and named as ignored otherwise.
    """
    given = {
        "status": status,
        "user_id": user_id,
        "trigger": trigger,
        "since": since,
        "until": until,
        "cursor": cursor,
        "host": host,
        "host_status": host_status,
    }
    given = {name: value for name, value in given.items() if value not in (None, "")}
    try:
        script = await call(scripts.get, actor, script_id)
    except ServiceError as exc:
        with frame(actor, "Script"):
            missing(exc.message, "Back to the scripts", "/scripts", exc.status_code)
        return
    with frame(actor, script.name):
        show_kept_notices()
        header = ui.refreshable(_header)
        actions = ui.refreshable(_actions)
        with ui.row().classes("w-full items-center justify-between"):
            header(script)
            with ui.row().classes("items-center gap-2"):
                await actions(actor, script)
        extensions = ordered_tabs()
        with ui.tabs().classes("w-full").props("align=left") as tabs:
            own = {
                "overview": ui.tab("overview", "Overview", icon="info"),
                "content": ui.tab("content", "Content", icon="code"),
                "versions": ui.tab("versions", _versions_label(script), icon="history"),
            }
            for ext in extensions:
                own[ext.key] = ui.tab(ext.key, ext.label, icon=ext.icon)
        for key, element in own.items():
            element.props(f'data-testid="tab-{key}"')
        if tab not in own:  # named, like any address part the page does not read (ui/address.py)
            address.say_ignored(address.unknown_choice("tab", tab, list(own)))
        elif page != 1 and tab != "versions":
            address.say_ignored({"page": "is the Versions tab's (tab=versions)"})
        addresses = {ext.key: _tab_address(ext, tab, given) for ext in extensions}
        with ui.tab_panels(tabs, value=own.get(tab, own["overview"])).classes("w-full"):
            versions: VersionsView | None = None  # built below, after the page may have connected

            def keep_tab(event: Any) -> None:
                """The tab opened, in the address (a reload, Back or a shared link opened the one the
                page was opened on); the Versions tab's with the table's page. Listened to once the
                opened tab is set (setting it is no change to keep) and before the page's first
                await: a tab opened while the rest of the page was still being built (its tabs
                wait for the browser's connection) stayed out of the address."""
                key = str(event.value)
                kept = addresses[key].kept if key in addresses else None
                if key == "versions" and versions is not None:
                    ui.navigate.history.replace(versions.paged_address())
                elif kept is not None:
                    ui.navigate.history.replace(kept())
                else:
                    ui.navigate.history.replace(tab_address(script.id, key))

            tabs.on_value_change(keep_tab)
            overview = ui.refreshable(_overview)
            content = ui.refreshable(_content)
            shown, facts = script, await _overview_facts(actor, script)

            async def approval_form() -> None:
                """The approval requirement's form; the Overview shows what it saved at once."""

                async def saved() -> None:
                    await follow(shown, await _overview_facts(actor, shown))

                await approval_policy.open_policy_form(actor, script.id or 0, facts.policy, saved)

            on_approval = approval_form if can(actor.user, Permission.edit_scripts) else None
            with ui.tab_panel(own["overview"]):
                overview(script, facts, on_approval)
            with ui.tab_panel(own["content"]):
                content(script)

            async def follow(newer: Script, newer_facts: OverviewFacts | None = None) -> None:
                """Show `newer` in the header (and its buttons, on a change of status), the tab's
                count, Overview and Content when it is not what they show (a re-read of the
                Versions tab found another save, or the page's live re-read another change), and
                `newer_facts` (read again when `newer` differs) in the Overview when they changed:
                a shared inventory renamed, a key attached, an approval policy set elsewhere (the
                Overview kept the old ones until a reload)."""
                nonlocal shown, facts
                saved = (newer.current_version, newer.updated_at)
                changed = saved != (shown.current_version, shown.updated_at)
                if changed and newer_facts is None:
                    newer_facts = await _overview_facts(actor, newer)
                if not changed and newer_facts in (None, facts):
                    return
                if changed:
                    if newer.status != shown.status:  # Execute is enabled for an active script only
                        await actions.refresh(actor, newer)
                    layout.retitle(newer.name)
                    header.refresh(newer)
                    own["versions"].props["label"] = _versions_label(newer)
                    content.refresh(newer)
                shown, facts = newer, newer_facts or facts
                overview.refresh(newer, facts, on_approval)

            with ui.tab_panel(own["versions"]):
                versions = VersionsView(actor, script, follow, page if tab == "versions" else 1)
                await versions.refresh(reread_script=False)
                if script.current_version > 1:
                    await versions.compare()
            for ext in extensions:
                with ui.tab_panel(own[ext.key]):
                    await ext.render(actor, script, addresses[ext.key])

        async def reread(current: Actor) -> tuple[Script, OverviewFacts]:
            """The script and its `OverviewFacts` as they are now (the page's live re-read)."""
            newer = await call(scripts.get, current, script.id)
            return newer, await _overview_facts(current, newer)

        async def show_live(found: tuple[Script, OverviewFacts]) -> None:
            """`follow` what the live re-read found; a version saved elsewhere is listed too."""
            saved = found[0].current_version != shown.current_version
            await follow(*found)
            if saved and versions is not None:
                await versions.refresh(reread_script=False)

        layout.follow(reread, show_live, Permission.view_scripts, reads=OneRead())
