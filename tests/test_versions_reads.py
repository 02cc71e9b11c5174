"""The script page's Versions tab reads a page of versions per turn of its pager (and after a
rollback): the reads ran as tasks of their own and ended in any order, and an older one ending
last (page 2 of two quick turns, on a busy database) put its rows under the pager's page 3, for
good (the tab is not re-read on a timer)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from nicegui import Client
from nicegui.page import page

from opscraft.services import scripts
from opscraft.ui import script_page, script_widgets
from opscraft.ui.script_page import VERSIONS_PAGE, VersionsView
from tests.waiting import until

TOTAL = 60  # versions: three pages


def _rows(skip: int) -> list[Any]:
    """The versions of the page starting after `skip` (newest first)."""
    numbers = range(TOTAL - skip, TOTAL - skip - VERSIONS_PAGE, -1)
    at = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        SimpleNamespace(
            version=SimpleNamespace(number=n, version_label=None, change_note=None, created_at=at),
            author_name=None,
        )
        for n in numbers
    ]


async def test_the_versions_shown_are_those_of_the_page_turned_to_last(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    script = SimpleNamespace(id=7, current_version=TOTAL)
    actor = SimpleNamespace(user=SimpleNamespace(is_active=True, role="viewer"))
    answer = {skip: asyncio.Event() for skip in (VERSIONS_PAGE, 2 * VERSIONS_PAGE)}
    started: list[int] = []

    async def slow_call(function: Any, _actor: Any, *args: Any, skip: int = 0, **_: Any) -> Any:
        """The service as a busy database: a page of versions when the test says so."""
        if function is scripts.get:
            return script
        assert function is scripts.list_versions
        started.append(skip)
        await answer[skip].wait()
        return _rows(skip), TOTAL

    async def signed_in(*_: Any) -> Any:
        return actor

    monkeypatch.setattr(script_page, "call", slow_call)
    monkeypatch.setattr(script_page, "guard", signed_in)
    monkeypatch.setattr(script_widgets, "editor_theme", lambda: "vscodeLight")  # no signed-in user's choice
    with Client(page("/versions")):
        view = VersionsView(actor, script)  # type: ignore[arg-type]
    second = asyncio.create_task(view._on_page(SimpleNamespace(value=2)))
    await until(lambda: started == [VERSIONS_PAGE], "page 2's read", timeout=5)
    third = asyncio.create_task(view._on_page(SimpleNamespace(value=3)))  # turned on meanwhile
    await asyncio.sleep(0.05)
    answer[2 * VERSIONS_PAGE].set()  # page 3's read is quick...
    await asyncio.sleep(0.05)
    answer[VERSIONS_PAGE].set()  # ...page 2's ends last
    await asyncio.gather(second, third)
    assert [row["number"] for row in view.table.rows] == [
        row.version.number for row in _rows(2 * VERSIONS_PAGE)
    ]
