"""`PagedTable.refresh` reads one page at a time: overlapping reads (the reload after a save and
a search typed meanwhile) ended in any order, and the older one, ending last, put its rows back
over those of the search."""

from __future__ import annotations

import asyncio
from typing import Any

from nicegui import Client
from nicegui.page import page

from opscraft.ui.paged import Listed, PagedTable

ROWS = {
    "": [{"id": 1, "name": "API_TOKEN"}, {"id": 2, "name": "QUICK_FIND"}],
    "QUICK": [{"id": 2, "name": "QUICK_FIND"}],
}


class Slow(PagedTable):
    """A table whose reads answer when the test says so (`answer[search]`), as a busy database."""

    def __init__(self) -> None:
        super().__init__(20)
        self.search = ""
        self.answer = {search: asyncio.Event() for search in ROWS}
        self.started: list[str] = []
        self.make_table([{"name": "name", "label": "Name", "field": "name"}], "slow-table", "Slow")
        self.make_footer("slow-summary")

    async def show_page(self, ticking: bool = False) -> None:
        search = self.search

        async def fetch() -> Listed:
            self.started.append(search)
            await self.answer[search].wait()
            return ROWS[search], len(ROWS[search])

        result = await self.load(fetch, ticking)
        if result is not None:
            self.show_rows(result[0])
            self.show_total(result[1], "secret", self.matching())


async def _until(condition: Any) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never happened")


async def test_the_search_typed_during_a_read_is_what_the_table_shows_at_the_end() -> None:
    with Client(page("/paged-table")):
        table = Slow()
    after_save = asyncio.create_task(table.refresh())  # the reload after a save: every secret
    await _until(lambda: table.started == [""])
    table.search = "QUICK"  # typed meanwhile (`search_box`)
    searched = asyncio.create_task(table.reload())
    table.answer["QUICK"].set()  # the search's read is quick...
    await asyncio.sleep(0.05)  # ...its time to end first: which shows last is what is tested
    table.answer[""].set()  # ...the save's ends last
    await asyncio.gather(after_save, searched)
    assert table.started == ["", "QUICK"]
    assert table.table.rows == ROWS["QUICK"]
    assert table.summary.text == "1 secret matching “QUICK”"


async def test_a_live_reread_due_during_a_read_is_skipped() -> None:
    with Client(page("/paged-table")):
        table = Slow()
    first = asyncio.create_task(table.refresh())
    await _until(lambda: table.started == [""])
    await asyncio.wait_for(table.refresh(ticking=True), 5)  # at once: the read under way shows the page
    table.answer[""].set()
    await first
    assert table.started == [""]
    assert table.table.rows == ROWS[""]
