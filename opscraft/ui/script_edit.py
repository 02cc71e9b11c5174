"""Create and edit a script: code editor, parameter rows, tags, status, run settings, live checks.

Every rule lives in `services.scripts`; this page collects the form into the API's body shape and
shows what the service says: syntax errors and lint findings on their lines, a confirmation
dialog to acknowledge dangerous patterns, red notifications for everything else.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from opscraft.db.models import Script
from opscraft.db.models.scripts import ScriptStatus, ScriptType
from opscraft.services import scripts
from opscraft.services.actor import Actor
from opscraft.services.errors import Invalid, ServiceError
from opscraft.services.line_endings import Notice
from opscraft.services.linters import LintFinding
from opscraft.services.parameters import ParamType
from opscraft.services.permissions import Permission
from opscraft.services.script_checks import Finding, SyntaxProblem
from opscraft.ui.layout import frame, guard, notify_error, notify_ok, protected_page
from opscraft.ui.script_widgets import LANGUAGES, editor, findings_list, findings_of, mark_lines, risk_dialog
from opscraft.ui.widgets import call

CHECK_INTERVAL_SECONDS = 1.0
STARTER = {
    "bash": '#!/bin/bash\nset -euo pipefail\n\necho "Hello from OpsCraft"\n',
    "python": 'import os\n\nprint("Hello from OpsCraft in", os.getcwd())\n',
    "ansible": (
        "- hosts: localhost\n  gather_facts: false\n  tasks:\n"
        '    - ansible.builtin.debug:\n        msg: "Hello from OpsCraft"\n'
    ),
    "terraform": 'output "greeting" {\n  value = "Hello from OpsCraft"\n}\n',
}
# Leaving with unsaved changes: the browser asks first. `window.ocDirty` is set by the page.
UNLOAD_GUARD = """<script>
window.addEventListener("beforeunload", (e) => {
  if (window.ocDirty) { e.preventDefault(); e.returnValue = ""; }
});
</script>"""


class ParameterRows:
    """Editable rows of name / type / default / required / description (+ options for choices)."""

    def __init__(self, schema: list[dict[str, Any]]) -> None:
        self.rows: list[dict[str, Any]] = [
            {
                "name": spec["name"],
                "type": spec["type"],
                "default": "" if spec.get("default") is None else _text(spec["default"]),
                "required": bool(spec.get("required")),
                "description": spec.get("description") or "",
                "options": ", ".join(spec.get("options") or []),
            }
            for spec in schema
        ]
        self.container = ui.column().classes("w-full gap-2").props('data-testid="parameter-rows"')
        ui.button("Add parameter", icon="add", on_click=self.add).props(
            'flat no-caps data-testid="add-parameter"'
        )
        self.render()

    def add(self) -> None:
        self.rows.append(
            {"name": "", "type": "string", "default": "", "required": False, "description": "", "options": ""}
        )
        self.render()

    def remove(self, row: dict[str, Any]) -> None:
        self.rows.remove(row)
        self.render()

    def render(self) -> None:
        self.container.clear()
        with self.container:
            if not self.rows:
                ui.label("No parameters. Values reach the script as environment variables.").classes(
                    "text-grey-7"
                )
            for index, row in enumerate(self.rows):
                with (
                    ui.row()
                    .classes("w-full items-start gap-2 no-wrap")
                    .props(f'data-testid="param-row-{index}"')
                ):
                    ui.input("Name").bind_value(row, "name").props(
                        f'outlined dense data-testid="param-name-{index}"'
                    ).classes("w-44")
                    ui.select([t.value for t in ParamType], label="Type").bind_value(row, "type").props(
                        f'outlined dense data-testid="param-type-{index}"'
                    ).classes("w-32")
                    ui.input("Default").bind_value(row, "default").props(
                        f'outlined dense data-testid="param-default-{index}"'
                    ).classes("w-40")
                    ui.input("Options (comma-separated)").bind_value(row, "options").bind_visibility_from(
                        row, "type", value="choice"
                    ).props(f'outlined dense data-testid="param-options-{index}"').classes("w-48")
                    ui.input("Description").bind_value(row, "description").props(
                        f'outlined dense data-testid="param-description-{index}"'
                    ).classes("flex-grow")
                    ui.checkbox("Required").bind_value(row, "required").props(
                        f'data-testid="param-required-{index}"'
                    )
                    ui.button(icon="delete", on_click=lambda _, r=row: self.remove(r)).props(
                        f'flat round dense color=negative data-testid="param-remove-{index}"'
                    ).tooltip("Remove parameter")

    def value(self) -> list[dict[str, Any]]:
        """The typed list form the service accepts; the service validates and converts."""
        specs = []
        for row in self.rows:
            spec: dict[str, Any] = {
                "name": row["name"].strip(),
                "type": row["type"],
                "required": row["required"],
                "description": row["description"].strip(),
            }
            if row["default"] != "":
                spec["default"] = row["default"]
            if row["type"] == ParamType.choice:
                spec["options"] = [o.strip() for o in row["options"].split(",") if o.strip()]
            specs.append(spec)
        return specs


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


class ScriptForm:
    """The whole form; `script` is None when creating."""

    def __init__(self, script: Script | None) -> None:
        self.script = script
        self._checked: tuple[str, str] | None = None
        self._dirty = False
        ui.add_head_html(UNLOAD_GUARD)
        with ui.row().classes("w-full gap-4 items-start no-wrap"):
            with ui.column().classes("flex-grow gap-3 min-w-0"):
                self._main_fields()
            with ui.card().classes("w-80 gap-2").props("flat bordered"):
                self._side_fields()
        self.saved_state = self.payload()
        ui.timer(CHECK_INTERVAL_SECONDS, self._tick)

    def _main_fields(self) -> None:
        s = self.script
        with ui.row().classes("w-full gap-3 no-wrap"):
            self.name = ui.input("Name", value=s.name if s else "").props(
                'outlined dense data-testid="script-name"'
            )
            self.name.classes("flex-grow")
            self.script_type = ui.select(
                [t.value for t in ScriptType],
                label="Type",
                value=str(s.script_type) if s else "bash",
                on_change=self._type_changed,
            ).props('outlined dense data-testid="script-type"')
            self.script_type.classes("w-40")
        self.description = ui.textarea("Description", value=s.description if s else "").props(
            'outlined dense autogrow data-testid="script-description"'
        )
        self.description.classes("w-full")
        self.editor = editor(s.content if s else STARTER["bash"], LANGUAGES[self.script_type.value])
        self.editor.props('data-testid="script-editor"')
        self.editor.on_value_change(lambda: self._set_dirty(True))
        self.checks = ui.column().classes("w-full gap-1").props('data-testid="checks"')
        ui.label("Parameters").classes("text-subtitle1 font-medium mt-2")
        self.parameters = ParameterRows(s.parameters if s else [])

    def _side_fields(self) -> None:
        s = self.script
        self.status = (
            ui.select(
                [st.value for st in ScriptStatus], label="Status", value=str(s.status) if s else "draft"
            )
            .props('outlined dense data-testid="script-status"')
            .classes("w-full")
        )
        self.version = (
            ui.input("Version label", value=s.version if s else "1.0.0")
            .props('outlined dense data-testid="script-version"')
            .classes("w-full")
        )
        self.tags = (
            ui.input_chips("Tags", value=list(s.tags) if s else [])
            .props('outlined dense data-testid="script-tags"')
            .classes("w-full")
        )
        ui.label("Run settings").classes("text-subtitle2 mt-2")
        self.timeout = ui.number(
            "Timeout (seconds)", value=s.timeout_seconds if s else 3600, min=1, precision=0
        )
        self.memory = ui.number("Memory (MiB)", value=s.memory_mb if s else 512, min=16, precision=0)
        self.cpus = ui.number("CPUs", value=s.cpus if s else 0.5, min=0.1, step=0.1, precision=2)
        self.max_concurrent = ui.number(
            "Max concurrent runs (empty: no limit)", value=s.max_concurrent if s else None, min=1, precision=0
        )
        for element, testid in (
            (self.timeout, "timeout"),
            (self.memory, "memory"),
            (self.cpus, "cpus"),
            (self.max_concurrent, "max-concurrent"),
        ):
            element.props(f'outlined dense data-testid="{testid}"').classes("w-full")
        self.network = ui.switch("Network access", value=s.network_enabled if s else False).props(
            'data-testid="network"'
        )
        with ui.column().classes("w-full gap-1") as ansible_hosts:
            ui.label("Ansible hosts (empty inventory: localhost)").classes("text-subtitle2 mt-2")
            self.inventory = (
                ui.textarea("Inventory (INI or YAML; host and group variables included)")
                .props('outlined autogrow input-class="font-mono" data-testid="inventory"')
                .classes("w-full")
            )
            self.inventory.value = (s.inventory or "") if s else ""
            self.ssh_user = ui.input("SSH user", value=(s.ssh_user or "") if s else "").props(
                'outlined dense data-testid="ssh-user"'
            )
            self.ssh_key_secret = ui.input(
                "SSH key: name of an attached file secret", value=(s.ssh_key_secret or "") if s else ""
            ).props('outlined dense data-testid="ssh-key-secret"')
        ansible_hosts.bind_visibility_from(self.script_type, "value", value="ansible")
        self.change_note = ui.input("Change note (optional)").props(
            'outlined dense data-testid="change-note"'
        )
        self.change_note.classes("w-full")
        with ui.row().classes("w-full justify-end gap-2 mt-2"):
            ui.button("Cancel", on_click=self._cancel).props('flat no-caps data-testid="cancel"')
            self.save_button = ui.button("Save", icon="save", on_click=lambda: self.save(False)).props(
                'unelevated no-caps data-testid="save-script"'
            )

    def payload(self) -> dict[str, Any]:
        """The form as the API's create/update body."""
        body: dict[str, Any] = {
            "name": (self.name.value or "").strip(),
            "description": self.description.value or "",
            "script_type": self.script_type.value,
            "content": self.editor.value,
            "parameters": self.parameters.value(),
            "version": (self.version.value or "").strip(),
            "tags": list(self.tags.value or []),
            "status": self.status.value,
            "timeout_seconds": self.timeout.value,
            "memory_mb": self.memory.value,
            "cpus": self.cpus.value,
            "max_concurrent": self.max_concurrent.value,
            "network_enabled": bool(self.network.value),
        }
        if self.script_type.value == "ansible":
            body["inventory"] = self.inventory.value or None
            body["ssh_user"] = (self.ssh_user.value or "").strip() or None
            body["ssh_key_secret"] = (self.ssh_key_secret.value or "").strip() or None
        return body

    def _set_dirty(self, dirty: bool) -> None:
        if dirty != self._dirty:
            self._dirty = dirty
            ui.run_javascript(f"window.ocDirty = {'true' if dirty else 'false'}")

    async def _tick(self) -> None:
        """Once a second: keep the unsaved-changes flag true to the form, re-check changed content."""
        self._set_dirty(self.payload() != self.saved_state)
        current = (self.script_type.value, self.editor.value)
        if current == self._checked:
            return
        self._checked = current
        actor = await guard(Permission.edit_scripts)
        if actor is None:
            return
        try:
            checks = await scripts.check(actor, ScriptType(current[0]), current[1])
        except ServiceError as exc:
            notify_error(exc.message)
            return
        self._show_checks(checks.problems, checks.findings, checks.lint.findings, checks.notices)

    def _show_checks(
        self,
        problems: list[SyntaxProblem],
        findings: list[Finding],
        lint: list[LintFinding] | None = None,
        notices: list[Notice] | None = None,
    ) -> None:
        mark_lines(self.editor, problems, findings, lint or [])
        self.checks.clear()
        with self.checks:
            findings_list(problems, findings, lint or [], notices or [])

    def _type_changed(self) -> None:
        self.editor.set_language(LANGUAGES.get(self.script_type.value))
        if self.script is None and self.editor.value in STARTER.values():
            self.editor.set_value(STARTER[self.script_type.value])

    def _cancel(self) -> None:
        ui.navigate.to(f"/scripts/{self.script.id}" if self.script else "/scripts")

    async def save(self, acknowledge: bool) -> None:
        actor = await guard(Permission.edit_scripts)
        if actor is None:
            return
        body = {
            **self.payload(),
            "acknowledge_risks": acknowledge,
            "change_note": self.change_note.value or "",
        }
        self.save_button.props("loading")
        try:
            if self.script is None:
                saved = await call(scripts.create, actor, body)
            else:
                body["base_version"] = self.script.current_version
                saved = await call(scripts.update, actor, self.script.id, body)
        except Invalid as exc:
            self._show_invalid(exc)
            return
        except ServiceError as exc:
            notify_error(exc.message)
            return
        finally:
            self.save_button.props(remove="loading")
        self.saved_state = self.payload()
        self._set_dirty(False)
        notify_ok(f"Saved {saved.script.name} (version {saved.script.current_version})")
        for notice in saved.notices:
            ui.notify(notice.message, type="info", position="top", multi_line=True)
        ui.navigate.to(f"/scripts/{saved.script.id}")

    def _show_invalid(self, exc: Invalid) -> None:
        findings = findings_of(exc)
        if findings:
            self._show_checks([], findings)
            risk_dialog(findings, lambda: self.save(True))
            return
        problems = [
            SyntaxProblem(d["line"], d["message"].removeprefix(f"line {d['line']}: "))
            for d in exc.details
            if "line" in d
        ]
        if problems:
            self._show_checks(problems, [])
            self._checked = None  # the next tick shows the lint findings next to these errors
        notify_error(exc.message)


@protected_page("/scripts/new", Permission.edit_scripts, title="New script")
async def new_script_page(actor: Actor) -> None:
    with frame(actor, "New script"):
        ScriptForm(None)


@protected_page("/scripts/{script_id}/edit", Permission.edit_scripts, title="Edit script")
async def edit_script_page(actor: Actor, script_id: int) -> None:
    try:
        script = await call(scripts.get, actor, script_id)
    except ServiceError as exc:
        with frame(actor, "Edit script"):
            ui.label(exc.message).classes("text-negative text-lg").props('data-testid="not-found"')
            ui.link("Back to the scripts", "/scripts")
        return
    with frame(actor, f"Edit {script.name}"):
        ScriptForm(script)
