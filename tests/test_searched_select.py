"""`choices.searched_select` searches on the server as the user types: each typed text's search
ran as its own task, and they ended in any order. An older one ending last (more rows to read on
a busy database) put its options over those of the text now in the field."""

from __future__ import annotations

import asyncio
from typing import Any

from nicegui import Client, events, ui
from nicegui.page import page

from opscraft.ui.choices import FirstChoices, searched_select
from tests.waiting import until

FOUND = {"pro": {1: "prod-db", 2: "prod-web", 3: "profile-key"}, "prod-w": {2: "prod-web"}}


class SlowSearch:
    """A search that answers each text when the test says so (`answer[text]`), as a busy database."""

    def __init__(self) -> None:
        self.answer = {text: asyncio.Event() for text in FOUND}
        self.started: list[str | None] = []

    async def __call__(self, text: str | None, limit: int) -> tuple[dict[Any, str], bool]:
        self.started.append(text)
        await self.answer[str(text)].wait()
        return FOUND[str(text)], False


def _typed(select: ui.select, text: str) -> asyncio.Task[Any]:
    """What the browser's `input-value` event (the field's text, debounced) starts on the server."""
    listener = next(one for one in select._event_listeners.values() if one.type == "inputValue")
    arguments = events.GenericEventArguments(sender=select, client=select.client, args=text)
    return asyncio.create_task(listener.handler(arguments))


async def test_the_options_are_those_of_the_text_typed_last_when_an_older_search_ends_last() -> None:
    search = SlowSearch()
    with Client(page("/searched-select")):
        select = searched_select("Secret", "secret", FirstChoices(search, {9: "api-token"}, False, 200))
    older = _typed(select, "pro")
    await until(lambda: search.started == ["pro"], "the first search")
    newer = _typed(select, "prod-w")  # typed on while the first search was read
    await until(lambda: search.started == ["pro", "prod-w"], "the second search")
    search.answer["prod-w"].set()  # the narrower search is quick...
    await newer
    search.answer["pro"].set()  # ...the older, wider one ends last
    await older
    assert select.options == FOUND["prod-w"]
