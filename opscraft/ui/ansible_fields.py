"""The Ansible run option fields (limit, tags, skip tags, check, diff) of the run dialog and of
the schedule, webhook and "then run" link forms: what `run_options` they hold, and which input a
refusal naming `run_options.<key>` goes under (the services judge them:
services/executions.py `_run_options`, `automation_run_options`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nicegui import ui

from opscraft.db.models.scripts import ScriptType
from opscraft.execution import ansible_options
from opscraft.ui.widgets import carried

TEXTS = ("limit", "tags", "skip_tags")
LISTS = ("tags", "skip_tags")


@dataclass(frozen=True)
class AnsibleFields:
    """The five inputs of a form, by option name."""

    limit: ui.input
    tags: ui.input
    skip_tags: ui.input
    check: ui.checkbox
    diff: ui.checkbox

    def values(self) -> dict[str, Any] | None:
        """What the fields hold, as `run_options`: the limit trimmed, each tag list split at ','
        (`["deploy", "db"]`), unset options left out; None when none is set."""
        values: dict[str, Any] = {}
        limit = str(self.limit.value or "").strip()
        if limit:
            values["limit"] = limit
        for key in LISTS:
            names = [name.strip() for name in str(getattr(self, key).value or "").split(",")]
            if any(names):
                values[key] = [name for name in names if name]
        values |= {key: True for key in ansible_options.FLAGS if getattr(self, key).value}
        return values or None

    def inputs(self) -> dict[str, ui.element]:
        """Field name a refusal names (`run_options.limit`) -> its text input."""
        return {f"run_options.{key}": getattr(self, key) for key in TEXTS}


def shown_for(script_type: str, stored: dict[str, Any] | None) -> bool:
    """Whether a form of a `script_type` script's schedule or webhook has the fields: for an
    Ansible script, and for a row that still holds options (its script was one when it was
    saved), so that they can be seen and cleared."""
    return script_type == ScriptType.ansible or bool(stored)


def ansible_fields(
    testid: str, stored: dict[str, Any] | None = None, note: str = "", diff_refused: str | None = None
) -> AnsibleFields:
    """The fields under an "Ansible options" title (`note` says when they apply), showing the
    normalized `stored` options; `data-testid`s `<testid>-limit`, `-tags`, `-skip-tags`,
    `-check`, `-diff`. With `diff_refused` (why this person may not choose diff:
    services/run_option_rights.py) Diff is disabled, the reason under it (`<testid>-diff-refused`)."""
    start = stored or {}
    ui.label("Ansible options" + (f" ({note})" if note else "")).classes("text-subtitle2 text-grey-8 mt-2")
    with ui.row().classes("w-full gap-2"):
        limit = ui.input("Limit (host pattern)", value=start.get("limit") or "").props(
            f'outlined dense data-testid="{testid}-limit"'
        )
        limit.props(carried(ansible_options.MAX_LIMIT))
        lists = []
        for key, label in (("tags", "Tags"), ("skip_tags", "Skip tags")):
            names = ui.input(f"{label} (comma-separated)", value=", ".join(start.get(key) or [])).props(
                f'outlined dense data-testid="{testid}-{key.replace("_", "-")}"'
            )
            names.props(carried(ansible_options.MAX_TAGS * (ansible_options.MAX_TAG + 2)))
            lists.append(names)
    with ui.row().classes("gap-4"):
        check = ui.checkbox("Check (dry run)", value=bool(start.get("check"))).props(
            f'data-testid="{testid}-check"'
        )
        diff = ui.checkbox("Diff", value=bool(start.get("diff"))).props(f'data-testid="{testid}-diff"')
    if diff_refused:
        diff.disable()
        diff.value = False
        ui.label(f"Diff is not offered: {diff_refused}.").classes("text-caption text-grey-7").props(
            f'data-testid="{testid}-diff-refused"'
        )
    return AnsibleFields(limit, lists[0], lists[1], check, diff)


def caption(options: dict[str, Any] | None, testid: str) -> None:
    """`Ansible: --limit=web1 --check` on a row that holds options (nothing otherwise)."""
    if options:
        text = "Ansible: " + " ".join(ansible_options.argv(options))
        ui.label(text).classes("text-caption font-mono oc-wrap").props(f'data-testid="{testid}"')
