"""`widgets.options_read_on_open` reads a select's options again each time its menu opens: a menu
opened twice quickly ran two reads as tasks of their own, which ended in any order, and the older
one ending last (a busy database) showed the options without the one added between them."""

from __future__ import annotations

import asyncio
from typing import Any

from nicegui import Client, events, ui
from nicegui.page import page

from opscraft.ui.widgets import options_read_on_open
from tests.waiting import until


class SlowFirstRead:
    """The options as they are now: the first read answers when the test says so (`answer`), as
    a busy database; a later one at once, with a choice added since the first."""

    def __init__(self) -> None:
        self.answer = asyncio.Event()
        self.started = 0

    async def __call__(self) -> list[str]:
        self.started += 1
        if self.started == 1:
            await self.answer.wait()
            return ["ops"]
        return ["ops", "web"]


def _opened(select: ui.select) -> asyncio.Task[Any]:
    """What the browser's `popup-show` event (the menu opened) starts on the server (the select's
    own listeners of it come first)."""
    listener = [one for one in select._event_listeners.values() if one.type == "popupShow"][-1]
    arguments = events.GenericEventArguments(sender=select, client=select.client, args=None)
    return asyncio.create_task(listener.handler(arguments))


async def test_the_menu_opened_last_shows_the_options_read_last() -> None:
    read = SlowFirstRead()
    with Client(page("/options-read-on-open")):
        select = options_read_on_open(ui.select(["ops"], label="Tag"), read)
    older = _opened(select)
    await until(lambda: read.started == 1, "the first read")
    newer = _opened(select)  # opened again (closed, reopened) while the first read was under way
    await asyncio.sleep(0.05)  # the quick second read's time to end first: which shows last is tested
    read.answer.set()  # the first, slow read ends last
    await asyncio.gather(older, newer)
    assert read.started == 2
    assert select.options == ["ops", "web"]
