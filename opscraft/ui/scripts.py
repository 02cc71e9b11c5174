"""The scripts list: search, filters, sorting, pagination and an inviting empty state."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode

from nicegui import ui

from opscraft.db import stored_shapes
from opscraft.db.models import Execution, Script
from opscraft.db.models.scripts import ScriptStatus, ScriptType
from opscraft.services import runs, scripts
from opscraft.services.actor import Actor
from opscraft.services.names import name_key
from opscraft.services.permissions import Permission, can
from opscraft.services.scripts import ScriptQuery
from opscraft.ui import address
from opscraft.ui.execute_dialog import open_dialog
from opscraft.ui.execution_widgets import status_styles_js
from opscraft.ui.layout import frame, guard, protected_page
from opscraft.ui.paged import PagedTable
from opscraft.ui.script_widgets import STATUS_COLORS, TYPE_COLORS
from opscraft.ui.widgets import (
    NARROW_HIDDEN,
    PHONE_HIDDEN,
    STICKY_ACTIONS,
    WRAPPED,
    call,
    format_time,
    joined,
    opens_dialog,
    options_read_on_open,
)

PAGE_SIZE = 25
SORTS = {
    "name": "Name A-Z",
    "-name": "Name Z-A",
    "-updated_at": "Recently updated",
    "updated_at": "Oldest update",
}

# A phone keeps name, status, last run, Run (`NARROW_HIDDEN`, `PHONE_HIDDEN`).
COLUMNS: list[dict[str, Any]] = [
    {"name": "name", "label": "Name", "field": "name", "align": "left", **WRAPPED},
    {
        "name": "script_type",
        "label": "Type",
        "field": "script_type",
        "align": "left",
        **PHONE_HIDDEN,
    },
    {"name": "status", "label": "Status", "field": "status", "align": "left"},
    {"name": "last_run", "label": "Last run", "field": "last_run", "align": "left"},
    {
        "name": "tags",
        "label": "Tags",
        "field": "tags",
        "align": "left",
        **joined(NARROW_HIDDEN, WRAPPED),
    },
    {
        "name": "version",
        "label": "Version",
        "field": "version",
        "align": "left",
        **NARROW_HIDDEN,
    },
    {
        "name": "updated",
        "label": "Updated",
        "field": "updated",
        "align": "left",
        **NARROW_HIDDEN,
    },
    {"name": "run", "label": "", "field": "id", "align": "right", **STICKY_ACTIONS},
]
NAME_CELL = """
<q-td :props="props">
  <a :href="'/scripts/' + props.row.id" class="text-primary font-medium no-underline"
     :data-testid="'script-link-' + props.row.name">{{ props.value }}</a>
  <div class="text-caption text-grey-7 ellipsis-2-lines">{{ props.row.description }}</div>
  <div v-if="props.row.stored" class="text-caption text-negative oc-wrap"
       style="white-space: normal; min-width: 12rem; max-width: 28rem"
       :data-testid="'script-row-stored-' + props.row.name">{{ props.row.stored }}</div>
</q-td>"""
TYPE_CELL = f"""
<q-td :props="props"><q-badge :color="{TYPE_COLORS}[props.value]" :label="props.value" /></q-td>"""
STATUS_CELL = f"""
<q-td :props="props"><q-badge :color="{STATUS_COLORS}[props.value]" :label="props.value" /></q-td>"""
RUN_COLORS, RUN_TEXT_COLORS = status_styles_js("color"), status_styles_js("text")
LAST_RUN_CELL = f"""
<q-td :props="props">
  <a v-if="props.value" :href="'/executions/' + props.value.id" class="no-underline"
     :data-testid="'last-run-' + props.row.name">
    <q-badge :color="{RUN_COLORS}[props.value.status]" :text-color="{RUN_TEXT_COLORS}[props.value.status]"
             :label="props.value.status.replace('_', ' ')" />
    <span class="text-caption text-grey-8 q-ml-xs">{{{{ props.value.time }}}}</span>
  </a>
  <span v-else class="text-caption text-grey-7">never run</span>
</q-td>"""
RUN_CELL = """
<q-td :props="props" class="text-right">
  <template v-if="props.row.can_run">
    <q-btn v-if="props.row.status === 'active'" dense unelevated no-caps no-wrap color="positive"
           icon="play_arrow" label="Run" :data-testid="'run-' + props.row.name"
           :aria-label="'Run ' + props.row.name"
           @click="$parent.$emit('run', props.row.id)" />
    <a v-else :href="'/scripts/' + props.row.id" class="text-caption"
       :data-testid="'activate-' + props.row.name">
      {{ props.row.status }}: {{ props.row.not_active }}</a>
  </template>
</q-td>"""
TAGS_CELL = """
<q-td :props="props">
  <q-chip v-for="tag in props.value" :key="tag" dense outline color="primary" :label="tag" />
</q-td>"""


def _row(script: Script, last: Execution | None, can_run: bool, can_activate: bool) -> dict[str, Any]:
    """One row of the table; `can_run`: the reader may run scripts (a Run button, or why not);
    `can_activate`: they may also activate one that is not active (edit_scripts), so its row
    tells them to, and a viewer's says who can, as the script's page does."""
    return {
        "last_run": {"id": last.id, "status": str(last.status), "time": format_time(last.queued_at)}
        if last
        else None,
        "can_run": can_run,
        "not_active": "activate to run" if can_activate else "an operator or an admin can activate it",
        "id": script.id,
        "name": script.name,
        "description": script.description,
        "script_type": str(script.script_type),
        "status": str(script.status),
        "tags": script.tags,
        "version": f"{script.version} · v{script.current_version}",
        "updated": format_time(script.updated_at),
        # What its stored columns hold that cannot be read (tags as text, parameters that do not
        # declare anything): said under its name, as on its page and in the API's list.
        "stored": stored_shapes.note(script),
    }


@dataclass(frozen=True)
class ListFilter:
    """What the list shows; mirrored in the page's query string (`/scripts?search=web&tag=prod`),
    so Back from a script, a reload or a shared link shows the same list."""

    search: str | None = None
    script_type: str | None = None
    status: str | None = None
    tag: str | None = None
    sort: str = "name"

    def address(self) -> str:
        """`/scripts` with the filters that are set (the default sort left out)."""
        params = {key: value for key, value in asdict(self).items() if value}
        if self.sort == ListFilter.sort:
            del params["sort"]
        return f"/scripts?{urlencode(params)}" if params else "/scripts"


class ScriptList(PagedTable):
    """Filters, table and pager; every load goes through `services.scripts.list_scripts`."""

    def __init__(self, actor: Actor, tags: list[str], shown: ListFilter, page: int = 1) -> None:
        super().__init__(PAGE_SIZE, page)
        self.actor = actor
        with ui.row().classes("w-full items-center gap-3"):
            self.search = (
                ui.input(
                    placeholder="Search name, description or tags",
                    value=shown.search or "",
                    on_change=self.reload,
                )
                .props('outlined dense clearable debounce=300 data-testid="script-search"')
                .classes("w-80")
            )
            self.search.add_slot("prepend", '<q-icon name="search" />')
            self.filter_fields["search"] = self.search
            self.script_type = self._select(
                "Type", [t.value for t in ScriptType], "filter-type", shown.script_type
            )
            self.status = self._select(
                "Status", [s.value for s in ScriptStatus], "filter-status", shown.status
            )
            # a tag added since the page loaded (another tab, the API) is offered when it opens
            self.tag = options_read_on_open(self._select("Tag", tags, "filter-tag", shown.tag), self._tags)
            self.filter_fields["tag"] = self.tag
            self.sort = ui.select(SORTS, value=shown.sort, label="Sort", on_change=self.reload)
            self.sort.props('outlined dense data-testid="sort"').classes("w-44")
            ui.space()
            if can(actor.user, Permission.edit_scripts):
                ui.button("New script", icon="add", on_click=lambda: ui.navigate.to("/scripts/new")).props(
                    'unelevated data-testid="new-script"'
                )
        self.make_table(COLUMNS, "scripts-table", "Scripts")
        for name, slot in (
            ("name", NAME_CELL),
            ("script_type", TYPE_CELL),
            ("status", STATUS_CELL),
            ("tags", TAGS_CELL),
            ("last_run", LAST_RUN_CELL),
            ("run", RUN_CELL),
        ):
            self.table.add_slot(f"body-cell-{name}", slot)
        self.table.on("run", opens_dialog(self._run, with_args=True))  # a double-click: one form
        self.empty = ui.column().classes("w-full items-center py-10 gap-3")
        self.empty_for: tuple[bool, bool] | None = None  # what `empty` shows: (no rows, filtered)
        self.make_footer("scripts-summary")

    def _select(self, label: str, options: list[str], testid: str, value: str | None) -> ui.select:
        select = ui.select(options, label=label, value=value, clearable=True, on_change=self.reload)
        select.props(f'outlined dense data-testid="{testid}"').classes("w-36")
        return select

    async def _tags(self) -> list[str] | None:
        """The Tag filter's choices as they are now (`services.scripts.tags_in_use`)."""
        actor = await guard(Permission.view_scripts)
        return None if actor is None else await call(scripts.tags_in_use, actor)

    def _shown(self) -> ListFilter:
        """What the filters select now."""
        return ListFilter(
            (self.search.value or "").strip() or None,
            self.script_type.value or None,
            self.status.value or None,
            self.tag.value or None,
            self.sort.value,
        )

    def address(self) -> str:
        """`/scripts` with the filters that are set (`ListFilter.address`); the page is added."""
        return self._shown().address()

    def _filtered(self) -> bool:
        return bool(self.search.value or self.script_type.value or self.status.value or self.tag.value)

    async def show_page(self, ticking: bool = False) -> None:
        """Read and show the page of scripts the filters select, with each script's last run (re-checking
        view_scripts; `ticking`: a periodic refresh).
        """
        actor = await guard(Permission.view_scripts, ticking=ticking)
        if actor is None:
            return
        query = ScriptQuery(**asdict(self._shown()), skip=self.skip, limit=self.page_size)
        result = await self.load(lambda: call(scripts.list_scripts, actor, query), ticking)
        if result is None:
            if not ticking:
                self.table.set_visibility(False)
                self.empty.set_visibility(False)
                self.empty_for = None
            return
        rows, total = result
        last = await call(runs.last_runs, actor, [s.id for s in rows if s.id is not None])
        can_run = can(actor.user, Permission.execute_scripts)
        can_activate = can(actor.user, Permission.edit_scripts)
        self.show_rows([_row(s, last.get(s.id or 0), can_run, can_activate) for s in rows])
        self.table.set_visibility(total > 0)
        self._render_empty(total)
        self.show_total(total, "script", " match" if self._filtered() else "")

    def _render_empty(self, total: int) -> None:
        if self.empty_for == (total == 0, self._filtered()):  # drawn already: its button stays
            return
        self.empty_for = (total == 0, self._filtered())
        self.empty.clear()
        self.empty.set_visibility(total == 0)
        if total:
            return
        with (
            self.empty,
            ui.card().classes("items-center p-8 gap-3").props('flat bordered data-testid="empty-state"'),
        ):
            if self._filtered():
                ui.icon("search_off", color="grey").classes("text-5xl")
                ui.label("No script matches these filters.").classes("text-lg")
                ui.button("Clear filters", on_click=self._clear).props("flat")
                return
            ui.icon("description", color="primary").classes("text-5xl")
            ui.label("No scripts yet").classes("text-xl font-medium")
            if can(self.actor.user, Permission.edit_scripts):
                ui.label("Write your first Bash, Python, Ansible or Terraform script.").classes("text-grey-7")
                ui.button(
                    "Create your first script", icon="add", on_click=lambda: ui.navigate.to("/scripts/new")
                ).props('unelevated data-testid="create-first"')
            else:
                ui.label("Operators and admins can add scripts; they will appear here.").classes(
                    "text-grey-7"
                )

    async def _run(self, script_id: Any) -> None:
        """The Run dialog of the row's script (`script_id`: the table event's argument)."""
        actor = await guard(Permission.execute_scripts)
        if actor is not None:
            await open_dialog(actor, int(script_id))

    async def _clear(self) -> None:
        for element in (self.search, self.script_type, self.status, self.tag):
            element.set_value(None)
        await self.reload()


@protected_page("/scripts", Permission.view_scripts, title="Scripts")
async def scripts_page(
    actor: Actor,
    search: str | None = None,
    script_type: ScriptType | None = None,
    status: ScriptStatus | None = None,
    tag: str | None = None,
    sort: str | None = None,
    page: int = 1,
) -> None:
    """The list, filtered as the address says, on its `page` (past the last: the last); a tag no
    script has (any more) or an unknown sort is named in a warning and left out."""
    tags = await call(scripts.tags_in_use, actor)
    ignored: dict[str, str] = {}
    if tag:
        # Tags are one tag whatever their case (`names.name_key`), as the API's `tag=` filter:
        # `?tag=prod` selects the filter's `Prod`.
        spelled = {name_key(t): t for t in tags}.get(name_key(tag))
        if spelled is None:
            ignored |= address.unknown_choice("tag", tag, tags)
        tag = spelled
    if sort and sort not in SORTS:
        ignored |= address.unknown_choice("sort", sort, list(SORTS))
        sort = None
    kind, state = (choice.value if choice else None for choice in (script_type, status))
    shown = ListFilter(search, kind, state, tag, sort or ListFilter.sort)
    with frame(actor, "Scripts"):
        if ignored:
            address.say_ignored(ignored)
        view = ScriptList(actor, tags, shown, page)
        await view.refresh()
        view.follow()
