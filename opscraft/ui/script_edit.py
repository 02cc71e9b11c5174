"""Create and edit a script: code editor, parameter rows, tags, status, run settings, live checks.

Every rule lives in `services.scripts`; this page collects the form into the API's body shape and
shows what the service says: syntax errors and lint findings on their lines, a confirmation
dialog to acknowledge dangerous patterns, red notifications for everything else.
"""

from __future__ import annotations

from typing import Any

from nicegui import ui

from opscraft.db.digits import ascii_int
from opscraft.db.models import Execution, Script
from opscraft.db.models.scripts import ScriptStatus, ScriptType
from opscraft.services import parameters, scripts, shared_inventories
from opscraft.services.actor import Actor
from opscraft.services.errors import Invalid, ServiceError
from opscraft.services.line_endings import Notice
from opscraft.services.linters import LintFinding
from opscraft.services.parameters import ParamType
from opscraft.services.permissions import Permission
from opscraft.services.script_checks import Finding, SyntaxProblem
from opscraft.ui import execute_dialog, labels
from opscraft.ui.drafts import Draft
from opscraft.ui.layout import frame, guard, notify_error, protected_page, sentence, show_field_errors
from opscraft.ui.not_found import missing
from opscraft.ui.script_widgets import (
    LANGUAGES,
    MAX_EDIT_UNITS,
    editor,
    findings_list,
    findings_of,
    keep_notices,
    mark_lines,
    risk_dialog,
)
from opscraft.ui.tag_input import TagInput
from opscraft.ui.widgets import (
    TALL_TEXT_PROPS,
    call,
    call_all,
    changed,
    live_timer,
    longest,
    one_click,
    one_shot,
    says_limit,
    whole,
)

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
// Ctrl+S / Cmd+S saves (in the editor and in every field of the form), instead of saving the page.
document.addEventListener("keydown", (e) => {
  if ((e.ctrlKey || e.metaKey) && !e.altKey && e.key.toLowerCase() === "s") {
    const save = document.querySelector('[data-testid="save-script"]');
    if (save) { e.preventDefault(); save.click(); }
  }
}, true);
</script>"""
# How a run's values reach each type of script (docs/scripts.md, "How values reach each program"):
# "environment variables" was wrong for Ansible (extra vars: `lookup('env', ...)` found nothing).
NO_PARAMETERS = (
    "No parameters. Values reach Bash and Python as environment variables, Ansible as extra vars "
    "({{ NAME }}), Terraform as variables (var.NAME)."
)
# Why Test run is disabled in the editor of a script not saved yet.
NEW_SCRIPT_TEST_RUN = "Test run: save the script first (new scripts are saved as drafts), then test-run edits"
# The size counter turns orange from this share of the limit on.
SIZE_WARNING_SHARE = 0.8


class ParameterRows:
    """Editable rows of name / type / default / required / description (+ options for choices)."""

    def __init__(self, schema: list[dict[str, Any]], draft: Draft) -> None:
        self.draft = draft
        draft.on_restore.append(self._rows_for_draft)
        # Rows added or removed on this page: a draft restored after that (its answer comes back
        # from the browser, late on a busy connection) leaves the rows as they are.
        self.edited = False
        self.rows: list[dict[str, Any]] = [
            {
                "name": spec["name"],
                "type": spec["type"],
                "default": "" if spec.get("default") is None else _text(spec["default"]),
                "required": bool(spec.get("required")),
                "description": spec.get("description") or "",
                "options": list(spec.get("options") or []),
                # A stored empty default ("") sets the variable to ""; no default leaves it unset
                # (`set -u` fails on it): an empty Default box keeps whichever the row had.
                "empty_default": spec.get("default") == "",
            }
            for spec in schema
        ]
        # Each row's inputs by key ("name", "type", "default", ...), for errors under them.
        self.inputs: list[dict[str, Any]] = []
        self.container = ui.column().classes("w-full gap-2").props('data-testid="parameter-rows"')
        ui.button("Add parameter", icon="add", on_click=self.add).props('flat data-testid="add-parameter"')
        self.render()

    def add(self) -> None:
        """Add an empty parameter row and redraw."""
        self.edited = True
        self.rows.append(_blank_row())
        self.render()

    def _rows_for_draft(self, stored: dict[str, Any]) -> None:
        """Add or drop rows so that every parameter row of a restored draft has its fields; once
        rows were added or removed on this page, drop the draft's rows from `stored` instead (a
        row added while the draft was on its way was dropped again: the newer input wins)."""
        if self.edited:
            for key in [key for key in stored if key.startswith("param-")]:
                del stored[key]
            return
        count = len([key for key in stored if key.startswith("param-name-")])
        if count != len(self.rows):
            del self.rows[count:]
            while len(self.rows) < count:
                self.rows.append(_blank_row())
            self.render()

    def remove(self, row: dict[str, Any]) -> None:
        """Remove a parameter row and redraw."""
        self.edited = True
        self.rows.remove(row)
        self.render()

    def render(self) -> None:
        """Redraw the parameter rows from `rows`, re-registering their inputs with the draft."""
        for name in [key for key in self.draft.fields if key.startswith("param-")]:
            del self.draft.fields[name]
        self.container.clear()
        self.inputs = []
        with self.container:
            if not self.rows:
                ui.label(NO_PARAMETERS).classes("text-grey-7")
            for index, row in enumerate(self.rows):
                with (
                    ui.row()
                    .classes("w-full items-start gap-2 flex-wrap lg:flex-nowrap")
                    .props(f'data-testid="param-row-{index}"')
                ):
                    inputs: dict[str, Any] = {}
                    self.inputs.append(inputs)
                    # Built with the row's values: `bind_value` then changes nothing (see
                    # `widgets.text_input` for what a change at build time did to typing).
                    for key, element, width in (
                        ("name", ui.input("Name", value=row["name"]), "w-44"),
                        ("type", ui.select(labels.PARAM_TYPE, label="Type", value=row["type"]), "w-32"),
                        ("default", ui.input("Default", value=row["default"]), "w-40"),
                        # One chip per option: an option may hold a comma ("Paris, France").
                        ("options", TagInput("Options (Enter after each)", row["options"]), "w-48"),
                        # A text area: a pasted line break is kept, as the API keeps it (one_line).
                        ("description", ui.textarea("Description", value=row["description"]), "flex-grow"),
                    ):
                        inputs[key] = element.bind_value(row, key).classes(width)
                        if key == "description":
                            element.props("autogrow rows=1")
                        element.props(f'outlined dense data-testid="param-{key}-{index}"')
                        self.draft.field(f"param-{key}-{index}", element)
                        if key == "options":
                            element.bind_visibility_from(row, "type", value="choice")
                    required = ui.checkbox("Required", value=row["required"]).bind_value(row, "required")
                    self.draft.field(
                        f"param-required-{index}", required.props(f'data-testid="param-required-{index}"')
                    )
                    ui.button(icon="delete", on_click=lambda _, r=row: self.remove(r)).props(
                        f'flat round dense color=negative aria-label="Remove parameter {index + 1}" '
                        f'data-testid="param-remove-{index}"'
                    ).tooltip("Remove parameter")

    def show_errors(self, details: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Put each declaration error (`parameters.NAME` or `parameters[i]`, as
        `parameters.normalize` names them) under its row: under the field its message starts
        with ("default must ...": Default; Type, Description), another about options under Options,
        any other under Name. Returns the errors that name no row."""
        unplaced = []
        for detail in details:
            field, message = str(detail.get("field", "")), str(detail.get("message", ""))
            index = self._row_of(field)
            if index is None:
                unplaced.append(detail)
                continue
            key = next((k for k in ("default", "type", "description") if message.startswith(k)), "name")
            # Not a message about another field that mentions options ("... make the parameter
            # optional" is about the default).
            if key == "name" and "option" in message and self.rows[index]["type"] == ParamType.choice:
                key = "options"
            show_field_errors({field: self.inputs[index][key]}, Invalid(message, details=[detail]))
        return unplaced

    def _row_of(self, field: str) -> int | None:
        if field.startswith("parameters[") and field.endswith("]"):
            position = field.removeprefix("parameters[").removesuffix("]")
            index = ascii_int(position, 6)
            return index if index is not None and index < len(self.inputs) else None
        if field.startswith("parameters."):
            name = field.removeprefix("parameters.")
            for index, row in enumerate(self.rows):
                if row["name"].strip()[:64] == name and index < len(self.inputs):
                    return index
        return None

    def value(self) -> list[dict[str, Any]]:
        """The typed list form the service accepts; the service validates and converts."""
        specs = []
        for index, row in enumerate(self.rows):
            spec: dict[str, Any] = {
                "name": row["name"],  # the service drops blanks around it (names.trimmed)
                "type": row["type"],
                "required": row["required"],
                "description": row["description"].strip(),
            }
            if row["default"] != "" or (row["empty_default"] and row["type"] == ParamType.string):
                spec["default"] = row["default"]
            if row["type"] == ParamType.choice:
                spec["options"] = self._options(index, row)
            specs.append(spec)
        return specs

    def _options(self, index: int, row: dict[str, Any]) -> list[str]:
        """The row's option chips, with the text typed but not yet made a chip (`TagInput.tags`)."""
        inputs = self.inputs[index] if index < len(self.inputs) else {}
        box = inputs.get("options")
        return [o for o in (box.tags() if isinstance(box, TagInput) else row["options"]) if o.strip()]


def _base(script: Script) -> dict[str, Any]:
    """What an edit of `script` starts from, held in its draft (`Draft.hold_base`): the fields
    as stored (`scripts.base_of`, sent as `base`) and the version (`current_version`, sent as
    `base_version`: it guards the content)."""
    return {**scripts.base_of(script), "current_version": script.current_version}


def _blank_row() -> dict[str, Any]:
    return {
        "name": "",
        "type": "string",
        "default": "",
        "required": False,
        "description": "",
        "options": [],
        "empty_default": False,
    }


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


class ScriptForm:
    """The whole form; `script` is None when creating."""

    def __init__(self, script: Script | None, inventories: dict[int, str]) -> None:
        """`inventories`: the shared inventories to choose from, id -> name."""
        self.script = script
        self.inventories = inventories
        self._checked: tuple[str, str] | None = None
        self._dirty = False
        ui.add_head_html(UNLOAD_GUARD)
        box = ui.column().classes("w-full gap-2")
        self.draft = Draft(f"script:{script.id}" if script else "script:new", box)
        if script is not None:
            # The version and the fields this edit started from, sent with Save (a version or a
            # field saved meanwhile is a 409, not replaced without a word) and kept with the
            # draft: an edit restored after a reload (the way out of that 409) still names them,
            # and says what was saved meanwhile above the form.
            self.draft.hold_base(_base(script), script)
        with box, ui.row().classes("w-full gap-4 items-start flex-wrap lg:flex-nowrap"):
            with ui.column().classes("flex-grow gap-3 min-w-0 w-full lg:w-auto"):
                self._main_fields()
            with ui.card().classes("w-full lg:w-80 gap-2").props("flat bordered"):
                self._side_fields()
        self.saved_state = self.payload()
        for name, element in (
            ("name", self.name),
            ("script_type", self.script_type),
            ("description", self.description),
            ("content", self.editor),
            ("status", self.status),
            ("version", self.version),
            ("tags", self.tags),
            ("timeout", self.timeout),
            ("memory", self.memory),
            ("cpus", self.cpus),
            ("max_concurrent", self.max_concurrent),
            ("network", self.network),
            ("viewers_options", self.viewers_options),
            ("change_note", self.change_note),
        ):
            self.draft.field(name, element)
        one_shot(0, self.draft.restore)
        live_timer(CHECK_INTERVAL_SECONDS, self._tick)

    def _main_fields(self) -> None:
        s = self.script
        with ui.row().classes("w-full gap-3 no-wrap"):
            self.name = says_limit(
                ui.input("Name", value=s.name if s else "").props('outlined dense data-testid="script-name"'),
                scripts.MAX_NAME,
            )
            self.name.classes("flex-grow")
            self.script_type = ui.select(
                [t.value for t in ScriptType],
                label="Type",
                value=str(s.script_type) if s else "bash",
                on_change=self._type_changed,
            ).props('outlined dense data-testid="script-type"')
            self.script_type.classes("w-40")
        self.description = says_limit(
            ui.textarea("Description", value=s.description if s else "").props(
                'outlined dense autogrow data-testid="script-description"'
            ),
            longest(scripts.ScriptCreate, "description"),
        )
        self.description.classes("w-full")
        self.editor = editor(
            s.content if s else STARTER["bash"],
            LANGUAGES[self.script_type.value],
            on_refused=self._paste_refused,
        )
        self.editor.props('data-testid="script-editor"')
        self.editor.on_value_change(lambda: self._set_dirty(True))
        with ui.row().classes("w-full justify-end"):
            self.size = (
                ui.label()
                .classes("text-caption text-grey-7")
                .props('data-testid="content-size" aria-live="polite"')
            )
        self.checks = ui.column().classes("w-full gap-1").props('data-testid="checks"')
        self.test_runs = ui.column().classes("w-full gap-1").props('data-testid="test-runs"')
        ui.label("Parameters").classes("text-subtitle1 font-medium mt-2")
        self.parameters = ParameterRows(s.parameters if s else [], self.draft)

    def _side_fields(self) -> None:
        s = self.script
        self.status = (
            ui.select(
                [st.value for st in ScriptStatus], label="Status", value=str(s.status) if s else "draft"
            )
            .props('outlined dense data-testid="script-status"')
            .classes("w-full")
        )
        self.version = says_limit(
            ui.input("Version label", value=s.version if s else "1.0.0")
            .props('outlined dense data-testid="script-version"')
            .classes("w-full"),
            scripts.MAX_VERSION_LABEL,
        )
        self.tags = (
            TagInput("Tags", list(s.tags) if s else [], most=scripts.MAX_TAGS, longest=scripts.MAX_TAG)
            .props('outlined dense data-testid="script-tags"')
            .classes("w-full")
        )
        ui.label("Run settings").classes("text-subtitle2 mt-2")
        # No `min`/`precision`: NiceGUI would clamp or round what was typed when the field loses
        # focus (racing the Save click), and save a value nobody typed; the service refuses an
        # out-of-range value under its field instead (`ScriptIn`).
        self.timeout = ui.number("Timeout (seconds)", value=s.timeout_seconds if s else 3600)
        self.memory = ui.number("Memory (MiB)", value=s.memory_mb if s else 512)
        self.cpus = ui.number("CPUs", value=s.cpus if s else 0.5, step=0.1)
        self.max_concurrent = ui.number(
            "Max concurrent runs (empty: no limit)", value=s.max_concurrent if s else None
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
            self.inventory_id = ui.select(
                {0: "None: the script's own text", **self.inventories},
                label="Shared inventory",
                value=(s.inventory_id or 0) if s else 0,
            ).props('outlined dense data-testid="inventory-id"')
            self.inventory_id.classes("w-full")
            self.inventory = (
                ui.textarea(
                    "Inventory (INI or YAML; host and group variables included)",
                    value=(s.inventory or "") if s else "",
                )
                .props(f'outlined {TALL_TEXT_PROPS} input-class="font-mono" data-testid="inventory"')
                .classes("w-full")
            )
            self.inventory.bind_visibility_from(self.inventory_id, "value", value=0)
            self.ssh_user = says_limit(
                ui.input("SSH user", value=(s.ssh_user or "") if s else "").props(
                    'outlined dense data-testid="ssh-user"'
                ),
                longest(scripts.ScriptCreate, "ssh_user"),
            )
            self.ssh_key_secret = says_limit(
                ui.input(
                    "SSH key: name of an attached file secret", value=(s.ssh_key_secret or "") if s else ""
                ).props('outlined dense data-testid="ssh-key-secret"'),
                longest(scripts.ScriptCreate, "ssh_key_secret"),
            )
        ansible_hosts.bind_visibility_from(self.script_type, "value", value="ansible")
        # services/run_option_rights.py: operators and admins always choose them.
        self.viewers_options = ui.switch(
            "Viewers may choose run options (limit, tags, check...)",
            value=s.viewers_choose_run_options if s else True,
        ).props('data-testid="viewers-choose-run-options"')
        self.viewers_options.bind_visibility_from(self.script_type, "value", value="ansible")
        self.change_note = says_limit(
            ui.input("Change note (optional)").props('outlined dense data-testid="change-note"'),
            longest(scripts.ScriptCreate, "change_note"),
        )
        self.change_note.classes("w-full")
        with ui.row().classes("w-full justify-end gap-2 mt-2"):
            ui.button("Cancel", on_click=self._cancel).props('flat data-testid="cancel"')
            self._test_run_button()
            self.save_button = ui.button(
                "Save", icon="save", on_click=one_click(lambda: self.save(False))
            ).props('unelevated data-testid="save-script"')
        if self.script is None:
            # Said beside the disabled button too: its tooltip shows only on a mouse's hover (a
            # disabled button takes no keyboard focus, and a phone has no hover).
            ui.label(NEW_SCRIPT_TEST_RUN).classes("text-caption text-grey-7 self-end").props(
                'data-testid="test-run-after-save"'
            )

    def _test_run_button(self) -> None:
        """Test run: run the editor's content unsaved (services/draft_runs.py); a new script has
        nothing to attach the run to yet, so the button says to save it first."""
        button = ui.button("Test run", icon="science", on_click=one_click(self.test_run)).props(
            'outline data-testid="test-run"'
        )
        if self.script is None:
            button.disable()
            button.tooltip(NEW_SCRIPT_TEST_RUN)
        else:
            button.tooltip("Run the content in the editor without saving it")

    async def test_run(self) -> None:
        """Open the run form for the unsaved content and parameters of the editor."""
        actor = await guard(Permission.edit_scripts)
        if actor is None or self.script is None or self.script.id is None:
            return
        try:
            schema = parameters.normalize(self.parameters.value(), self.script_type.value)
        except Invalid as exc:
            if self.parameters.show_errors(exc.details):
                notify_error(exc.message)
            return
        test_run = execute_dialog.TestRun(
            ScriptType(self.script_type.value), self.editor.value, schema, self._test_run_started
        )
        await execute_dialog.open_dialog(actor, self.script.id, test_run)

    def _test_run_started(self, execution: Execution) -> None:
        """A link to the run's output, opened in a new tab so the unsaved edit stays here."""
        with self.test_runs:
            with (
                ui.row()
                .classes("items-center gap-2 no-wrap text-deep-purple-10")
                .props(f'data-testid="test-run-started-{execution.id}"')
            ):
                ui.icon("science").props('aria-hidden="true"')
                ui.label(f"Test run #{execution.id} started (nothing saved):")
                ui.link("open its output", f"/executions/{execution.id}", new_tab=True).props(
                    'data-testid="test-run-link"'
                )

    def payload(self) -> dict[str, Any]:
        """The form as the API's create/update body."""
        body: dict[str, Any] = {
            "name": self.name.value or "",  # this and the other names: the service trims them
            "description": self.description.value or "",
            "script_type": self.script_type.value,
            "content": self.editor.value,
            "parameters": self.parameters.value(),
            "version": self.version.value or "",
            "tags": self.tags.tags(),
            "status": self.status.value,
            "timeout_seconds": whole(self.timeout.value),
            "memory_mb": whole(self.memory.value),
            "cpus": self.cpus.value,
            "max_concurrent": whole(self.max_concurrent.value),
            "network_enabled": bool(self.network.value),
        }
        if self.script_type.value == "ansible":
            shared = self.inventory_id.value or None
            body["inventory_id"] = shared
            body["inventory"] = None if shared else (self.inventory.value or None)
            body["ssh_user"] = self.ssh_user.value or None
            body["ssh_key_secret"] = self.ssh_key_secret.value or None
            body["viewers_choose_run_options"] = bool(self.viewers_options.value)
        return body

    def _edited(self) -> dict[str, Any]:
        """What Save sends (`widgets.changed`): the status, the tags or the description changed in
        another tab move no version, so `base_version` alone would not keep them."""
        return changed(self.payload(), None if self.script is None else self.saved_state)

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
        self._show_size(current[1])
        actor = await guard(Permission.edit_scripts)
        if actor is None:
            return
        try:
            checks = await scripts.check(actor, ScriptType(current[0]), current[1])
        except ServiceError as exc:
            self._show_refusal(exc.message)
            return
        self._show_checks(checks.problems, checks.findings, checks.lint.findings, checks.notices)

    def _show_size(self, content: str) -> None:
        """`12.3 KiB of 256 KiB`: grey, orange near the limit, red over it."""
        limit = scripts.content_limit()
        size = len(content.encode())
        self.size.text = f"{size / 1024:,.1f} KiB of {limit // 1024:,} KiB"
        color = (
            "text-negative"
            if size > limit
            else "text-deep-orange-10"
            if size > SIZE_WARNING_SHARE * limit
            else ""
        )
        self.size.classes(replace=f"text-caption {color or 'text-grey-7'}")

    def _paste_refused(self, units: int) -> None:
        """The editor refused a paste or drop too long for the page's connection (`editor`)."""
        self._show_refusal(
            f"not pasted: {units / 1_000_000:.1f} MB is more than one edit can carry to the server "
            f"(about {MAX_EDIT_UNITS / 1_000_000:.1f} MB); a script may be at most "
            f"{scripts.content_limit() // 1024:,} KiB"
        )

    def _show_refusal(self, message: str) -> None:
        """A refusal without lines (e.g. the size): stays under the editor until the content changes."""
        mark_lines(self.editor, [], [])
        self.checks.clear()
        with self.checks:
            with (
                ui.row()
                .classes("items-center gap-2 no-wrap text-negative")
                .props('data-testid="content-refused"')
            ):
                ui.icon("error").props('aria-hidden="true"')
                ui.label(sentence(message))

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

    async def _cancel(self) -> None:
        await self.draft.clear()
        ui.navigate.to(f"/scripts/{self.script.id}" if self.script else "/scripts")

    async def save(self, acknowledge: bool) -> None:
        """Create or update the script from the form (re-checking edit_scripts); refusals are shown under
        their fields, a 409 says to reload and keeps what was typed.

        `acknowledge`: the user accepted the dangerous-pattern findings. On success the draft is cleared and
        the form then edits the saved version.
        """
        actor = await guard(Permission.edit_scripts)
        if actor is None:
            return
        body = {
            **self._edited(),
            "acknowledge_risks": acknowledge,
            "change_note": self.change_note.value or "",
        }
        self.save_button.props("loading")
        try:
            if self.script is None:
                saved = await call(scripts.create, actor, body)
            else:
                # As the draft holds them (a restored edit's: the service judges what the tab
                # kept); without a version held, the one the page shows.
                body["base"] = self.draft.held_base()
                body["base_version"] = body["base"].pop("current_version", self.script.current_version)
                saved = await call(scripts.update, actor, self.script.id, body)
        except Invalid as exc:
            self._show_invalid(exc)
            return
        except ServiceError as exc:
            # A 409 (`base_version`, or a field another tab saved meanwhile: `base`) says to
            # reload; the form keeps what was typed, its draft survives the reload.
            notify_error(exc.message)
            show_field_errors(self._fields(), exc)
            return
        finally:
            self.save_button.props(remove="loading")
        # From here the form edits the saved script: should the page stay (the navigation below
        # did not happen: a dropped socket, a slow browser), the next Save is an update of this
        # script at its new version, never a second create refused as a duplicate name.
        self.script = saved.script
        self.saved_state = self.payload()
        self._set_dirty(False)
        await self.draft.restart(f"script:{saved.script.id}", _base(saved.script), saved.script)
        keep_notices(f"Saved {saved.script.name} (version {saved.script.current_version})", saved.notices)
        ui.navigate.history.replace(f"/scripts/{saved.script.id}/edit")
        ui.navigate.to(f"/scripts/{saved.script.id}")

    def _show_invalid(self, exc: Invalid) -> None:
        """Every problem of a refused save at once: syntax errors on their lines, a content refusal
        under the editor, field errors under their fields (a parameter's under its row), the rest
        in a toast."""
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
        content = [d for d in exc.details if d.get("field") == "content"]
        if problems:
            self._show_checks(problems, [])
            self._checked = None  # the next tick shows the lint findings next to these errors
        elif content:
            alone = len(content) == len(exc.details)  # e.g. the size: the message says the limit
            self._show_refusal(exc.message if alone else "; ".join(str(d["message"]) for d in content))
        others = self.parameters.show_errors([d for d in exc.details if d.get("field") != "content"])
        fields = self._fields()
        unplaced = [d for d in others if not show_field_errors(fields, Invalid(exc.message, details=[d]))]
        if unplaced:
            notify_error("; ".join(f"{d.get('field', 'input')}: {d.get('message', '')}" for d in unplaced))
        elif not exc.details:
            notify_error(exc.message)

    def _fields(self) -> dict[str, Any]:
        """The form's inputs by the service's field names (`show_field_errors`)."""
        return {
            "name": self.name,
            "script_type": self.script_type,
            "status": self.status,
            "version": self.version,
            "tags": self.tags,
            "change_note": self.change_note,
            "description": self.description,
            "timeout_seconds": self.timeout,
            "memory_mb": self.memory,
            "cpus": self.cpus,
            "max_concurrent": self.max_concurrent,
            "inventory": self.inventory,
            "inventory_id": self.inventory_id,
            "ssh_user": self.ssh_user,
            "ssh_key_secret": self.ssh_key_secret,
            "viewers_choose_run_options": self.viewers_options,
        }


@protected_page("/scripts/new", Permission.edit_scripts, title="New script")
async def new_script_page(actor: Actor) -> None:
    """Page /scripts/new (needs edit_scripts): the script form, empty."""
    choices = await _inventory_choices(actor)
    with frame(actor, "New script"):
        ScriptForm(None, choices)


@protected_page("/scripts/{script_id}/edit", Permission.edit_scripts, title="Edit script")
async def edit_script_page(actor: Actor, script_id: int) -> None:
    """Page /scripts/{id}/edit (needs edit_scripts): the script form with the script's current version; an
    unknown script shows a not-found page.
    """
    try:
        script = await call(scripts.get, actor, script_id)
    except ServiceError as exc:
        with frame(actor, "Edit script"):
            missing(exc.message, "Back to the scripts", "/scripts", exc.status_code)
        return
    choices = await _inventory_choices(actor)
    with frame(actor, f"Edit {script.name}"):
        ScriptForm(script, choices)


async def _inventory_choices(actor: Actor) -> dict[int, str]:
    """The shared inventories a script may use, id -> name."""
    return {i.id: i.name for i in await call_all(shared_inventories.list_all, actor) if i.id is not None}
