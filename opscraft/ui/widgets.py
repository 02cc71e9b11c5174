"""Small building blocks shared by the pages (service calls, forms, times)."""

from __future__ import annotations

import asyncio
import inspect
import json
import re
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import datetime
from typing import Any, Generic, TypeVar

from annotated_types import MaxLen
from nicegui import binding, context, events, ui
from pydantic import BaseModel

from opscraft import runtime
from opscraft.db import stored_shapes
from opscraft.services import paging
from opscraft.services.errors import Invalid
from opscraft.services.parameters import json_from_text

T = TypeVar("T")


async def call(func: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """Run one service function in a fresh database session: `await call(scripts.get, actor, id)`."""
    async with runtime.current().db.session() as session:
        return await func(session, *args, **kwargs)


async def call_all(
    func: Callable[..., Awaitable[tuple[Sequence[T], int]]], *args: Any, **kwargs: Any
) -> list[T]:
    """Every row of a paged service list (`func` answers `(rows, total)` for `skip` and `limit`),
    a page at a time (`paging.every`), each page in a fresh session: the tables showing a whole
    list (`await call_all(webhooks.list_for_script, actor, script_id)`)."""
    return await paging.every(lambda skip, limit: call(func, *args, skip=skip, limit=limit, **kwargs))


def whole(value: float | None) -> int | float | None:
    """A `ui.number`'s value for an integer field: NiceGUI hands a float (8.0 for "8"), which
    the services refuse as no whole number (`services/bodies.py`); a whole one becomes an int,
    a fraction (8.5) is passed on so the service refuses it under its field, empty stays None."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def live_timer(interval: float, callback: Callable[[], Any]) -> ui.timer:
    """`ui.timer` that skips its ticks while the browser is disconnected.

    A page whose connection dropped is kept for the reconnect window (minutes, see
    `layout.RECONNECT_SECONDS`), and so is every page the browser navigated away from: their
    refreshes would load the database for nobody. `interval` is in seconds.
    """
    client = context.client

    async def tick() -> None:
        if not client.has_socket_connection:
            return
        result = callback()
        if inspect.isawaitable(result):
            await result

    return ui.timer(interval, tick)


class _KeptTimer(ui.timer):
    """A one-shot `ui.timer` that stays in the page once run (with no callback)."""

    def _cleanup(self) -> None:
        super(ui.timer, self)._cleanup()  # the base timer's: drop the callback, not the element


def one_shot(delay: float, callback: Callable[[], Any]) -> ui.timer:
    """`ui.timer(delay, callback, once=True)` that is not removed once run. NiceGUI's removes
    itself, which updates its parent, and the browser then re-renders the parent with every
    element in it: made in a page's content (the browser's dark mode read half a second after
    load), it replaced every row of a table, each row's buttons too, and a click on a replaced
    button is lost (`Redrawn`). Kept, it sends nothing. `delay` is in seconds. Its element
    carries the prop `data-one-shot`, so that a page's live timers can be told from it."""
    return _KeptTimer(delay, callback, once=True).props("data-one-shot")


class Redrawn(Generic[T]):
    """A part of a page drawn by `draw(value)`; `show(value)` redraws it only when `key(value)`
    differs from what is on screen.

    A redraw replaces every element of the part with new ones, and NiceGUI's server silently drops
    an event (a click, typing) that a browser sent to a replaced element. A page that re-reads its
    data on a timer must therefore not redraw when nothing changed, or it takes buttons, paging and
    fields from under the person using them. `key` gives a comparable picture of what `draw` shows
    (default: the value itself).
    """

    def __init__(self, draw: Callable[[T], None], value: T, key: Callable[[T], Any] | None = None) -> None:
        self._key = key or (lambda shown: shown)
        self._draw = ui.refreshable(draw)
        self._shown = self._key(value)
        self._draw(value)

    def show(self, value: T) -> bool:
        """Redraw with `value` when it looks different; True when it did."""
        key = self._key(value)
        if key == self._shown:
            return False
        self._shown = key
        self._draw.refresh(value)
        return True


class OneRead:
    """A list's reads of what it shows, one at a time (`run`): each then reads the filters as they
    are when it starts, and the last one started shows last.

    Reads that overlapped (the reload after a save and a search typed meanwhile, or a live
    re-read and a filter changed) ended in any order: an older one ending last put its rows back
    over those of the newer filters, the search box above rows it does not select (until the
    next live re-read, or for good on a page without one)."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def run(self, read: Callable[[], Awaitable[Any]], *, ticking: bool = False) -> None:
        """Await `read()` once no other read runs. `ticking` (a live re-read): skipped while one
        runs, which shows what is there."""
        if ticking and self._lock.locked():
            return
        async with self._lock:
            await read()


def live_seconds() -> float:
    """How often a live list re-reads what it shows (`layout.follow`, `PagedTable.follow`, the
    dashboard and inventories), in seconds: `OPSCRAFT_LIVE_SECONDS` (5 by default)."""
    return runtime.current().settings.live_seconds


class Rows(Generic[T]):
    """A list of rows drawn one by one (`draw(value)`, each in a `div` of its own): `show(values)`
    draws the rows that are new, redraws those whose `picture(value)` changed, removes those gone
    and puts the rest in `values`' order, leaving every other row's elements alone. `key(value)`
    names a row (its id); a row's picture includes its `stored_shapes.note`.

    A live list redrawn whole on any change (`Redrawn`) replaced the comment being typed in one
    row, or the button being clicked, when another row changed; and a dialog opened from a row
    is built in the page (`page_dialog`), or it would go with the row. `empty` (text, test id)
    is said while there is no row."""

    def __init__(
        self,
        draw: Callable[[T], None],
        values: Sequence[T],
        key: Callable[[T], Any],
        picture: Callable[[T], Any] | None = None,
        empty: tuple[str, str] | None = None,
    ) -> None:
        self._draw = draw
        self._key = key
        self._picture = picture or (lambda value: value)
        self.empty = empty  # may be set later: a list read after the page is built says it then
        self._empty: ui.label | None = None
        self._rows: dict[Any, tuple[Any, ui.element]] = {}
        self.container = ui.column().classes("w-full gap-2")
        self.show(values)

    def show(self, values: Sequence[T]) -> bool:
        """Bring the rows to `values`; True when anything on screen changed."""
        wanted = [(self._key(value), value) for value in values]
        keys = {key for key, _ in wanted}
        changed = self._say_empty(not wanted)
        for key in [key for key in self._rows if key not in keys]:
            self._rows.pop(key)[1].delete()
            changed = True
        for index, (key, value) in enumerate(wanted):
            # with what a row read from the database holds that cannot be read (`stored_note`):
            # a fix of it may leave every value read the same (`[1]` read as `{}`, saved as `{}`)
            picture = (self._picture(value), stored_shapes.note(value))
            old = self._rows.get(key)
            if old is not None and old[0] == picture:
                holder = old[1]
            else:
                with self.container:
                    holder = ui.element("div").classes("w-full")
                    with holder:
                        self._draw(value)
                if old is not None:
                    old[1].delete()
                self._rows[key] = (picture, holder)
                changed = True
            if self.container.default_slot.children.index(holder) != index:
                holder.move(self.container, index)
                changed = True
        return changed

    def _say_empty(self, empty: bool) -> bool:
        if self.empty is None or empty == (self._empty is not None):
            return False
        if empty:
            text, testid = self.empty
            with self.container:
                self._empty = ui.label(text).props(f'data-testid="{testid}"')
        elif self._empty is not None:
            self._empty.delete()
            self._empty = None
        return True


def one_click(handler: Callable[[], Any]) -> Callable[[events.UiEventArguments], Awaitable[None]]:
    """`on_click` of a button that starts or saves something: one click does it once.

    NiceGUI runs each click's handler as its own task, so the second click of a double-click (or
    an impatient click on a slow server) used to start a second run, rerun or decision while the
    first was being handled. Here a click that arrives while the previous one is handled is
    dropped, and the button is disabled meanwhile (the browser shows it; the server ignores a
    disabled element's events). When `handler` returns True its work is done for good (the run
    started and the page is leaving): the button stays disabled, so that a click already on its
    way cannot start it again; otherwise it is enabled again (an error, a refusal: fix and retry).
    """
    busy = False

    async def on_click(event: events.UiEventArguments) -> None:
        nonlocal busy
        if busy:
            return
        busy = True
        button = event.sender if isinstance(event.sender, ui.button) else None
        if button is not None:
            button.disable()
        done = False
        try:
            result = handler()
            done = (await result if inspect.isawaitable(result) else result) is True
        finally:
            busy = done
            if not done and button is not None and not button.is_deleted:
                button.enable()

    return on_click


def once_per_double_click(button: ui.button, handler: Callable[[], Any]) -> ui.button:
    """`button` (built without `on_click`) runs `handler` for a click, once for a double-click,
    and drops clicks while one is handled (`one_click`); returns `button`.

    For a button whose row is redrawn by what it does (Pause/Resume, Enable/Disable, Test): the
    second click of a person's double-click (a few hundred ms later) reached the row's new button,
    which undid the change ("Disable" then "Enable": two state changes), or sent a second test
    message. The browser numbers a double-click's second click (`detail` 2, also on a new element
    at the same place); it is not sent. Enter and Space on the button (`detail` 0) still press it."""
    return button.on("click", one_click(handler), js_handler=FIRST_CLICK_JS)


FIRST_CLICK_JS = "(event) => { if (!(event?.detail > 1)) emit(); }"
"""A click's handler that tells the server of a click but not of a double-click's later clicks."""


def open_dialogs(client: Any) -> set[ui.dialog]:
    """The dialogs open in `client`'s page (NiceGUI builds every dialog in the page's layout)."""
    return {
        element
        for element in client.layout.default_slot.children
        if isinstance(element, ui.dialog) and element.value and not element.is_deleted
    }


# The dialogs being opened in a page (a client: weakly held), by a click or by the page itself.
_OPENING: weakref.WeakKeyDictionary[Any, Counter[bool]] = weakref.WeakKeyDictionary()


@contextmanager
def opening_dialog(client: Any, *, by_page: bool = False) -> Iterator[bool]:
    """Mark `client`'s page as opening a dialog while the block runs, and say whether it may:
    a person's click (default) not while the page itself reopens one (`by_page`: the dialog of
    a draft left by a reload, `drafts.reopen`), the page not while a dialog is open or being
    opened by either. The block opens its dialog only when given True.

    Between a check for an open dialog and its own dialog.open() each side awaits the database
    (the secrets a webhook form offers): a click and the tab's answer to the page's draft check
    arriving together on a busy server each opened a dialog, one over the other."""
    counts = _OPENING.setdefault(client, Counter())
    free = not counts[True] if not by_page else not (open_dialogs(client) or counts[True] or counts[False])
    counts[by_page] += 1
    try:
        yield free
    finally:
        counts[by_page] -= 1


def behind_dialog(element: Any) -> bool:
    """Whether an open dialog of `element`'s page is not one `element` is in: the person cannot
    click it (every dialog here is modal), so a click from it was made before the dialog came up
    and reached a busy server after it (a dialog the page opened by itself, `drafts.reopen`)."""
    dialogs = open_dialogs(element.client)
    while element is not None and dialogs:
        if element in dialogs:
            return False
        slot = element.parent_slot
        element = slot.parent if slot is not None else None
    return bool(dialogs)


@contextmanager
def click_opening(sender: Any) -> Iterator[bool]:
    """`opening_dialog` for a person's click on `sender`: whether the click may open its dialog
    (not while the page reopens one, not from behind an open dialog: `behind_dialog`)."""
    with opening_dialog(sender.client) as free:
        yield free and not behind_dialog(sender)


def opens_dialog(
    handler: Callable[..., Any], *, with_args: bool = False
) -> Callable[[events.UiEventArguments], Awaitable[None]]:
    """`on_click` of a button that opens a dialog (a form, a "Delete …?" question), or the handler
    of a table row's button event (`with_args`: `handler` is given the event's `args`, the row):
    one click opens one.

    The second click of a double-click reaches the button before the first click's dialog is up
    (a round trip to the server), and each click's handler opened its own dialog: two forms or
    two questions stacked, the one under the first still there once it was answered (a second
    Delete then said the row was not found). Here a click is dropped while the previous one is
    handled, while a dialog it opened is still open, while the page reopens a draft's dialog
    (`opening_dialog`) or when it comes from behind an open dialog (`behind_dialog`). The button
    stays enabled: the browser gives the keyboard's focus back to it when its dialog closes.
    """
    busy = False
    opened: weakref.WeakSet[ui.dialog] = weakref.WeakSet()

    async def on_click(event: events.UiEventArguments) -> None:
        nonlocal busy, opened
        if busy or any(dialog.value and not dialog.is_deleted for dialog in opened):
            return
        with click_opening(event.sender) as free:
            if not free:
                return
            busy = True
            before = open_dialogs(event.client)
            try:
                result = handler(getattr(event, "args", None)) if with_args else handler()
                if inspect.isawaitable(result):
                    await result
            finally:
                opened = weakref.WeakSet(open_dialogs(event.client) - before)
                busy = False

    return on_click


async def close_then(dialog: ui.dialog, action: Callable[[], Awaitable[Any]]) -> None:
    """Close a confirmation dialog, then run `action` outside it.

    A closed dialog deletes itself (with the button whose handler is running): whatever `action`
    shows afterwards (a risk dialog, an error) must be built in the page, or it is never seen.
    """
    client = context.client
    dialog.close()
    with client.layout:
        await action()


async def confirm(
    question: str, consequence: str, verb: str = "Delete", testid: str = "confirm-delete"
) -> bool:
    """Ask before something is removed for good (one click on a bin icon used to delete at once);
    True when the person pressed `verb`, False on Cancel or when the dialog was dismissed.
    Built in the page (`page_dialog`)."""
    with page_dialog() as dialog, dialog_card(question):
        ui.label(consequence).classes("text-grey-8")
        with ui.row().classes("w-full justify-end gap-2 mt-2"):
            ui.button("Cancel", on_click=lambda: dialog.submit(False)).props("flat")
            ui.button(verb, on_click=lambda: dialog.submit(True), color="negative").props(
                f'unelevated data-testid="{testid}"'
            )
    _DISMISSED.add(dialog)
    return bool(await dialog)  # answered or not, it closes, then goes (`dismiss`)


def page_dialog() -> ui.dialog:
    """A dialog that belongs to the page, not to the element whose event built it: NiceGUI deletes
    a dialog with the part of the page it was built in, so a live list redrawing the row whose
    button opened it (`Redrawn`, another tab's change) took the form away while it was typed in."""
    with context.client.layout:
        return ui.dialog()


def dismiss(dialog: ui.dialog) -> None:
    """Close a dialog built with `dialog_card` and delete it once the browser has started hiding
    it (and so given the keyboard's focus back to what opened it).

    The browser's dialog gives the focus back to its opener when it closes, but a dialog deleted
    at once (Save, Cancel, a confirmation answered) never closed there: NiceGUI sends only the
    deletion (it replaces the element's pending update), and the focus fell to the page's body,
    so a keyboard user started again from the top of the page."""
    if dialog.is_deleted:
        return
    if not dialog.value or dialog not in _HIDE_WATCHED:  # already hidden, or nothing would delete it
        dialog.delete()
        return
    _DISMISSED.add(dialog)
    dialog.close()


_HIDE_WATCHED: weakref.WeakSet[ui.dialog] = weakref.WeakSet()
"""Dialogs whose "beforeHide" event the server hears (`dialog_card`): a listener added to a dialog
already in the browser makes NiceGUI draw it anew, which forgets what to give the focus back to."""
_DISMISSED: weakref.WeakSet[ui.dialog] = weakref.WeakSet()
"""Dialogs to delete once hidden (`dismiss`, `confirm`); others (a reused one) stay."""


def _hidden(dialog: ui.dialog) -> None:
    if dialog in _DISMISSED and not dialog.is_deleted:
        dialog.delete()


def options_read_on_open(
    select: ui.select, read: Callable[[], Awaitable[dict[Any, str] | list[Any] | None]]
) -> ui.select:
    """Read `select`'s options again (`read()`: value -> label, or a list of values; None: not
    now, such as a session that ended) each time its menu opens, so a choice added since the
    page loaded (another tab, another user, the API) is offered without a reload. The chosen
    value stays offered, with its label, when `read` no longer has it. One read at a time
    (`OneRead`): a menu opened twice quickly ran two reads that ended in any order, and the older
    one ending last showed the options without what was added between them."""
    reads = OneRead()

    async def reread() -> None:
        options = await read()
        if options is None:
            return
        value = select.value
        if value is not None and value not in options:
            shown = select.options
            label = shown.get(value, str(value)) if isinstance(shown, dict) else value
            options = {**options, value: label} if isinstance(options, dict) else [*options, value]
        if options != select.options:
            select.set_options(options, value=value)

    select.on("popup-show", lambda _: reads.run(reread))
    return select


# The pagination a Quasar table reports once drawn (every row on one page): its
# `update:pagination` on mount with the props' `{rowsPerPage: 0}` completed so.
SHOWN_PAGINATION = {"sortBy": None, "descending": False, "page": 1, "rowsPerPage": 0}


class _Table(ui.table):
    """`ui.table` that sends nothing back when the browser reports the pagination it shows.

    Quasar's table reports its pagination as soon as it is drawn, and NiceGUI's stored it and
    sent the whole table back (every row) although nothing changed: under load that copy
    arrived after the rows were on screen and drew every row's buttons again
    (tests/test_ui_users_browser.py). A pagination that differs (a sorted column) is kept
    and sent as NiceGUI's is."""

    @property
    def pagination(self) -> dict[str, Any]:
        """Quasar's pagination object (`SHOWN_PAGINATION` until the browser reports another)."""
        return self._props["pagination"]

    @pagination.setter
    def pagination(self, value: dict[str, Any]) -> None:
        if value != self._props["pagination"]:
            self._props["pagination"] = value


IDENTIFIER_CELL = (
    '<q-td :props="props"><div class="oc-ident" :title="props.value">{{ props.value }}</div></q-td>'
)
"""The cell of an `IDENTIFIER` column: its value on one line (`oc-ident`), whole as its tooltip."""


def data_table(
    columns: list[dict[str, Any]], rows: list[dict[str, Any]], row_key: str, label: str
) -> ui.table:
    """A full-width `ui.table` of `rows` (dicts with the `field`s of `columns`, Quasar's column
    shape) keyed by `row_key`, named `label` ("Secrets", "Recent runs") for assistive technology:
    its scroll area (`.q-table__middle`, scrolled sideways when the columns are wider than a
    phone) takes the keyboard's focus and is a region of that name (`layout.A11Y_JS`), so rows
    with no link or button in them can still be scrolled with the arrow keys (WCAG 2.1.1;
    axe-core's `scrollable-region-focusable`). Every table of the pages is made here; it sends
    no copy of itself when the browser reports the pagination it already has (`_Table`). A
    column of `IDENTIFIER`s shows each cell's whole value as its tooltip (a page may give the
    column a slot of its own, which then does so)."""
    made = _Table(columns=columns, rows=rows, row_key=row_key).classes("w-full")
    made.props["pagination"] = dict(SHOWN_PAGINATION)
    for column in columns:
        if column.get("classes") and IDENTIFIER["classes"] in column["classes"].split():
            made.add_slot(f"body-cell-{column['name']}", IDENTIFIER_CELL)
    return made.props(f'data-a11y-label="{label}"')


def fenced(text: str, language: str | None) -> str:
    """`text` as a Markdown fenced code block whose fence is longer than any run of backticks in
    it (at least 3), so no line of `text` closes it (CommonMark 4.5; markdown2's closing fence
    repeats the opening one): all of `text` is code, shown as it is."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language or ''}\n{text}\n{fence}"


def code_block(content: str, language: str | None) -> ui.code:
    """Read-only highlighted code (`language` a Pygments name, None for plain text) whose copy
    button has a name for screen readers (NiceGUI's has none; colours: layout.THEME_CSS).

    Every character of `content` is shown as text, as it is (no indentation removed): NiceGUI's
    `ui.code` wraps it in a fence of three backticks, which a line of ``` in the content closed,
    and the rest was drawn as Markdown (a heading, an image, a link saying "log in again" to
    another site) on the pages showing what a run ran or an inventory holds, where an approver
    reviews it. The block is made empty, its Markdown's binding replaced by one through
    `fenced` (`nicegui.binding.remove`), then given its content: one Markdown rendering."""
    block = ui.code("", language=language)
    binding.remove([block.markdown])
    block.markdown.bind_content_from(block, "content", lambda text: fenced(text, language))
    block.content = content
    block.copy_button.props('aria-label="Copy to the clipboard"')
    return block


def format_time(value: datetime | None, empty: str = "never") -> str:
    """`2026-01-31 14:05 UTC`, or `empty` when there is no time."""
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else empty


def format_count(count: int) -> str:
    """A count with thousands separators (`1,234,567`), as the history's totals are written."""
    return f"{count:,}"


def compact_count(count: int) -> str:
    """`count` in at most six characters, for a tile too narrow for more: exact below 100,000
    (`98,765`), above three significant digits and a unit, cut, never rounded up (`123k`,
    `1.23M`, `12.3M`, `999M` for 999,999,999, `1.23B`). `1,234,567` ran out of a dashboard
    tile and was cut to `1,234,56`."""
    if count < 100_000:
        return format_count(count)
    units = ((10**9, "B"), (10**6, "M"), (10**3, "k"))
    size, unit = next((size, unit) for size, unit in units if count >= size)
    decimals = max(3 - len(str(count // size)), 0)
    return f"{count * 10**decimals // size / 10**decimals:.{decimals}f}{unit}"


def percent(part: int, whole: int, digits: int = 0) -> float | None:
    """`part` of `whole` in percent, rounded to `digits` decimals but never to 0 or 100 unless it
    is exactly that: 999 successes of 1,000 runs is 99%, not 100% (which says none failed), and
    1 of 1,000 is 1%, not 0%. None when `whole` is 0."""
    if whole <= 0:
        return None
    step = 10.0**-digits
    value = round(100 * part / whole, digits)
    if 0 < part < whole:
        value = min(max(value, step), 100 - step)
    return int(value) if digits == 0 else value


def changed(values: Mapping[str, Any], loaded: Mapping[str, Any] | None) -> dict[str, Any]:
    """What a form's Save sends: every value of a new record (`loaded` None); for a stored one
    only the fields whose value differs from what the form loaded, so a field someone changed
    in another tab or through the API meanwhile is not put back to this page's copy."""
    if loaded is None:
        return dict(values)
    return {key: value for key, value in values.items() if value != loaded.get(key)}


def stored_base(row: object, keys: Sequence[str]) -> dict[str, Any]:
    """The `base` of an edit dialog's save (`partial.three_way`): `row`'s `keys` as stored when
    the dialog was opened from it. Held on the server (the UI runs in it), never sent to the
    browser: a field saved meanwhile in another tab or through the API is then a 409 naming it."""
    return {key: getattr(row, key) for key in keys}


def changed_with_boxes(
    values: Mapping[str, Any], loaded: Mapping[str, Any] | None, boxes: tuple[str, ...]
) -> dict[str, Any]:
    """`changed`, each of the JSON text `boxes` among them read as the API reads a body
    (`parameters.json_from_text`: its problem said under the box)."""
    data = changed(values, loaded)
    for box in boxes:
        if box in data:
            data[box] = json_from_text(data[box])
    return data


async def top_level_fields(action: Callable[[], Awaitable[Any]], own: Collection[str] = ()) -> Any:
    """Run `action` (a save of a webhook's or a "then run" link's form); a problem with
    `mapping.NAME` or `parameters.NAME` is said under the mapping or parameters box, with the
    parameter's name in the message, never under an input the parameter is named like (a
    parameter `name` or `enabled`: `layout.show_field_errors` tries the last part first).
    `run_options.limit` stays: its own input; so do the fields in `own` (a parameter's own
    field, `ParameterFields.inputs`: `parameters.NAME`)."""
    try:
        return await action()
    except Invalid as exc:
        details = []
        for detail in exc.details or []:
            field = str(detail.get("field", ""))
            if field.split(".", 1)[0] in ("mapping", "parameters") and "." in field and field not in own:
                top, name = field.split(".", 1)
                detail = {"field": top, "message": f"{name}: {detail['message']}"}
            details.append(detail)
        raise Invalid(exc.message, details=details) from None


def stored_note(row: object, testid: str) -> None:
    """Under a listed row: what its stored JSON settings hold that cannot be read
    (`stored_shapes.note`: shown and used as empty, runs it would start refused) and to edit or
    delete it; nothing when it has none."""
    said = stored_shapes.note(row)
    if said is not None:
        ui.label(said).classes("text-caption text-negative oc-wrap").props(f'data-testid="{testid}"')


def stored_json_text(row: object, column: str) -> str:
    """A form's starting text for `row`'s JSON `column`: the stored value as JSON, or "" when it
    is stored in a shape that cannot be read (`stored_shapes.problems`, said under the row): the
    box is then empty, not the `{}` the column reads as, so the form's save sends the box (an
    empty box is `{}` there) and stores what the form shows."""
    if column in stored_shapes.problems(row):
        return ""
    return json.dumps(getattr(row, column), ensure_ascii=False)


def longest(model: type[BaseModel], name: str) -> int:
    """The most characters field `name` of the service's request `model` accepts (its
    `max_length`), for the page's field of it (`text_input(limit=...)`): the limit has one
    source, the service's. KeyError for a field with no such limit."""
    for rule in model.model_fields[name].metadata:
        if isinstance(rule, MaxLen):
            return int(rule.max_length)
    raise KeyError(f"{model.__name__}.{name} has no max_length")


TextField = TypeVar("TextField", ui.input, ui.textarea)


def says_limit(field: TextField, limit: int) -> TextField:
    """`field`, whose service accepts at most `limit` characters, says so under it while one
    types: "At most 1000 characters" (the limit was said only by the refusal, after Create).
    Said once, not counted at each key: Quasar animates a changed hint (one leaving, one
    coming), which flickered at every key. Characters as the service counts them (code
    points); a longer value still reaches the server (`bound_text_fields`), which refuses it
    under the field, the hint's place."""
    return field.props(f'hint="At most {limit} characters"')


def text_input(
    label: str, testid: str, *, value: str = "", autofocus: bool = False, limit: int | None = None
) -> ui.input:
    """A full-width outlined text field showing `value`; with `limit` (the service's most
    characters: `longest`), it says the limit under it (`says_limit`).

    Give a field its first value here, never by setting `.value` after it is built: NiceGUI
    follows such a set with an `updateValue` call that puts the server's value back into the
    browser's field, and on a page being built that call waits for the connection, so what a
    person typed meanwhile was replaced (on screen and on the server) by the value the page was
    built with."""
    props = f'outlined dense data-testid="{testid}"' + (" autofocus" if autofocus else "")
    field = ui.input(label, value=value).props(props).classes("w-full")
    return field if limit is None else says_limit(field, limit)


def prose_input(label: str, testid: str, *, value: str = "", limit: int | None = None) -> ui.textarea:
    """`text_input` for text that may hold line breaks the API keeps (a description, a JSON box):
    one line high, growing with what is typed or pasted up to `PROSE_HEIGHT`, then scrolling (a
    long description grew its dialog past the window's bottom, Create out of reach), so a pasted
    line break is kept, not refused as in a one-line field (`one_line`). Enter starts a new line
    here. `limit`: as `text_input`'s."""
    props = f'outlined dense autogrow rows=1 input-style="max-height: {PROSE_HEIGHT}" data-testid="{testid}"'
    field = ui.textarea(label, value=value).props(props).classes("w-full")
    return field if limit is None else says_limit(field, limit)


PROSE_HEIGHT = "30vh"
"""The most a `prose_input` grows to: a dialog with two of them still fits the window."""


def form() -> ui.element:
    """A `<form>` around fields that include a password (browsers and screen readers expect one);
    submitting it does nothing by itself, the page's button or Enter handler does the work."""
    element = ui.element("form").props('onsubmit="return false" novalidate')
    return element.classes("w-full column no-wrap gap-3")


def note_submitted(button: ui.button, fields: Sequence[ui.input]) -> None:
    """Each click of `button` (an Enter that presses it too: `enter_presses`) notes in the browser
    what each text field of `fields` shows at that moment, for `put_unless_typed` once the
    click's work is done. Nothing is sent: a password noted stays where it was typed."""
    ids = json.dumps([field.id for field in fields])
    button.on("click", js_handler=NOTE_SUBMITTED_JS % ids)


NOTE_SUBMITTED_JS = """() => {
  for (const id of %s) {
    const field = getElement(id);
    if (field) field.$el.ocSubmitted = field.inputValue;
  }
}"""

PUT_UNLESS_TYPED_JS = """return ((values) => {
  for (const [id, value] of Object.entries(values)) {
    const field = getElement(id);
    if (!field) continue;
    if (field.$el.ocSubmitted === field.inputValue) field.inputValue = value;
    delete field.$el.ocSubmitted;
  }
  return Vue.nextTick().then(() => true);
})(%s)"""


async def put_unless_typed(values: Mapping[ui.input, str]) -> None:
    """After the work of a click noted by `note_submitted`: put each value (a failed password's
    "", a saved email as stored) into its text field, in the browser, as typing would (the field
    sends it to the server, in order with what is typed next), unless the field shows something
    else than at the click: typed meanwhile, it keeps what was typed.

    Set on the server after the work's await, a value replaced what the person typed meanwhile,
    on screen or only on the server (the browser kept showing it when its copy of the server's
    value was the same): the login page emptied a password retyped during a failed attempt, and
    the next click said "Enter your username and password". A page that does not answer within
    10 seconds (gone, or its connection lost) keeps what it shows."""
    code = PUT_UNLESS_TYPED_JS % json.dumps({str(field.id): value for field, value in values.items()})
    with suppress(TimeoutError):
        await ui.run_javascript(code, timeout=10)


def password_input(label: str, testid: str, *, autocomplete: str = "new-password") -> ui.input:
    """A full-width password input with a show/hide toggle; `autocomplete` tells password managers what it
    is.
    """
    field = (
        ui.input(label, password=True, password_toggle_button=True)
        .props(f'outlined dense autocomplete={autocomplete} data-testid="{testid}"')
        .classes("w-full")
    )
    forget_on_close(field, lambda: field.set_value(""))
    return field


def enclosing_dialog(element: ui.element) -> ui.dialog | None:
    """The dialog `element` is drawn in (through its parents' slots), None outside any."""
    found: Any = element
    while found is not None and not isinstance(found, ui.dialog):
        slot = getattr(found, "parent_slot", None)
        found = slot.parent if slot is not None else None
    return found


def forget_on_close(element: ui.element, forget: Callable[[], None]) -> None:
    """Call `forget` (which empties `element`: a password, a secret value) when the dialog it is
    in closes, however it closes: Escape leaves the dialog on the page, hidden, and the server
    then sent the field's element, with what was typed, back to the browser. Nothing outside a
    dialog (the login page's field goes with its page)."""
    dialog = enclosing_dialog(element)
    if dialog is not None:
        dialog.on("hide", forget)


class ErrorLine(ui.label):
    """The error line of a field that shows none of its own (a switch): `error = "..."` says the
    message in red where the line is, `error = None` clears it, as an input's `error` does, so
    `layout.show_field_errors` puts a problem there instead of in a toast."""

    def __init__(self, testid: str) -> None:
        super().__init__("")
        self.classes("text-negative text-caption").props(f'role="alert" data-testid="{testid}"')

    @property
    def error(self) -> str | None:
        """The error shown, or None."""
        return self.text or None

    @error.setter
    def error(self, message: str | None) -> None:
        self.set_text(message or "")


def password_hint(min_length: int) -> None:
    """The password rule under a password input: at least `min_length` characters, not the username."""
    ui.label(f"At least {min_length} characters, not the username.").classes("text-caption text-grey-7")


def carried(longest: int) -> str:
    """Props for a text field whose longest valid value is `longest` characters: the browser holds
    at most what the page's connection carries (NiceGUI's browser side drops a message over 1 MB,
    so the server kept the field's previous value and acted on it, e.g. a run started with it).
    Twice `longest` plus one, as the browser counts in UTF-16 units: a valid value is never cut
    (`longest` characters beyond the Basic Multilingual Plane), and a longer one still reaches
    the server, which refuses it under the field. Up to `MAX_CARRIED_UNITS`; a field without
    one of its own has that ceiling (`bound_text_fields`)."""
    units = 2 * longest + 2
    if units > MAX_CARRIED_UNITS:
        raise ValueError(f"a field of {longest} characters may not reach the server whole")
    return f"maxlength={units}"


#: The most UTF-16 units a text field holds: 840 kB even if every character is sent escaped
#: (`\uXXXX`), under NiceGUI's 1 MB message limit; room for a 64 KiB inventory or secret value.
MAX_CARRIED_UNITS = 140_000


def bound_text_fields() -> None:
    """Give every text field and text area that names no `carried(...)` limit of its own a
    ceiling of `MAX_CARRIED_UNITS` (NiceGUI default props; call before any page is built).

    A paste longer than a page's connection carries was dropped by NiceGUI's browser side, and
    the server kept the field's previous value: a script's description, a secret's value or an
    inventory pasted over 1 MB was saved as it was before, with no word. Every field's valid
    values are far shorter than the ceiling, so a value cut there still reaches the server whole
    enough to be refused under its field ("must be at most N characters")."""
    for element in (ui.input, ui.textarea):
        element.default_props(f"maxlength={MAX_CARRIED_UNITS}")


def sentence_case_buttons() -> None:
    """Show every button's words as written (Quasar's `no-caps`; NiceGUI default props, called
    before any page is built): the labels are written in sentence case ("Add channel", "New
    inventory"), and Quasar's default upper case showed only the buttons that said `no-caps`
    so, the rest as "ADD CHANNEL". Also the choices of a button toggle (`ui.toggle`) and the
    tabs (`ui.tabs`), drawn as buttons."""
    for element in (ui.button, ui.toggle, ui.tabs):
        element.default_props("no-caps")


NARROW_HIDDEN: dict[str, str] = {"classes": "gt-sm", "headerClasses": "gt-sm"}
"""A table column's props that drop it below 1024 px (Quasar's `gt-sm` breakpoint): on a phone a
table keeps the columns that say which row it is, its state and its actions, and fits the screen
(the actions are not behind a sideways scroll)."""
PHONE_HIDDEN: dict[str, str] = {"classes": "gt-xs", "headerClasses": "gt-xs"}
"""The same below 600 px (Quasar's `gt-xs`)."""
WRAPPED: dict[str, str] = {"classes": "oc-cell-wrap"}
"""A table column's props for stored text people choose (a 128-character name without a space, a
description, a full name): its cells wrap at 24rem (`layout.THEME_CSS`). Unwrapped, one such value
made its table wider than the window, and the columns right of it (a row's buttons) were out of
view until the table was scrolled sideways."""
IDENTIFIER: dict[str, str] = {"classes": "oc-cell-id"}
"""A table column's props for an identifier (an e-mail address, a user name, a host name): its
cells keep it on one line, cut with "…" past 12rem (`oc-ident` in `layout.THEME_CSS`), the whole
value in its tooltip (`title`; `data_table`'s `IDENTIFIER_CELL`) and in its text for assistive
technology. As
`WRAPPED` text it broke anywhere, in the middle of a word ("ops@example-corpo|ration.com" at
1280 px), where a reader looks for the whole name."""
STICKY_ACTIONS: dict[str, str] = {"classes": "oc-sticky-actions", "headerClasses": "oc-sticky-actions"}
"""A table column's props for a row's buttons: kept at the table's right edge, in view, over the
cells, however wide the table (a phone's 375 px, a table of many columns: `layout.THEME_CSS`)."""


def joined(*props: dict[str, str]) -> dict[str, str]:
    """Column props (`NARROW_HIDDEN`, `WRAPPED`...) as one: each key's classes together."""
    together: dict[str, str] = {}
    for each in props:
        for key, classes in each.items():
            together[key] = f"{together[key]} {classes}" if key in together else classes
    return together


TALL_TEXT_PROPS = 'autogrow input-style="max-height: 50vh"'
"""Props of a text area that grows with its text up to half the window's height, then scrolls:
an inventory of a thousand hosts grew to 25,000 px, and the form's Save button was that far
below (Quasar's `autogrow` alone has no limit)."""

LONG_TEXT_LINES = 30
"""More lines than this and `long_text` folds the text under a summary."""


def long_text(content: str, language: str | None, label: str) -> None:
    """`content` as a `code_block`, folded under "`label` (N lines)" when it has more than
    `LONG_TEXT_LINES` lines, so that a list of such texts does not bury the next row under
    thousands of lines (the Inventories page with an inventory of a thousand hosts)."""
    lines = content.count("\n") + (0 if content.endswith("\n") else 1)
    if lines <= LONG_TEXT_LINES:
        code_block(content, language).classes("w-full")
        return
    with ui.expansion(f"{label} ({lines:,} lines)", icon="notes").classes("w-full").props("dense"):
        code_block(content, language).classes("w-full")


FORM_DIALOG_PROPS = "no-backdrop-dismiss"
"""A form dialog ignores clicks outside it: a stray click, or the second click of a double-click on
the button that opened it (landing on the backdrop once the form is up), closed the form and
dropped what was typed. Escape and Cancel still close it."""


COPIED = "Copied to the clipboard."
PRESS_TO_COPY = "Selected: press Ctrl+C (⌘C on a Mac) to copy it."
# The Copy button's click, in the browser: the value is written to the clipboard from the field
# the browser holds (it never goes back to the server, nor into a log or an address); where the
# Clipboard API is missing (a page on plain http from another machine: not a secure context)
# or refused, the field's text is selected for the user's own Ctrl+C. Only which happened is
# sent to the server (`copied` or `selected`), which says so under the field.
_COPY_JS = """async (event) => {
  const box = document.querySelector('[data-testid="%s"]');
  const field = box && (box.matches('input') ? box : box.querySelector('input'));
  if (!field) return;
  try {
    await navigator.clipboard.writeText(field.value);
    emit('copied');
  } catch (error) {
    field.focus();
    field.select();
    emit('selected');
  }
}"""


def shown_once(
    title: str, warning: str, testid: str, done_testid: str | None = None
) -> tuple[ui.dialog, ui.input]:
    """A dialog showing a value once (a new API token, a webhook's URL holding its token): the
    value in a read-only field (`testid`) with a Copy button (`<testid>-copy`: to the clipboard,
    or, where the browser offers none, the text selected for Ctrl+C: `_COPY_JS`) whose outcome
    is said under it (`<testid>-copied`: `COPIED` or `PRESS_TO_COPY`), `warning` above it, a
    Done button. Closed by Done or Escape, the field is emptied: the value leaves the page.
    Returns (dialog, field); the caller sets the field's value and opens the dialog."""
    with ui.dialog() as dialog, dialog_card(title):
        ui.label(warning).classes("text-warning")
        with ui.row().classes("w-full items-center no-wrap gap-2"):
            field = (
                ui.input()
                .props(f'readonly outlined dense data-testid="{testid}"')
                .classes("col min-w-0 font-mono")
            )
            copy = ui.button("Copy", icon="content_copy").props(f'flat data-testid="{testid}-copy"')
        said = ui.label("").classes("text-caption").props(f'role="status" data-testid="{testid}-copied"')
        copy.on(
            "click",
            lambda e: said.set_text(COPIED if e.args == "copied" else PRESS_TO_COPY),
            js_handler=_COPY_JS % testid,
        )
        done = ui.button("Done", on_click=dialog.close).props("unelevated")
        if done_testid is not None:
            done.props(f'data-testid="{done_testid}"')

    def forget() -> None:
        field.set_value("")
        said.set_text("")

    forget_on_close(field, forget)
    return dialog, field


def dialog_card(title: str) -> ui.card:
    """The card inside a form dialog (called inside `ui.dialog()`, which gets `FORM_DIALOG_PROPS`),
    with its title (its selects span its width: layout.THEME_CSS); `dismiss` closes such a dialog."""
    dialog = context.slot.parent
    if isinstance(dialog, ui.dialog):
        dialog.props(FORM_DIALOG_PROPS)
        if dialog not in _HIDE_WATCHED:
            dialog.on("beforeHide", lambda: _hidden(dialog))
            _HIDE_WATCHED.add(dialog)
    card = ui.card().classes("oc-form-card w-[32rem] max-w-full gap-3")
    with card:
        dialog_title(title)
    return card


def dialog_title(text: str) -> ui.label:
    """A dialog's title, which is also the dialog's accessible name (`aria-labelledby` of the
    `ui.dialog` it is drawn in): a screen reader said only "dialog" when one opened."""
    label = ui.label(text).classes("text-lg font-semibold oc-wrap")
    dialog = enclosing_dialog(label)
    if dialog is not None:
        dialog.props(f'aria-labelledby="{label.html_id}"')
    return label


def dialog_buttons(
    dialog: ui.dialog,
    label: str,
    testid: str,
    on_submit: Callable[[], Awaitable[None]],
    color: str = "primary",
    on_cancel: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Cancel (drops the dialog and what was typed in it; `on_cancel` first, e.g. to drop its
    draft) and the submit button, which Enter in a one-line field of the dialog also presses
    (`ENTER_SUBMITS_JS`)."""

    async def cancel() -> None:
        if on_cancel is not None:
            await on_cancel()
        dismiss(dialog)

    with ui.row().classes("w-full justify-end gap-2 mt-2"):
        ui.button("Cancel", on_click=cancel).props("flat")
        submit = ui.button(label, on_click=one_click(on_submit), color=color).props(
            f'unelevated data-testid="{testid}"'
        )
    enter_presses(dialog, submit)


def enter_presses(container: ui.element, button: ui.button) -> None:
    """Enter in a one-line field inside `container` (a form dialog, a form card of a page) presses
    `button` (`ENTER_SUBMITS_JS`)."""
    container.on("keydown", js_handler=ENTER_SUBMITS_JS % button.html_id)


ENTER_SUBMITS_JS = """(event) => {
  const field = event.target;
  if (event.key !== "Enter" || event.isComposing) return;
  if (field.tagName !== "INPUT" || field.closest(".q-select")) return;
  event.preventDefault();
  document.getElementById("%s")?.click();
}"""
"""Enter in a text field of a form dialog or card presses its submit button (a person filling a
form expects it; only the log-in form did, and the profile's last password field), as a click
would: once (`one_click`), not while it is disabled. Not in a text area (Enter is a new line
there), a select or a chips input (Enter picks or adds a value there), nor on a button (Enter
presses that button)."""
