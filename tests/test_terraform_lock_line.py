"""The Terraform panel's lock line: a lock held by a run in progress says "Locked by"; one left by
a run that is over (cancelled or timed out before Terraform released it) says it blocks nothing,
where the panel used to show the finished run as the holder until the next run took it over."""

from __future__ import annotations

from nicegui import Client, ui
from nicegui.page import page

from opscraft.db.models import TerraformState
from opscraft.db.types import utcnow
from opscraft.ui.terraform_panel import lock_line


def _texts(element: ui.element) -> str:
    return " ".join(
        str(child.text) for child in element.descendants() if isinstance(child, (ui.label, ui.link))
    )


def _held(execution_id: int) -> TerraformState:
    return TerraformState(
        script_id=1, workspace="default", lock_id="abc", locked_by_execution=execution_id, locked_at=utcnow()
    )


def test_a_lock_held_by_a_run_in_progress_says_locked_by() -> None:
    with Client(page("/lock-line")), ui.column() as panel:
        lock_line(_held(7), ended=False)
    shown = _texts(panel)
    assert shown.startswith("Locked by execution #7 since"), shown
    assert [e.props.get("data-testid") for e in panel.default_slot.children] == ["state-locked"]


def test_a_lock_left_by_a_run_that_ended_says_it_blocks_nothing() -> None:
    with Client(page("/lock-line")), ui.column() as panel:
        lock_line(_held(7), ended=True)
    shown = _texts(panel)
    assert shown == "Lock left by execution #7 which ended before releasing it: the next run takes it over"
    assert [e.props.get("data-testid") for e in panel.default_slot.children] == ["state-lock-ended"]
