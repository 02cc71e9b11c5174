"""The secrets page (operators and admins): search, create, edit, replace value, delete, audit log.

A value is typed into a password field and sent to the service once; the dialog holding it is
deleted right after, and no page ever receives a value from the server.
"""

from __future__ import annotations

import json
from typing import Any

from nicegui import ui

from opscraft import runtime
from opscraft.db.models import AuditEvent
from opscraft.services import secrets
from opscraft.services.actor import Actor
from opscraft.services.permissions import Permission
from opscraft.services.secrets import SecretInfo
from opscraft.ui.layout import frame, guard, protected_page, run_action
from opscraft.ui.paged import PagedTable
from opscraft.ui.widgets import call, dialog_buttons, dialog_card, format_time, text_input

PAGE_SIZE = 20
AUDIT_PAGE_SIZE = 100

COLUMNS: list[dict[str, Any]] = [
    {"name": "name", "label": "Name", "field": "name", "align": "left"},
    {"name": "description", "label": "Description", "field": "description", "align": "left"},
    {"name": "scripts", "label": "Attached to", "field": "scripts", "align": "left"},
    {"name": "last_used", "label": "Last used", "field": "last_used", "align": "left"},
    {"name": "updated", "label": "Updated", "field": "updated", "align": "left"},
    {"name": "actions", "label": "", "field": "id", "align": "right"},
]
NAME_CELL = """
<q-td :props="props">
  <span class="font-mono" :data-testid="'secret-' + props.value">{{ props.value }}</span>
</q-td>"""
SCRIPTS_CELL = """
<q-td :props="props">
  <span v-if="!props.value.length" class="text-grey-6">no script</span>
  <a v-for="s in props.value" :key="s.id" :href="'/scripts/' + s.id" class="q-mr-xs">
    <q-chip dense clickable icon="description" :label="s.name" /></a>
</q-td>"""
ACTIONS_CELL = """
<q-td :props="props" class="text-right">
  <q-btn flat round dense icon="edit" color="primary" :data-testid="'edit-' + props.row.name"
         @click="$parent.$emit('edit', props.row)"><q-tooltip>Edit description</q-tooltip></q-btn>
  <q-btn flat round dense icon="key" color="primary" :data-testid="'replace-' + props.row.name"
         @click="$parent.$emit('replace', props.row)"><q-tooltip>Replace value</q-tooltip></q-btn>
  <q-btn flat round dense icon="history" color="primary" :data-testid="'audit-' + props.row.name"
         @click="$parent.$emit('audit', props.row)"><q-tooltip>Audit log</q-tooltip></q-btn>
  <q-btn flat round dense icon="delete" color="negative" :data-testid="'delete-' + props.row.name"
         @click="$parent.$emit('delete', props.row)"><q-tooltip>Delete</q-tooltip></q-btn>
</q-td>"""

AUDIT_COLUMNS: list[dict[str, Any]] = [
    {"name": "time", "label": "Time (UTC)", "field": "time", "align": "left"},
    {"name": "actor", "label": "Who", "field": "actor", "align": "left"},
    {"name": "action", "label": "What", "field": "action", "align": "left"},
    {"name": "execution", "label": "Execution", "field": "execution", "align": "left"},
    {"name": "details", "label": "Details", "field": "details", "align": "left"},
]
EXECUTION_CELL = """
<q-td :props="props">
  <a v-if="props.value" :href="'/executions/' + props.value" :data-testid="'audit-execution-' + props.value">
    #{{ props.value }}</a>
</q-td>"""
_HIDDEN_DETAILS = {"name", "execution_id"}


def _row(info: SecretInfo) -> dict[str, Any]:
    s = info.secret
    updated = format_time(s.updated_at) + (f" by {info.updated_by_name}" if info.updated_by_name else "")
    return {
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "scripts": [{"id": r.id, "name": r.name} for r in info.scripts],
        "last_used": format_time(s.last_used_at),
        "updated": updated,
    }


def _audit_row(event: AuditEvent) -> dict[str, Any]:
    details = {k: v for k, v in event.details.items() if k not in _HIDDEN_DETAILS}
    return {
        "id": event.id,
        "time": event.time.strftime("%Y-%m-%d %H:%M:%S"),
        "actor": event.actor_name or "-",
        "action": event.action.removeprefix("secret."),
        "execution": event.details.get("execution_id"),
        "details": json.dumps(details, sort_keys=True) if details else "",
    }


def _value_input(label: str, testid: str) -> ui.input:
    """A password field that browsers do not fill in or remember."""
    return (
        ui.input(label, password=True, password_toggle_button=True)
        .props(f'outlined dense autocomplete=new-password spellcheck=false data-testid="{testid}"')
        .classes("w-full")
    )


class SecretsView(PagedTable):
    """The table and its dialogs; every change goes through `services.secrets`."""

    def __init__(self) -> None:
        super().__init__(PAGE_SIZE)
        with ui.row().classes("w-full items-center gap-3"):
            self.search_box("Search name or description", "secret-search")
            ui.space()
            ui.button("New secret", icon="add", on_click=self.open_create).props(
                'unelevated data-testid="new-secret"'
            )
        ui.label(
            "Values are encrypted (AES-256-GCM) and never shown again. Attach a secret to a script to "
            "receive it as an environment variable; its value is masked as *** in the output."
        ).classes("text-grey-7")
        self.make_table(COLUMNS, "secrets-table")
        self.table.add_slot("body-cell-name", NAME_CELL)
        self.table.add_slot("body-cell-scripts", SCRIPTS_CELL)
        self.table.add_slot("body-cell-actions", ACTIONS_CELL)
        self.table.on("edit", lambda e: self.open_edit(e.args))
        self.table.on("replace", lambda e: self.open_replace(e.args))
        self.table.on("audit", lambda e: self.open_audit(e.args))
        self.table.on("delete", lambda e: self.open_delete(e.args))
        self.make_footer("secrets-summary")

    async def refresh(self) -> None:
        actor = await guard(Permission.manage_secrets)
        if actor is None:
            return

        result = await run_action(
            lambda: call(
                secrets.list_secrets, actor, search=self.search, skip=self.skip, limit=self.page_size
            )
        )
        if result is None:
            return
        rows, total = result
        self.table.rows = [_row(i) for i in rows]
        self.table.update()
        self.show_total(total, "secret", self.matching())

    def open_create(self) -> None:
        with ui.dialog().props("persistent") as dialog, dialog_card("New secret"):
            name = text_input(
                "Name (environment variable, e.g. DATABASE_PASSWORD)", "create-name", autofocus=True
            )
            kind = ui.toggle(
                {"env": "Environment variable", "file": "File (key, kubeconfig, ...)"}, value="env"
            ).props('no-caps data-testid="create-kind"')
            value = _value_input("Value", "create-value")
            file_value = (
                ui.textarea("File content (e.g. a private key)")
                .props('outlined autogrow input-class="font-mono" data-testid="create-file-value"')
                .classes("w-full")
            )
            file_value.bind_visibility_from(kind, "value", value="file")
            value.bind_visibility_from(kind, "value", value="env")
            ui.label(
                "A file secret is written into the run (mode 0400, removed afterwards); the variable "
                "holds its path."
            ).classes("text-caption text-grey-7").bind_visibility_from(kind, "value", value="file")
            description = text_input("Description", "create-description")
            ui.label("Values shorter than 4 characters cannot be masked in the output.").classes(
                "text-caption text-grey-7"
            )

            def body() -> dict[str, Any]:
                is_file = kind.value == "file"
                return {
                    "name": (name.value or "").strip(),
                    "value": (file_value.value if is_file else value.value) or "",
                    "description": (description.value or "").strip(),
                    "kind": kind.value,
                }

            dialog_buttons(
                dialog,
                "Create",
                "create-submit",
                lambda: self.apply(
                    dialog,
                    Permission.manage_secrets,
                    lambda s, a: secrets.create(s, a, body()),
                    "Secret created",
                ),
            )
        dialog.open()

    def open_edit(self, row: dict[str, Any]) -> None:
        with ui.dialog() as dialog, dialog_card(f"Edit {row['name']}"):
            description = text_input("Description", "edit-description")
            description.value = row["description"]
            dialog_buttons(
                dialog,
                "Save",
                "edit-submit",
                lambda: self.apply(
                    dialog,
                    Permission.manage_secrets,
                    lambda s, a: secrets.update(s, a, row["id"], {"description": description.value or ""}),
                    "Description saved",
                ),
            )
        dialog.open()

    def open_replace(self, row: dict[str, Any]) -> None:
        with ui.dialog().props("persistent") as dialog, dialog_card(f"Replace the value of {row['name']}"):
            ui.label("The current value is not shown. Runs that start after saving get the new one.").classes(
                "text-grey-7"
            )
            value = _value_input("New value", "replace-value")
            dialog_buttons(
                dialog,
                "Replace value",
                "replace-submit",
                lambda: self.apply(
                    dialog,
                    Permission.manage_secrets,
                    lambda s, a: secrets.update(s, a, row["id"], {"value": value.value or ""}),
                    "Value replaced",
                ),
            )
        dialog.open()

    def open_delete(self, row: dict[str, Any]) -> None:
        attached = row["scripts"]
        with ui.dialog() as dialog, dialog_card(f"Delete {row['name']}?"):
            ui.label("The secret and its encrypted value are removed for good.").classes("text-grey-8")
            force = None
            if attached:
                names = ", ".join(s["name"] for s in attached)
                ui.label(f"It is attached to {len(attached)} script(s): {names}.").classes("text-negative")
                force = ui.checkbox("Detach it from these scripts and delete it").props(
                    'data-testid="delete-force"'
                )
            dialog_buttons(
                dialog,
                "Delete",
                "delete-confirm",
                lambda: self.apply(
                    dialog,
                    Permission.manage_secrets,
                    lambda s, a: secrets.delete(s, a, row["id"], force=bool(force and force.value)),
                    "Secret deleted",
                ),
                color="negative",
            )
        dialog.open()

    async def open_audit(self, row: dict[str, Any]) -> None:
        actor = await guard(Permission.manage_secrets)
        if actor is None:
            return

        async def load() -> tuple[list[AuditEvent], int]:
            async with runtime.current().db.session() as s:
                return await secrets.audit_logs(s, actor, row["id"], limit=AUDIT_PAGE_SIZE)

        result = await run_action(load)
        if result is None:
            return
        events, total = result
        with ui.dialog() as dialog, ui.card().classes("w-[60rem] max-w-full gap-3"):
            ui.label(f"Audit log of {row['name']}").classes("text-lg font-semibold")
            shown = f"the latest {len(events)} of {total}" if total > len(events) else f"{total}"
            ui.label(f"{shown} event(s), newest first").classes("text-grey-7")
            table = ui.table(columns=AUDIT_COLUMNS, rows=[_audit_row(e) for e in events], row_key="id")
            table.props(
                'flat bordered dense hide-pagination :rows-per-page-options="[0]" data-testid="secret-audit"'
            )
            table.classes("w-full")
            table.add_slot("body-cell-execution", EXECUTION_CELL)
            with ui.row().classes("w-full justify-end"):
                ui.button("Close", on_click=dialog.delete).props('flat data-testid="audit-close"')
        dialog.open()


@protected_page("/secrets", Permission.manage_secrets, title="Secrets")
async def secrets_page(actor: Actor) -> None:
    with frame(actor, "Secrets"):
        view = SecretsView()
    await view.refresh()
