"""The secrets page (operators and admins): search, create, edit, replace value, delete, audit log.

A value is typed or pasted (several lines kept as they are) or read from a file, and sent to the
service once; the dialog holding it is deleted right after (one closed with Escape, which stays
on the page hidden, has its value field emptied), and no page ever receives a value from the server.
"""

from __future__ import annotations

import base64
import codecs
from typing import Any

from nicegui import ui

from opscraft import runtime
from opscraft.db.models import AuditEvent
from opscraft.services import secrets
from opscraft.services.actor import Actor
from opscraft.services.permissions import Permission
from opscraft.services.secrets import SecretInfo
from opscraft.ui import drafts
from opscraft.ui.audit import DETAILS_CELL, readable
from opscraft.ui.layout import frame, guard, protected_page, run_action
from opscraft.ui.paged import PagedTable
from opscraft.ui.widgets import (
    NARROW_HIDDEN,
    STICKY_ACTIONS,
    WRAPPED,
    call,
    confirm,
    data_table,
    dialog_buttons,
    dialog_card,
    dialog_title,
    forget_on_close,
    format_time,
    joined,
    longest,
    opens_dialog,
    prose_input,
    text_input,
)

PAGE_SIZE = 20
DRAFTS = "secret:"
"""The tab's drafts of the dialogs: `secret:new` (creation) and `secret:<id>` (a description
edited); `ui.drafts`. A value is never kept."""
AUDIT_PAGE_SIZE = 100

COLUMNS: list[dict[str, Any]] = [
    {"name": "name", "label": "Name", "field": "name", "align": "left", **WRAPPED},
    {
        "name": "description",
        "label": "Description",
        "field": "description",
        "align": "left",
        **joined(NARROW_HIDDEN, WRAPPED),
    },
    {
        "name": "scripts",
        "label": "Attached to",
        "field": "scripts",
        "align": "left",
        **joined(NARROW_HIDDEN, WRAPPED),
    },
    {"name": "last_used", "label": "Last used", "field": "last_used", "align": "left", **NARROW_HIDDEN},
    {"name": "updated", "label": "Updated", "field": "updated", "align": "left", **NARROW_HIDDEN},
    {"name": "actions", "label": "", "field": "id", "align": "right", **STICKY_ACTIONS},
]
NAME_CELL = """
<q-td :props="props">
  <span class="font-mono" :data-testid="'secret-' + props.value">{{ props.value }}</span>
</q-td>"""
SCRIPTS_CELL = """
<q-td :props="props">
  <span v-if="!props.value.length" class="text-grey-7">no script</span>
  <a v-for="s in props.value" :key="s.id" :href="'/scripts/' + s.id" class="q-mr-xs">
    <q-chip dense clickable icon="description" :label="s.name" /></a>
</q-td>"""
ACTIONS_CELL = """
<q-td :props="props" class="text-right">
  <q-btn flat round dense aria-label="Edit description"
         icon="edit" color="primary" :data-testid="'edit-' + props.row.name"
         @click="$parent.$emit('edit', props.row)"><q-tooltip>Edit description</q-tooltip></q-btn>
  <q-btn flat round dense aria-label="Replace value"
         icon="key" color="primary" :data-testid="'replace-' + props.row.name"
         @click="$parent.$emit('replace', props.row)"><q-tooltip>Replace value</q-tooltip></q-btn>
  <q-btn v-if="props.row.previous_until" flat round dense aria-label="Refuse old key now"
         icon="key_off" color="warning" :data-testid="'end-previous-' + props.row.name"
         @click="$parent.$emit('end_previous', props.row)"><q-tooltip>Refuse old key now</q-tooltip></q-btn>
  <q-btn flat round dense aria-label="Audit log"
         icon="history" color="primary" :data-testid="'audit-' + props.row.name"
         @click="$parent.$emit('audit', props.row)"><q-tooltip>Audit log</q-tooltip></q-btn>
  <q-btn flat round dense aria-label="Delete"
         icon="delete" color="negative" :data-testid="'delete-' + props.row.name"
         @click="$parent.$emit('delete', props.row)"><q-tooltip>Delete</q-tooltip></q-btn>
</q-td>"""

AUDIT_COLUMNS: list[dict[str, Any]] = [
    {"name": "time", "label": "Time (UTC)", "field": "time", "align": "left"},
    {"name": "actor", "label": "Who", "field": "actor", "align": "left"},
    {"name": "action", "label": "What", "field": "action", "align": "left"},
    {"name": "execution", "label": "Execution", "field": "execution", "align": "left", **NARROW_HIDDEN},
    {"name": "details", "label": "Details", "field": "details", "align": "left"},
]
EXECUTION_CELL = """
<q-td :props="props">
  <a v-if="props.value" :href="'/executions/' + props.value" :data-testid="'audit-execution-' + props.value">
    #{{ props.value }}</a>
</q-td>"""
_HIDDEN_DETAILS = {"name", "execution_id"}


# The rotation windows the New value dialog offers a secret that signs webhooks (seconds ->
# label; services/secrets.py, `previous_accepted_seconds`): the default first.
KEEP_PREVIOUS = {
    secrets.PREVIOUS_DEFAULT_SECONDS: "1 hour",
    0: "no: refuse it at once",
    600: "10 minutes",
    24 * 3600: "1 day",
    secrets.PREVIOUS_MAX_SECONDS: "7 days",
}


async def refuse_previous(secret_id: int, name: str, until: str) -> None:
    """Ask, then end the rotation window of the secret `name` (accepted `until`, as shown):
    `secrets.end_previous`, needs manage_secrets. The Secrets page and a webhook's row offer it
    (**Refuse old key now**)."""
    if not await confirm(
        f"Refuse the old value of {name} now?",
        f"Webhooks signed with it accept it until {until}: from now on they accept its current value "
        "only. Switch every sender first.",
        "Refuse old key now",
        "confirm-end-previous",
    ):
        return
    actor = await guard(Permission.manage_secrets)
    if actor is not None:
        await run_action(lambda: call(secrets.end_previous, actor, secret_id), "Old value refused")


def _row(info: SecretInfo) -> dict[str, Any]:
    s = info.secret
    updated = format_time(s.updated_at) + (f" by {info.updated_by_name}" if info.updated_by_name else "")
    previous = info.previous_accepted_until
    if previous is not None:
        updated += f" · old value accepted until {format_time(previous)}"
    return {
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "scripts": [{"id": r.id, "name": r.name} for r in info.scripts],
        "last_used": format_time(s.last_used_at),
        "updated": updated,
        "signs_webhooks": info.signs_webhooks,
        "previous_until": format_time(previous) if previous is not None else None,
    }


def _audit_row(event: AuditEvent) -> dict[str, Any]:
    details = {k: v for k, v in event.details.items() if k not in _HIDDEN_DETAILS}
    return {
        "id": event.id,
        "time": event.time.strftime("%Y-%m-%d %H:%M:%S"),
        "actor": event.actor_name or "system",
        "action": event.action.removeprefix("secret."),
        "execution": event.details.get("execution_id"),
        "details": readable(details),
    }


SECRET_VALUE_CSS = """
.oc-masked textarea { -webkit-text-security: disc; }
.oc-secret-value textarea { font-family: ui-monospace, monospace; white-space: pre; }
.oc-file-pick { display: inline-flex; align-items: center; gap: 6px; padding: 4px 12px;
  border: 1px solid rgba(0, 0, 0, .24); border-radius: 4px; cursor: pointer; position: relative;
  color: var(--q-primary); font-size: 14px; }
.body--dark .oc-file-pick { border-color: rgba(255, 255, 255, .28); color: #90caf9; }
.oc-file-pick:hover { background: rgba(0, 0, 0, .04); }
.body--dark .oc-file-pick:hover { background: rgba(255, 255, 255, .08); }
.oc-file-pick:focus-within { outline: 2px solid var(--q-primary); outline-offset: 2px; }
.oc-file-pick input { position: absolute; width: 1px; height: 1px; opacity: 0; overflow: hidden;
  clip-path: inset(50%); }
"""
# The chosen file's bytes, read by the browser and sent base64-encoded with the change event
# (at most `secrets.MAX_VALUE_BYTES`; a larger file sends only its size). The input is cleared,
# so choosing the same file again is a change too.
READ_FILE_JS = """(event) => {
  const input = event.target, file = input.files && input.files[0];
  if (!file) return;
  input.value = "";
  if (file.size > %d) { emit({name: file.name, size: file.size}); return; }
  file.arrayBuffer().then((buffer) => {
    const bytes = new Uint8Array(buffer);
    let text = "";
    for (let i = 0; i < bytes.length; i += 8192) text += String.fromCharCode(...bytes.subarray(i, i + 8192));
    emit({name: file.name, size: file.size, data: btoa(text)});
  });
}"""


class SecretValueField:
    """A secret value as typed or pasted (several lines kept as they are, e.g. an SSH private key or
    a kubeconfig) or read from a file, byte for byte. Masked until "Show" is pressed; never filled
    in or remembered by the browser, and never kept in a draft."""

    def __init__(self, label: str, testid: str) -> None:
        ui.add_css(SECRET_VALUE_CSS)
        self.file_text: str | None = None
        self.text = (
            ui.textarea(label)
            .props(
                f"outlined dense autocomplete=off spellcheck=false autocorrect=off autocapitalize=off "
                f'rows=4 data-testid="{testid}"'
            )
            .classes("w-full oc-secret-value oc-masked")
        )
        with ui.row().classes("w-full items-center gap-2"):
            self.show = ui.switch("Show", on_change=self._toggle).props(f'dense data-testid="{testid}-show"')
            ui.space()
            # A label around the file input, not Quasar's uploader: that put its file input inside
            # a button (axe-core's `nested-interactive`: two controls in one for a screen reader).
            with ui.element("label").classes("oc-file-pick").props(f'data-testid="{testid}-file"'):
                ui.icon("upload_file").props('aria-hidden="true"')
                ui.label("Or read it from a file")
                picker = ui.element("input").props('type="file"')
            picker.on("change", self._picked, js_handler=READ_FILE_JS % secrets.MAX_VALUE_BYTES)
        self.file_note = ui.label().classes("text-caption").props(f'data-testid="{testid}-file-note"')
        self.file_note.set_visibility(False)
        forget_on_close(self.text, self._forget)

    def _toggle(self) -> None:
        if self.show.value:
            self.text.classes(remove="oc-masked")
        else:
            self.text.classes(add="oc-masked")

    def _file_error(self, message: str) -> None:
        self.file_text = None
        self.file_note.text = message
        self.file_note.classes(replace="text-caption text-negative")
        self.file_note.set_visibility(True)

    def _picked(self, event: Any) -> None:
        """A file chosen (`READ_FILE_JS`'s `{name, size, data}`): its bytes become the value."""
        args = event.args if isinstance(event.args, dict) else {}
        name = str(args.get("name") or "the file")
        too_big = f"{name} is larger than {secrets.MAX_VALUE_BYTES // 1024} KiB"
        if "data" not in args:
            self._file_error(too_big)
            return
        try:
            raw = base64.b64decode(str(args["data"]), validate=True)
        except ValueError:
            self._file_error(f"{name} could not be read: choose it again")
            return
        if len(raw) > secrets.MAX_VALUE_BYTES:  # the browser's check is the browser's
            self._file_error(too_big)
            return
        self._read(name, raw)

    def _read(self, name: str, raw: bytes) -> None:
        # A byte order mark (Windows editors write one) is no part of a value: a variable that
        # began with an invisible U+FEFF failed every login it was used for, with no hint why.
        bom = raw.startswith(codecs.BOM_UTF8)
        try:
            self.file_text = raw.removeprefix(codecs.BOM_UTF8).decode("utf-8")
        except UnicodeDecodeError:
            self._file_error(f"{name} is not UTF-8 text: a secret value must be text")
            return
        self.text.value = ""
        self.text.disable()
        how = "its leading byte order mark dropped" if bom else "as is"
        self.file_note.text = f"The value is the content of {name} ({len(raw):,} bytes, {how})."
        self.file_note.classes(replace="text-caption text-positive")
        self.file_note.set_visibility(True)

    def _forget(self) -> None:
        """The value read or typed dropped (`widgets.forget_on_close`)."""
        self.file_text = None
        self.text.set_value("")

    @property
    def value(self) -> str:
        """The file's content when one was read, else the text as typed (line breaks kept)."""
        return self.file_text if self.file_text is not None else (self.text.value or "")


class SecretsView(PagedTable):
    """The table and its dialogs; every change goes through `services.secrets`."""

    def __init__(self, search: str | None = None, page: int = 1) -> None:
        super().__init__(PAGE_SIZE, page)
        with ui.row().classes("w-full items-center gap-3"):
            self.search_box("Search name or description", "secret-search", "/secrets", search)
            ui.space()
            ui.button("New secret", icon="add", on_click=opens_dialog(self.open_create)).props(
                'unelevated data-testid="new-secret"'
            )
        ui.label(
            "Values are encrypted (AES-256-GCM) and never shown again. Attach a secret to a script to "
            "receive it as an environment variable; its value is masked as *** in the output."
        ).classes("text-grey-7")
        self.make_table(COLUMNS, "secrets-table", "Secrets")
        self.table.add_slot("body-cell-name", NAME_CELL)
        self.table.add_slot("body-cell-scripts", SCRIPTS_CELL)
        self.table.add_slot("body-cell-actions", ACTIONS_CELL)
        self.table.on("edit", opens_dialog(self.open_edit, with_args=True))
        self.table.on("replace", opens_dialog(self.open_replace, with_args=True))
        self.table.on("audit", opens_dialog(self.open_audit, with_args=True))
        self.table.on("end_previous", opens_dialog(self.open_end_previous, with_args=True))
        self.table.on("delete", opens_dialog(self.open_delete, with_args=True))
        self.make_footer("secrets-summary")

    async def show_page(self, ticking: bool = False) -> None:
        """Read and show the current page of secrets (re-checking manage_secrets; `ticking`: a periodic
        refresh).
        """
        actor = await guard(Permission.manage_secrets, ticking=ticking)
        if actor is None:
            return

        result = await self.load(
            lambda: call(
                secrets.list_secrets, actor, search=self.search, skip=self.skip, limit=self.page_size
            ),
            ticking,
        )
        if result is None:
            return
        rows, total = result
        self.show_rows([_row(i) for i in rows])
        self.show_total(total, "secret", self.matching())

    async def row_of(self, actor: Actor, secret_id: int) -> dict[str, Any]:
        """The table's row of secret `secret_id`, whatever page it is on (`secrets.get`, as the
        API's `GET /secrets/{id}`). Raises NotFound (no such secret)."""
        return _row(await call(secrets.get, actor, secret_id))

    def open_create(self) -> None:
        """Open the dialog creating a secret (an environment variable or a file secret)."""
        with ui.dialog() as dialog, dialog_card("New secret") as card:
            name = text_input(
                "Name (environment variable, e.g. DATABASE_PASSWORD)",
                "create-name",
                autofocus=True,
                limit=longest(secrets.SecretCreate, "name"),
            )
            kind = ui.toggle(
                {"env": "Environment variable", "file": "File (key, kubeconfig, ...)"}, value="env"
            ).props('data-testid="create-kind"')
            value = SecretValueField("Value (several lines are kept as they are)", "create-value")
            ui.label(
                "A file secret is written into the run (mode 0400, removed afterwards); the variable "
                "holds its path."
            ).classes("text-caption text-grey-7").bind_visibility_from(kind, "value", value="file")
            description = prose_input(
                "Description", "create-description", limit=longest(secrets.SecretCreate, "description")
            )
            draft = drafts.dialog_draft(f"{DRAFTS}new", card, {"name": name, "description": description})
            # A problem of the kind (a name Ansible reads a file's path from must be a file
            # secret) goes under the name: the toggle shows no message of its own.
            fields = {"name": name, "kind": name, "value": value.text, "description": description}
            ui.label("Values shorter than 4 characters cannot be masked in the output.").classes(
                "text-caption text-grey-7"
            )

            def body() -> dict[str, Any]:
                return {
                    "name": name.value or "",  # the service drops blanks around it (names.trimmed)
                    "value": value.value or "",
                    "description": description.value or "",  # as typed, as the API keeps it
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
                    fields,
                    draft,
                    warnings=lambda info: info.warnings,
                ),
                on_cancel=draft.clear,
            )
        dialog.open()

    def open_edit(self, row: dict[str, Any]) -> None:
        """Open the dialog editing a secret's description (refused under it, by `base`, when
        another tab or user changed it since the edit started: the draft holds it)."""
        shown = {"description": row["description"]}
        with ui.dialog() as dialog, dialog_card(f"Edit {row['name']}") as card:
            description = prose_input(
                "Description",
                "edit-description",
                value=row["description"],
                limit=longest(secrets.SecretCreate, "description"),
            )
            draft = drafts.dialog_draft(f"{DRAFTS}{row['id']}", card, {"description": description}, shown)
            dialog_buttons(
                dialog,
                "Save",
                "edit-submit",
                lambda: self.apply(
                    dialog,
                    Permission.manage_secrets,
                    lambda s, a: secrets.update(
                        s, a, row["id"], {"description": description.value or "", "base": draft.held_base()}
                    ),
                    "Description saved",
                    {"description": description},
                    draft,
                ),
                on_cancel=draft.clear,
            )
        dialog.open()

    def open_replace(self, row: dict[str, Any]) -> None:
        """Open the dialog replacing a secret's value; for a secret that signs webhooks, with how
        long they still accept the value replaced (`KEEP_PREVIOUS`)."""
        with ui.dialog() as dialog, dialog_card(f"Replace the value of {row['name']}"):
            ui.label("The current value is not shown. Runs that start after saving get the new one.").classes(
                "text-grey-7"
            )
            value = SecretValueField("New value", "replace-value")
            keep = None
            if row.get("signs_webhooks"):
                keep = ui.select(
                    KEEP_PREVIOUS,
                    value=secrets.PREVIOUS_DEFAULT_SECONDS,
                    label="Keep accepting the old value for",
                ).props('outlined dense data-testid="replace-keep-previous"')
                ui.label(
                    "It signs webhooks: calls signed with the old value are accepted that long, so "
                    "that each sender can be switched to the new one."
                ).classes("text-caption text-grey-7")

            def body() -> dict[str, Any]:
                sent: dict[str, Any] = {"value": value.value}
                if keep is not None:
                    sent[secrets.PREVIOUS_FIELD] = keep.value
                return sent

            fields = {"value": value.text} | ({secrets.PREVIOUS_FIELD: keep} if keep is not None else {})
            dialog_buttons(
                dialog,
                "Replace value",
                "replace-submit",
                lambda: self.apply(
                    dialog,
                    Permission.manage_secrets,
                    lambda s, a: secrets.update(s, a, row["id"], body()),
                    "Value replaced",
                    fields,
                    warnings=lambda info: info.warnings,
                ),
            )
        dialog.open()

    async def open_end_previous(self, row: dict[str, Any]) -> None:
        """Ask, then end the secret's rotation window (`refuse_previous`), and show the table again."""
        await refuse_previous(row["id"], row["name"], row["previous_until"])
        await self.refresh()

    def open_delete(self, row: dict[str, Any]) -> None:
        """Open the dialog confirming a secret's deletion; an attached secret needs the "detach and delete"
        box ticked.
        """
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
        """The secret's audit log in a dialog, newest first, `AUDIT_PAGE_SIZE` events a page
        (each page re-checks the session: a user demoted meanwhile reads no further)."""

        async def page_of(page: int) -> tuple[list[AuditEvent], int] | None:
            actor = await guard(Permission.manage_secrets)
            if actor is None:
                return None

            async def load() -> tuple[list[AuditEvent], int]:
                skip = (page - 1) * AUDIT_PAGE_SIZE
                async with runtime.current().db.session() as s:
                    return await secrets.audit_logs(s, actor, row["id"], skip=skip, limit=AUDIT_PAGE_SIZE)

            return await run_action(load)

        first = await page_of(1)
        if first is None:
            return
        with ui.dialog() as dialog, ui.card().classes("w-[60rem] max-w-full gap-3"):
            dialog_title(f"Audit log of {row['name']}")
            summary = ui.label().classes("text-grey-7").props('data-testid="secret-audit-summary"')
            table = data_table(AUDIT_COLUMNS, [], "id", f"Audit log of {row['name']}")
            table.props(
                'flat bordered dense hide-pagination :rows-per-page-options="[0]" data-testid="secret-audit"'
            )
            table.add_slot("body-cell-execution", EXECUTION_CELL)
            table.add_slot("body-cell-details", DETAILS_CELL)

            def show(page: int, events: list[AuditEvent], total: int) -> None:
                table.rows = [_audit_row(e) for e in events]
                table.update()
                summary.text = _audit_summary(page, len(events), total)
                pager.max = max(1, -(-total // AUDIT_PAGE_SIZE))
                pager.set_visibility(total > AUDIT_PAGE_SIZE)

            async def turn(event: Any) -> None:
                page = int(event.value or 1)
                if (result := await page_of(page)) is not None:
                    show(page, *result)

            with ui.row().classes("w-full items-center"):
                pager = ui.pagination(1, 1, direction_links=True, on_change=turn).props(
                    'data-testid="secret-audit-pager"'
                )
                ui.space()
                ui.button("Close", on_click=dialog.delete).props('flat data-testid="audit-close"')
            show(1, *first)
        dialog.open()


def _audit_summary(page: int, shown: int, total: int) -> str:
    """`12 event(s), newest first`, or which of them a page shows (`events 101-121 of 121, ...`)."""
    if total <= AUDIT_PAGE_SIZE:
        return f"{total} event(s), newest first"
    if not shown:
        return f"{total} events, none on page {page}"
    start = (page - 1) * AUDIT_PAGE_SIZE
    return f"events {start + 1}-{start + shown} of {total}, newest first"


@protected_page("/secrets", Permission.manage_secrets, title="Secrets")
async def secrets_page(actor: Actor, search: str | None = None, page: int = 1) -> None:
    """The list, searched as the address says (`?search=`), on its `page` (past the last: the last)."""
    with frame(actor, "Secrets"):
        view = SecretsView(search, page)
    await view.refresh()
    view.follow()
    view.reopen_drafts(
        DRAFTS, "secret", Permission.manage_secrets, view.open_create, view.open_edit, view.row_of
    )
