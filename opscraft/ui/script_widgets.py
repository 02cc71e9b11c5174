"""Pieces shared by the script pages: badges, editor languages, service calls, lint display."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from nicegui import app, ui

from opscraft.services.errors import Invalid
from opscraft.services.line_endings import Notice
from opscraft.services.linters import LintFinding
from opscraft.services.script_checks import Finding, SyntaxProblem
from opscraft.ui.code_editor import CodeEditor
from opscraft.ui.layout import editor_theme, notify_ok, sentence
from opscraft.ui.widgets import close_then, dialog_title, one_click

T = TypeVar("T")

# CodeMirror has no HCL mode: TOML highlights its comments, strings, numbers and booleans.
# Plain string keys: the colour maps are also embedded in table slots as JavaScript objects.
LANGUAGES: dict[str, str] = {"bash": "Shell", "python": "Python", "ansible": "YAML", "terraform": "TOML"}
TYPE_COLORS: dict[str, str] = {
    "bash": "green-9",
    "python": "blue-8",
    "ansible": "red-8",
    "terraform": "deep-purple-6",
}
STATUS_COLORS: dict[str, str] = {"draft": "grey-7", "active": "positive", "deprecated": "deep-orange-10"}
# A marked line gets a bar at its left edge, not a background: token colours are chosen for the
# editor's own background, and on a tinted line they fell under WCAG's 4.5:1 (keywords 4.2:1 in
# the light theme, 4.4:1 in the dark one: axe-core's `color-contrast`).
EDITOR_CSS = """
.oc-lint-line { box-shadow: inset 4px 0 #e65100; }
.oc-error-line { box-shadow: inset 4px 0 #c62828; }
.oc-linter-line { box-shadow: inset 4px 0 #ffa000; }
.nicegui-codemirror { border: 1px solid rgba(127, 127, 127, 0.35); border-radius: 4px; }
"""


#: The longest text one paste or drop puts into an editor, in UTF-16 units once JSON-encoded
#: (what the browser sends): NiceGUI's editor sends each change to the server in one message,
#: and NiceGUI's browser side drops a message over 1 MB. A dropped change left the server's copy
#: behind what the editor showed, and the next changes were applied to that copy: Save stored
#: neither (a 1.2 MB paste, then `echo hi` typed above it, saved as `echo hi` + the old content).
MAX_EDIT_UNITS = 900_000
# Refuses such a paste or drop before the editor takes it, and says so to the page (`editor`'s
# `on_refused`); the editor is left as it was, and so is the server's copy.
EDIT_GUARD_JS = """<script>
if (!window.ocEditGuard) {
  window.ocEditGuard = (event, text) => {
    if (!event.target.closest || !event.target.closest(".cm-editor")) return;
    const units = JSON.stringify(text || "").length;
    if (units <= MAX_EDIT_UNITS) return;
    event.preventDefault();
    event.stopImmediatePropagation();
    emitEvent("oc-edit-refused", {units});
  };
  document.addEventListener("paste", (e) => ocEditGuard(e, e.clipboardData?.getData("text/plain")), true);
  document.addEventListener("drop", (e) => ocEditGuard(e, e.dataTransfer?.getData("text/plain")), true);
}
</script>""".replace("MAX_EDIT_UNITS", str(MAX_EDIT_UNITS))

# CodeMirror's own way out of an editor whose Tab key indents (its "tab focus mode").
KEYBOARD_HINT = "Tab indents. To leave the editor with the keyboard: Esc, then Tab (or Shift+Tab)."


def type_badge(script_type: str) -> None:
    """A badge naming the script type, coloured by type."""
    ui.badge(script_type, color=TYPE_COLORS.get(script_type, "grey")).props('data-testid="type-badge"')


def status_badge(status: str) -> None:
    """A badge naming the script status, coloured by status."""
    ui.badge(status, color=STATUS_COLORS.get(status, "grey")).props('data-testid="status-badge"')


def editor(
    content: str,
    language: str,
    *,
    read_only: bool = False,
    label: str = "Script content",
    on_refused: Callable[[int], None] | None = None,
) -> ui.codemirror:
    """A CodeMirror editor in `language` (a CodeMirror language name, see LANGUAGES); `label` is
    its accessible name. An editable one is followed by `KEYBOARD_HINT`, which is also its
    accessible description (Tab indents in it: without the hint a keyboard user was caught).

    An editable one refuses a paste or drop longer than `MAX_EDIT_UNITS` (`EDIT_GUARD_JS`) and
    calls `on_refused(units)` with its length in UTF-16 units, to say so on the page."""
    ui.add_css(EDITOR_CSS)
    element = CodeEditor(content, language=language, theme=editor_theme())
    element.classes("w-full").style("height: 28rem").props(f'data-a11y-label="{label}"')
    if read_only:
        element.disable()
        return element
    ui.add_head_html(EDIT_GUARD_JS)
    if on_refused is not None:
        ui.on("oc-edit-refused", lambda event: on_refused(int(event.args["units"])))
    hint = ui.label(KEYBOARD_HINT).classes("text-caption text-grey-7").props('data-testid="editor-keys"')
    element.props(f'data-a11y-hint="{hint.html_id}"')
    return element


def mark_lines(
    element: ui.codemirror,
    problems: list[SyntaxProblem],
    findings: list[Finding],
    lint: list[LintFinding] | None = None,
) -> None:
    """Highlight the lines with syntax errors (red), dangerous patterns (orange) and linter
    findings (amber), with tooltips: a line with several gets the colour of the gravest (the
    marks are one CSS rule each, so the one written last, the linters' amber, showed a syntax
    error's line as a warning), and its tooltip every message, gravest first."""
    lines = element.value.count("\n") + 1
    tips: dict[int, list[str]] = {}
    classes: dict[int, str] = {}
    for line, text, css in (
        [(p.line, p.message, "oc-error-line") for p in problems]
        + [(f.line, f"{f.rule}: {f.message}", "oc-lint-line") for f in findings]
        + [(f.line, f"{f.rule}: {f.message}", "oc-linter-line") for f in lint or []]
    ):
        line = min(max(line, 1), lines)
        tips.setdefault(line, []).append(text)
        classes.setdefault(line, css)
    decorations = [{"kind": "line", "line": line, "class": css} for line, css in classes.items()]
    tooltips = {line: "\n".join(texts) for line, texts in tips.items()}
    # Set only when they changed: each update of the editor sends its whole text to the browser.
    if element.decorations != decorations:
        element.decorations = decorations
    if element.line_tooltips != tooltips:
        element.line_tooltips = tooltips


def findings_list(
    problems: list[SyntaxProblem],
    findings: list[Finding],
    lint: list[LintFinding] | None = None,
    notices: list[Notice] | None = None,
) -> None:
    """The editor's problem list: what saving will normalise, syntax errors, dangerous patterns,
    then the linters' findings (warnings), each with its line (and column)."""
    for notice in notices or []:
        row = ui.row().classes("items-center gap-2 no-wrap text-info")
        with row.props(f'data-testid="notice-{notice.code}"'):
            ui.icon("info")
            ui.label(f"On save: {notice.message}")
    if not problems and not findings:
        with ui.row().classes("items-center gap-2 text-positive").props('data-testid="checks-ok"'):
            ui.icon("check_circle")
            ui.label("No syntax errors, no dangerous patterns.")
    else:
        _refusals(problems, findings)
    # Warnings last: listed first, up to 200 of them buried the syntax error that refuses the save.
    for item in lint or []:
        row = ui.row().classes("items-center gap-2 no-wrap text-warning")
        with row.props(f'data-testid="lint-{item.rule}"'):
            ui.icon("rule")
            where = f"Line {item.line}" + (f":{item.column}" if item.column else "")
            ui.label(f"{where} · {item.tool} {item.rule} ({item.severity}): {item.message}")


def _refusals(problems: list[SyntaxProblem], findings: list[Finding]) -> None:
    """The syntax errors, then the dangerous patterns, of `findings_list`."""
    with ui.column().classes("w-full gap-1").props('data-testid="checks-list"'):
        for problem in problems:
            with (
                ui.row()
                .classes("items-center gap-2 no-wrap text-negative")
                .props('data-testid="syntax-error"')
            ):
                ui.icon("error")
                ui.label(f"Line {problem.line}: {problem.message}")
        for finding in findings:
            with (
                ui.row()
                .classes("items-center gap-2 no-wrap text-deep-orange-10")
                .props(f'data-testid="finding-{finding.rule}"')
            ):
                ui.icon("warning")
                ui.label(f"Line {finding.line} · {finding.rule}: {finding.message}").classes("font-medium")
                ui.label(finding.excerpt).classes("font-mono text-caption text-grey-8 ellipsis")


def findings_of(exc: Invalid) -> list[Finding]:
    """The lint findings a save was refused for (empty when it failed for another reason)."""
    return [Finding(d["rule"], d["line"], d["excerpt"], d["message"]) for d in exc.details if "rule" in d]


def risk_dialog(
    findings: list[Finding], on_confirm: Callable[[], Awaitable[Any]], *, action: str = "save"
) -> None:
    """Ask to acknowledge dangerous patterns; `on_confirm` saves (or, `action="run"`, test-runs)
    again with acknowledge_risks.

    `on_confirm` runs in the caller's slot, not the dialog's: the dialog is deleted once the
    browser reports it hidden, which on a busy server comes before a slow save returns, and
    the save's notifications and navigation would then fail ("parent element ... deleted").
    """
    with (
        ui.dialog() as dialog,
        ui.card().classes("w-[40rem] max-w-full gap-3").props('data-testid="risk-dialog"'),
    ):
        with ui.row().classes("items-center gap-2"):
            ui.icon("warning", color="deep-orange-10").classes("text-3xl")
            dialog_title("This script matches dangerous patterns")
        findings_list([], findings)
        ui.label(
            "The lint is a safety net, not a guarantee: the container is the security boundary. "
            f"{'Saving' if action == 'save' else 'Running'} anyway is recorded in the audit log."
        ).classes("text-grey-8")

        async def confirm() -> bool:
            await close_then(dialog, on_confirm)
            return True  # the dialog is closed: a second click must not save or run again

        with ui.row().classes("w-full justify-end gap-2"):
            ui.button("Go back", on_click=dialog.close).props('flat data-testid="risk-cancel"')
            ui.button(f"{action.capitalize()} anyway", icon="warning", on_click=one_click(confirm)).props(
                'unelevated color=deep-orange-10 data-testid="risk-confirm"'
            )
    dialog.on("hide", dialog.delete)
    dialog.open()


# The app.storage.user key of what the last save said it did, and its notices, shown by the page the
# save goes to.
_KEPT = "script-save-kept"
# How long what `keep_notices` kept waits for the page it was kept for (seconds): that page opens
# at once; one that did not (the connection dropped) must not greet a later visit with it.
KEPT_SECONDS = 60.0


def keep_notices(done: str, notices: list[Notice]) -> None:
    """Keep what a save (or rollback) did (`done`: "Saved deploy (version 3)") and its notices for
    the page shown next: a notification made before `ui.navigate.to` vanished with the page it was
    made on (a rollback's or a save's confirmation was never seen). `done` is also shown on the
    current page, which stays if the navigation does not happen; then the kept copy lapses after
    `KEPT_SECONDS`."""
    notify_ok(done)
    app.storage.user[_KEPT] = {"done": done, "notices": [n.message for n in notices], "at": time.time()}


def show_kept_notices() -> None:
    """Show, once, what `keep_notices` kept within the last `KEPT_SECONDS`: what was done (green,
    fading), then the notices (blue, each until dismissed: a stored-parameters notice asks the
    reader to fix a schedule, webhook or link)."""
    kept = app.storage.user.pop(_KEPT, None)
    if not isinstance(kept, dict) or not 0 <= time.time() - float(kept.get("at", 0)) <= KEPT_SECONDS:
        return
    if kept.get("done"):
        notify_ok(str(kept["done"]))
    for message in kept.get("notices", []):
        ui.notify(
            sentence(str(message)), type="info", position="top", multi_line=True, timeout=0, close_button="OK"
        )
