"""What a script save or rollback did is kept for the page it goes to, once, and only briefly:
a navigation that never happened (a dropped connection) must not greet a later visit with it.

The per-user storage and the notifications are stand-ins (a dict, recorders): NiceGUI gives
`app.storage.user` only inside a page's request; the browser side is
`tests/test_ui_editor_browser.py::test_the_script_page_a_save_goes_to_says_it_was_saved`."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from opscraft.services.line_endings import Notice
from opscraft.ui import script_widgets


@pytest.fixture
def shown(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    said: list[tuple[str, str]] = []
    monkeypatch.setattr(script_widgets, "app", SimpleNamespace(storage=SimpleNamespace(user={})))
    monkeypatch.setattr(script_widgets, "notify_ok", lambda text: said.append(("ok", text)))
    monkeypatch.setattr(script_widgets.ui, "notify", lambda text, **_: said.append(("info", text)))
    return said


def _clock(monkeypatch: pytest.MonkeyPatch, at: float) -> None:
    monkeypatch.setattr(script_widgets.time, "time", lambda: at)


def test_what_a_save_did_is_shown_on_the_page_it_goes_to_once(
    shown: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    _clock(monkeypatch, 1000.0)
    script_widgets.keep_notices("Saved deploy (version 3)", [Notice("line endings", "CRLF made LF")])
    assert shown == [("ok", "Saved deploy (version 3)")], "also on the page the save was made on"
    _clock(monkeypatch, 1000.0 + script_widgets.KEPT_SECONDS)
    script_widgets.show_kept_notices()
    script_widgets.show_kept_notices()
    assert shown[1:] == [("ok", "Saved deploy (version 3)"), ("info", "CRLF made LF")]


@pytest.mark.parametrize("later", [script_widgets.KEPT_SECONDS + 0.1, 3600.0, -5.0])
def test_what_was_kept_lapses_when_the_page_it_was_kept_for_did_not_open(
    shown: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch, later: float
) -> None:
    """Past `KEPT_SECONDS` (or from a clock set back) nothing is shown, and nothing stays kept."""
    _clock(monkeypatch, 1000.0)
    script_widgets.keep_notices("Rolled back to version 1: now version 4", [])
    _clock(monkeypatch, 1000.0 + later)
    script_widgets.show_kept_notices()
    assert shown == [("ok", "Rolled back to version 1: now version 4")]
    user: dict[str, Any] = script_widgets.app.storage.user
    assert user == {}
