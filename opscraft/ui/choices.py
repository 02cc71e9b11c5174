"""Pickers over lists longer than a dialog loads (scripts, vault secrets): the first
`CHOICES_LIMIT` items, a note under the field when there are more, and a search on the server as
the user types, so that any item can be found (the dialogs used to list 200 and say nothing).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from typing import Any

from nicegui import ui

from opscraft.services import scripts, secrets
from opscraft.services.actor import Actor
from opscraft.services.errors import ServiceError
from opscraft.services.scripts import ScriptQuery
from opscraft.ui.widgets import call

CHOICES_LIMIT = 200
# (typed text or None, at most how many) -> (id -> label, whether more items match than returned)
Search = Callable[[str | None, int], Awaitable[tuple[dict[Any, str], bool]]]


def more_hint(limit: int, searched: bool) -> str:
    """The note under a picker that lists only part of what matches."""
    if searched:
        return f"The first {limit} matches are listed: type more to narrow them"
    return f"The first {limit} are listed: type to search them all"


@dataclass(frozen=True)
class FirstChoices:
    """A picker's search and the first page it found (`first_choices`): `options` (id -> label),
    `more` (more items match than listed), `limit` (at most how many are listed)."""

    search: Search
    options: dict[Any, str]
    more: bool
    limit: int


async def first_choices(search: Search, limit: int = CHOICES_LIMIT) -> FirstChoices:
    """The first `limit` items of `search`, read before the dialog or form holding the picker is
    built: a read awaited in the middle of it sent the elements made so far to the browser, and
    the dialog's Enter-submits listener added after them made NiceGUI re-mount the dialog ("Event
    listeners changed after initial definition", a console warning on every channel, rule and
    webhook dialog)."""
    options, more = await search(None, limit)
    return FirstChoices(search, options, more, limit)


def searched_select(
    label: str,
    testid: str,
    first: FirstChoices,
    *,
    clearable: bool = False,
    chosen: tuple[Any, str] | None = None,
) -> ui.select:
    """A `ui.select` whose options are `first`'s at first, then those matching what the user
    types (searched on the server with `first.search`; the chosen item stays an option). A
    note under the field says when more items match than are listed; a search the service
    refuses (a control character, too long) is said under the field. `chosen` (value, label)
    is selected at first, listed even when the first `limit` leave it out."""
    search, options, more, limit = first.search, first.options, first.more, first.limit
    if chosen is not None:
        options = {chosen[0]: chosen[1], **options}
    value = chosen[0] if chosen is not None else None
    select = ui.select(options, label=label, value=value, with_input=True, clearable=clearable).props(
        f'outlined dense input-debounce=300 data-testid="{testid}"'
    )
    select.props["hint"] = more_hint(limit, False) if more else None
    searches = 0  # the searches started (`typed`): only the last one's answer is shown

    async def typed(event: Any) -> None:
        """Each text typed (debounced) starts a search as a task of its own, and they end in any
        order: an older one ending last (more rows to read) put its options over those of the
        text now in the field. An answer is shown only when no later search was started."""
        nonlocal searches
        searches += 1
        mine = searches
        text = str(event.args or "").strip() or None
        try:
            found, more = await search(text, limit)
        except ServiceError as exc:
            if mine == searches:
                select.error = exc.message
            return
        if mine != searches:
            return
        select.error = None
        chosen = select.value
        if chosen is not None and chosen not in found and chosen in select.options:
            found = {chosen: select.options[chosen], **found}
        select.set_options(found)
        select.props["hint"] = more_hint(limit, text is not None) if more else None

    select.on("input-value", typed)
    return select


def secret_search(actor: Actor, leave_out: Collection[int] = ()) -> Search:
    """Vault secrets by name (name or description holding the text), without `leave_out`."""

    async def search(text: str | None, limit: int) -> tuple[dict[Any, str], bool]:
        rows, total = await call(secrets.list_secrets, actor, search=text, limit=limit)
        found = {i.secret.id: i.secret.name for i in rows if i.secret.id not in leave_out}
        return found, total > len(rows)

    return search


def script_search(actor: Actor) -> Search:
    """Scripts by name (each typed word in the name, description or tags)."""

    async def search(text: str | None, limit: int) -> tuple[dict[Any, str], bool]:
        rows, total = await call(scripts.list_scripts, actor, ScriptQuery(search=text, limit=limit))
        return {s.id: s.name for s in rows}, total > len(rows)

    return search
