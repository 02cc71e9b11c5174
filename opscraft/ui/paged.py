"""The paged lists' page kept in the address (`KeptPage`: the audit log, API tokens, a script's
versions) and the paged-table pattern of the list pages (users, secrets, scripts, audit log:
`PagedTable`): table, pager, summary, kept live (`follow`)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from nicegui import context, ui
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db.digits import ascii_int
from opscraft.db.types import MAX_ID
from opscraft.services.actor import Actor
from opscraft.services.errors import NotFound, ServiceError
from opscraft.services.permissions import Permission
from opscraft.ui import drafts
from opscraft.ui.drafts import Draft
from opscraft.ui.layout import close_saved, guard, notify_error, run_action
from opscraft.ui.widgets import (
    OneRead,
    call,
    data_table,
    dismiss,
    format_count,
    live_seconds,
    live_timer,
    one_shot,
)

Listed = tuple[list[Any], int]
"""A service list call's answer: a page of rows and the total."""


class KeptPage:
    """The page a paged list shows, kept in the address (`?page=2`, beside the list's filters:
    `address`), so that Back from a row's page, a reload or a shared link shows the same page
    (they showed page 1). `page` is the address's; `count(total)` says the last page, and a page
    past it (rows deleted since, a shared `?page=9`) is to be shown as the last (`past_last`).
    """

    def __init__(self, page_size: int, page: int = 1) -> None:
        # an address's page past any list (`?page=10**23`) still reads within `skip`'s range
        # (`paging.check`: SQLite took it for no integer): the last page is then shown
        self.page = min(max(1, page), MAX_ID // page_size)
        self.page_size = page_size
        self.last_page = 1  # of the latest `count`
        self._kept = ""  # the address `keep_page` last put in the browser's
        # The page the list is on (built in it): `keep_page` runs from live re-reads too, whose
        # task may hold no element of the page.
        self._client = context.client

    @property
    def skip(self) -> int:
        """How many rows come before the current page."""
        return (self.page - 1) * self.page_size

    def count(self, total: int) -> int:
        """The number of pages of `total` rows (at least 1), kept as `last_page`."""
        self.last_page = max(1, -(-total // self.page_size))
        return self.last_page

    def past_last(self) -> bool:
        """Whether the page is past the last one `count` found; it is then made the last (the
        caller reads it again)."""
        if self.page <= self.last_page:
            return False
        self.page = self.last_page
        return True

    def address(self) -> str:
        """The list's address with its filters, without the page (`paged_address` adds it), or
        empty: the page is not kept. Each list says its own."""
        return ""

    def paged_address(self) -> str:
        """`address()` with `page=N` when the page shown is not the first."""
        listed = self.address()
        if self.page == 1:
            return listed
        return f"{listed}{'&' if '?' in listed else '?'}{urlencode({'page': self.page})}"

    def keep_page(self) -> None:
        """Put the page shown in the browser's address (`paged_address`, replacing the entry: no
        new step of Back), when the list has an address and it changed since the last call."""
        kept = self.paged_address() if self.address() else ""
        if kept and kept != self._kept:
            with self._client:
                ui.navigate.history.replace(kept)
        self._kept = kept


class PagedTable(KeptPage, ABC):
    """Owns the page number (`KeptPage`), a flat table and the summary/pager row below it.

    Subclasses build their filters, call `make_table` and `make_footer`, and implement
    `show_page(ticking)`, which loads `skip`/`page_size` rows (`load`), puts them in the table
    (`show_rows`) and ends with `show_total`; `refresh()` runs it, and `follow()` then keeps the
    page shown live. The page is kept in the address (`KeptPage`).
    """

    def __init__(self, page_size: int, page: int = 1) -> None:
        super().__init__(page_size, page)
        self.path = ""  # the list's page, `/users` (`search_box`); none: the address is not kept
        # The service's filter names -> their inputs, for `load`.
        self.filter_fields: dict[str, Any] = {}
        self._total_shown: tuple[Any, ...] | None = None  # what `show_total` last said
        self._reads = OneRead()

    def search_box(self, placeholder: str, testid: str, path: str, search: str | None = None) -> ui.input:
        """A debounced search input showing `search` (the page address's); its text is
        `self.search`, its service field `search` (`self.filter_fields`: a refused search is said
        under the box), and it is kept in the address (`path?search=...`) so that a reload, Back
        or a shared link shows the same rows (it was lost)."""
        self.search = (search or "").strip()
        self.path = path
        box = ui.input(placeholder=placeholder, value=search or "", on_change=self._on_search)
        box.props(f'outlined dense clearable debounce=300 data-testid="{testid}"').classes("w-96")
        box.add_slot("prepend", '<q-icon name="search" />')
        self.filter_fields["search"] = box
        return box

    async def _on_search(self, event: Any) -> None:
        self.search = (event.value or "").strip()
        await self.reload()

    def address(self) -> str:
        """The search box's path and search (`search_box`), or empty: no address is kept. A list
        with other filters says its own."""
        if self.path and self.search:
            return f"{self.path}?{urlencode({'search': self.search})}"
        return self.path

    def matching(self) -> str:
        """` matching “search”` for the summary line when a search is set, else empty."""
        return f" matching “{self.search}”" if self.search else ""

    def make_table(self, columns: list[dict[str, Any]], testid: str, label: str) -> ui.table:
        """Create the page's table (no client-side paging) with its test id, named `label`
        (`widgets.data_table`)."""
        self.table = data_table(columns, [], "id", label)
        self.table.props(f'flat bordered hide-pagination :rows-per-page-options="[0]" data-testid="{testid}"')
        return self.table

    def make_footer(self, testid: str) -> None:
        """Create the summary label and the pager under the table."""
        with ui.row().classes("w-full items-center justify-between"):
            self.summary = ui.label().classes("text-grey-7").props(f'data-testid="{testid}"')
            self.pager = ui.pagination(1, 1, direction_links=True, on_change=self._on_page)

    async def reload(self) -> None:
        """Back to the first page (after a filter changed) and load."""
        self.page = 1
        await self.refresh()

    async def _on_page(self, event: Any) -> None:
        if event.value and event.value != self.page:
            self.page = int(event.value)
            await self.refresh()

    def follow(self) -> None:
        """Re-read the page shown every `live_seconds()` while the browser is connected
        (`live_timer`), changing the table's rows in place and only when they changed: another
        user's, another tab's or the API's change shows without a reload, and a dialog opened
        from a row, the search being typed and the pager stay (they are not redrawn)."""
        live_timer(live_seconds(), lambda: self.refresh(ticking=True))

    async def load(self, fetch: Callable[[], Awaitable[Listed]], ticking: bool = False) -> Listed | None:
        """`fetch()` (a service's list call) through `run_action`; when the service refuses a
        filter, its message is under that filter's input and the table is emptied (no rows of an
        earlier search under a refused one), and None is returned. `ticking` (a live re-read,
        `follow`): a refusal leaves the page as it is, unsaid (it was said when it happened)."""
        if ticking:
            try:
                return await fetch()
            except ServiceError:
                return None
        result: Listed | None = await run_action(fetch, fields=self.filter_fields)
        if result is None:
            self.table.rows = []
            self.table.update()
            self.pager.set_visibility(False)
            self.summary.text = "Nothing listed: see the message above"
            self._total_shown = None
        return result

    def show_rows(self, rows: list[dict[str, Any]]) -> bool:
        """Put `rows` in the table when they differ from those shown; True when they did."""
        if rows == self.table.rows:
            return False
        self.table.rows = rows
        self.table.update()
        return True

    def show_total(self, total: int, noun: str, suffix: str = "", no_match: str | None = None) -> None:
        """The pager and summary for `total` rows (`suffix`: the search, `matching`), and what the
        empty table says: that the search matches none, or that there are none yet (it said "No
        data available" either way); `no_match`, when given, is said instead (filters matching
        no row)."""
        pages = self.count(total)
        if self._total_shown == (total, noun, suffix, no_match, pages):  # a live re-read: nothing to send
            return
        self._total_shown = (total, noun, suffix, no_match, pages)
        self.pager.max = pages
        self.pager.set_visibility(pages > 1)
        self.summary.text = f"{format_count(total)} {noun}{'s' if total != 1 else ''}{suffix}"
        matching_none = no_match or (f"No {noun}s match the search" if suffix else None)
        self.table.props["no-data-label"] = matching_none or f"No {noun}s yet"

    def reopen_drafts(
        self,
        prefix: str,
        noun: str,
        permission: Permission,
        open_create: Callable[[], None],
        open_edit: Callable[[dict[str, Any]], None],
        row_of: Callable[[Actor, int], Awaitable[dict[str, Any]]],
    ) -> None:
        """Once the page is connected, open again the dialog whose typing a reload interrupted
        (`drafts.reopen`): the tab's draft `<prefix>new` with `open_create()`, `<prefix><id>` with
        `open_edit(row)`, the row read by its id whatever page of the list it is on (only the page
        shown was looked in: a draft of a row on page 2 came back only once its Edit was opened).
        `row_of(actor, id)` reads it through the service, as the API's `GET` does (after `guard`
        re-checked the session and `permission`): the row as the table shows it, or NotFound
        when there is no such row: then the `noun` ("user") was deleted meanwhile, which is said,
        and its draft is dropped. A draft the service refuses to read otherwise, or read by a
        session that ended, is left alone."""

        async def open_form(row: dict[str, Any] | None) -> None:
            if row is None:
                open_create()
            else:
                open_edit(row)

        async def by_id(keys: list[str]) -> dict[str, dict[str, Any]]:
            actor = await guard(permission)  # asked only with a draft pending
            if actor is None:
                return {}
            rows: dict[str, dict[str, Any]] = {}
            for key in keys:
                row_id = ascii_int(key.removeprefix(prefix), 18)
                if row_id is None:  # `<prefix>new`, or a key no row has
                    continue
                try:
                    rows[key] = await row_of(actor, row_id)
                except NotFound:
                    await drafts.forget(key)
                    notify_error(
                        f"The {noun} you were editing before the reload was deleted meanwhile: "
                        "your unsaved changes to it are dropped."
                    )
                except ServiceError:
                    pass  # refused otherwise (left alone, as a row of another list would be)
            return rows

        one_shot(0, lambda: drafts.reopen(prefix, open_form, by_id))

    async def apply(
        self,
        dialog: ui.dialog,
        permission: Permission,
        change: Callable[[AsyncSession, Actor], Awaitable[Any]],
        done: str,
        fields: Mapping[str, Any] | None = None,
        draft: Draft | None = None,
        warnings: Callable[[Any], Sequence[str]] | None = None,
    ) -> None:
        """Re-check `permission`, run `change(session, actor)`; on success drop the dialog (and
        anything typed in it, `draft` included), say `done` (`layout.close_saved`: only once the
        dialog is going; then the `warnings` of the change's result) and reload the table.
        Problems with a field in `fields` show under it, the rest as red notifications. When
        something is not found (the row was deleted in another tab or by another user since the
        table was loaded) the table is reloaded too, behind the dialog and its notice: it went on
        listing the deleted row."""
        actor = await guard(permission)
        if actor is None:
            dismiss(dialog)
            return
        gone = False
        result: Any = None

        async def action() -> bool:
            nonlocal gone, result
            try:
                result = await call(change, actor)
            except NotFound:
                gone = True
                raise
            return True

        succeeded = await run_action(action, fields=fields)
        if gone:
            await self.refresh()
        if succeeded:
            await close_saved(dialog, done, draft, warnings(result) if warnings else ())
            await self.refresh()  # the change emptied the last page: the new last one is shown

    async def refresh(self, ticking: bool = False) -> None:
        """Load and show the current page (`show_page`; `ticking`: a live re-read, `follow`), one
        read at a time (`widgets.OneRead`: the search typed during a read is what shows last).
        Unless `ticking`, a page past the last (rows deleted since, a shared `?page=9`) is left
        for the last one, and the address says the page shown (`paged_address`)."""
        await self._reads.run(lambda: self._show(ticking), ticking=ticking)

    async def _show(self, ticking: bool) -> None:
        await self.show_page(ticking)
        if ticking:
            return
        if self._total_shown is not None and self.past_last():  # not a refused filter
            await self.show_page(ticking)
        self.pager.value = self.page
        self.keep_page()

    @abstractmethod
    async def show_page(self, ticking: bool = False) -> None:
        """Load and show the current page (`ticking`: a live re-read); `refresh` runs it."""
