"""The script page's Versions tab reads a page of versions per turn of its pager (and after a
rollback), and a difference per Compare (or switch of its view): the reads ran as tasks of their
own and ended in any order, and an older one ending last (on a busy database) put its rows under
the pager's newer page, or its difference under the newer versions chosen, for good (the tab is
not re-read on a timer)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from nicegui import Client, core
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


class SlowService:
    """The services the tab calls, as a busy database: each read answers when the test says so
    (`answer[key]`: a page's `skip`, a difference's pair of versions)."""

    def __init__(self) -> None:
        self.script = SimpleNamespace(id=7, current_version=TOTAL)
        self.actor = SimpleNamespace(user=SimpleNamespace(is_active=True, role="viewer"))
        self.answer: dict[Any, asyncio.Event] = {}
        self.started: list[Any] = []

    async def call(self, function: Any, _actor: Any, *args: Any, skip: int = 0, **_: Any) -> Any:
        if function is scripts.get:
            return self.script
        key = skip if function is scripts.list_versions else tuple(args[1:])
        self.started.append(key)
        await self.answer.setdefault(key, asyncio.Event()).wait()
        if function is scripts.list_versions:
            return _rows(skip), TOTAL
        assert function is scripts.diff
        return SimpleNamespace(diff=f"from {args[1]} to {args[2]}", changed=[])

    async def guard(self, *_: Any) -> Any:
        return self.actor

    async def in_turn(self, first: Any, second: Any, keys: tuple[Any, Any]) -> None:
        """Start `first()`, then `second()` while its read is under way; answer the second's
        read first (the quick one), the first's last."""
        older = asyncio.create_task(first())
        await until(lambda: self.started == [keys[0]], "the first read", timeout=5)
        newer = asyncio.create_task(second())
        await asyncio.sleep(0.05)  # the second's read is under way (or waits its turn: under test)
        self.answer.setdefault(keys[1], asyncio.Event()).set()
        await asyncio.sleep(0.05)  # the quick read's time to end first: which shows last is tested
        self.answer[keys[0]].set()
        await asyncio.gather(older, newer)


async def _ignored(_: Any) -> None:
    """What the rest of the page does with a re-read script: nothing here, the reads are tested."""


@pytest.fixture
def slow(monkeypatch: pytest.MonkeyPatch) -> tuple[SlowService, VersionsView]:
    service = SlowService()
    monkeypatch.setattr(script_page, "call", service.call)
    monkeypatch.setattr(script_page, "guard", service.guard)
    monkeypatch.setattr(script_widgets, "editor_theme", lambda: "vscodeLight")  # no signed-in user's choice
    with Client(page("/versions")):
        view = VersionsView(service.actor, service.script, _ignored)  # type: ignore[arg-type]
    return service, view


async def _turn(view: VersionsView, number: int) -> None:
    """A turn of the pager to page `number`, run in the pager's slot as NiceGUI runs its event
    (the turn puts the page in the address, `KeptPage.keep_page`: a message to the browser)."""
    with view.pager:
        await view._on_page(SimpleNamespace(value=number))


async def test_the_versions_shown_are_those_of_the_page_turned_to_last(
    slow: tuple[SlowService, VersionsView], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, view = slow
    monkeypatch.setattr(core, "loop", asyncio.get_running_loop())  # the messages' (as the app's)
    await service.in_turn(
        lambda: _turn(view, 2),
        lambda: _turn(view, 3),  # turned on meanwhile
        (VERSIONS_PAGE, 2 * VERSIONS_PAGE),
    )
    assert view.paged_address() == "/scripts/7?tab=versions&page=3"
    shown = [row["number"] for row in view.table.rows]
    assert shown == [row.version.number for row in _rows(2 * VERSIONS_PAGE)]


async def test_the_difference_shown_is_that_of_the_versions_chosen_last(
    slow: tuple[SlowService, VersionsView],
) -> None:
    service, view = slow
    assert (view.from_n.value, view.to_n.value) == (TOTAL - 1, TOTAL)

    async def chosen_then_compared() -> None:
        view.from_n.value = 3  # chosen while the first difference was read
        await view.compare()

    await service.in_turn(view.compare, chosen_then_compared, ((TOTAL - 1, TOTAL), (3, TOTAL)))
    assert view.diff.value == f"from 3 to {TOTAL}"
