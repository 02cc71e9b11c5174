"""Keyset (cursor) paging of the executions history (issue 15).

The history is ordered newest first by `(queued_at, id)`, both descending. A cursor names the
last run a client has seen; the next page is the runs strictly after it in that order:
`queued_at < q OR (queued_at = q AND id < i)`, written as `queued_at <= q AND (queued_at < q OR
id < i)` so that the `queued_at` bound is an index condition on every history index (each ends
with `queued_at`). Unlike `skip`, a page costs the same at any depth, and runs queued between two
pages (newer than the cursor) neither shift nor repeat the later pages.

A *newer* cursor (a page's `prev_cursor`) goes the other way: the `limit` runs just newer than a
run, read oldest first on the same index (`queued_at >= q AND (queued_at > q OR id > i)`, `ORDER BY
queued_at, id`) and handed back newest first. The UI's "Newer" and "Older" buttons and API
clients that page back use the two; both read about one page of index entries at any depth.

Format (opaque to clients, which only pass back `next_cursor` or `prev_cursor`): URL-safe base64
without padding of the JSON array `[queued_at, id]` (older) or `[queued_at, id, "newer"]`,
`queued_at` as ISO 8601 UTC with microseconds, e.g.
`WyIyMDI2LTExLTMwVDE4OjAwOjAwLjEyMzQ1NiswMDowMCIsNDJd`. A run whose stored `queued_at` is no
time (SQLite holds any text there: a manual edit's `yesterday`; it reads as 1970,
`db.types.UnreadTime`) is placed by what is stored, as the database orders it: its cursor holds
that text and the flag `"stored"` (`[text, id, "stored"]`, `[text, id, "newer", "stored"]`), and
the next page compares the column as text with it. A cursor made from the 1970 it reads as
ended the history at that run, every older run left out.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Text, and_, cast, or_
from sqlalchemy.sql.elements import ColumnElement, UnaryExpression
from sqlmodel import col

from opscraft.db.models import Execution
from opscraft.db.types import MAX_ID, UnreadTime
from opscraft.services.errors import Invalid

MAX_CURSOR_LENGTH = 200
CURSOR_PATTERN = r"^[A-Za-z0-9_-]+$"  # the URL-safe base64 alphabet, no padding
NEWER = "newer"
STORED = "stored"  # the time is the text a run stored (no time: module docstring)
FLAGS = ([], [NEWER], [STORED], [NEWER, STORED])
# The time as `encode` writes it (ISO 8601 with a UTC offset), and nothing else: Python's
# `datetime.fromisoformat` also takes any separator (a NUL, a control character, a space), a
# trailing NUL, week dates and commas, so a cursor edited by hand used to read as some other time.
TIME_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})", re.ASCII)


@dataclass(frozen=True)
class Position:
    """A run's place in the history (`queued_at` aware UTC, `id`); `newer`: the page is the runs
    newer than it, else the runs older than it; `stored`: the text the run stored in place of a
    time (then `queued_at` is the 1970 it reads as; module docstring)."""

    queued_at: datetime
    id: int
    newer: bool = False
    stored: str | None = None


def encode(queued_at: datetime, execution_id: int, *, newer: bool = False) -> str:
    """The cursor of the runs older than the run (`queued_at`, `execution_id`), or newer than it
    with `newer` (a naive `queued_at` is UTC, as stored; an `UnreadTime` is placed by the text it
    stored, module docstring)."""
    if isinstance(queued_at, UnreadTime):
        position: list[Any] = [str(queued_at.stored), execution_id]
    else:
        if queued_at.tzinfo is None:
            queued_at = queued_at.replace(tzinfo=UTC)
        position = [queued_at.astimezone(UTC).isoformat(timespec="microseconds"), execution_id]
    position += [NEWER] if newer else []
    position += [STORED] if isinstance(queued_at, UnreadTime) else []
    raw = json.dumps(position, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def decode(cursor: str) -> Position:
    """The position of a cursor made by `encode`. Raises Invalid (HTTP 422, field `cursor`) for
    anything else: bad base64 or JSON, another shape, a time not in `TIME_PATTERN` (a control
    character anywhere, another separator, no time zone), an id out of range."""
    try:
        if len(cursor) > MAX_CURSOR_LENGTH:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        position: Any = json.loads(raw)
        if not (isinstance(position, list) and len(position) >= 2 and position[2:] in FLAGS):
            raise ValueError("not a position")
        text, execution_id = position[:2]
        if not isinstance(text, str) or type(execution_id) is not int or not 1 <= execution_id <= MAX_ID:
            raise ValueError("not a position")
        stored = text if STORED in position[2:] else None
        if stored is None and not TIME_PATTERN.fullmatch(text):
            raise ValueError("not a time as encode writes it")
        queued_at = datetime(1970, 1, 1, tzinfo=UTC) if stored is not None else datetime.fromisoformat(text)
        if queued_at.tzinfo is None:
            raise ValueError("no time zone")
        queued_at = queued_at.astimezone(UTC)
    except (ValueError, OverflowError, binascii.Error, UnicodeDecodeError):
        message = "not a cursor from this API: pass back the `next_cursor` of a previous page"
        raise Invalid.input("cursor", message) from None
    return Position(queued_at, execution_id, newer=NEWER in position[2:], stored=stored)


class Keyset:
    """One history page by keyset: the conditions and order to add to the filters' query (which
    fetches `limit + 1` rows), then `page` to cut what it found into the page and its cursors.
    `cursor` None is the newest page. Raises Invalid for a bad cursor. `columns`: the run's
    `(queued_at, id)` as the query reads them, `Execution`'s by default (a host's runs are read
    from `ExecutionHost`'s copy, whose index has them in this order)."""

    def __init__(self, cursor: str | None, columns: tuple[Any, Any] | None = None) -> None:
        self.position = decode(cursor) if cursor is not None else None
        self.columns = columns or (col(Execution.queued_at), col(Execution.id))

    @property
    def newer(self) -> bool:
        """True when the cursor pages towards newer runs (a `prev_cursor`)."""
        return self.position is not None and self.position.newer

    def conditions(self) -> list[ColumnElement[bool]]:
        """WHERE terms: none on the newest page, else the runs on the cursor's side of its run."""
        if self.position is None:
            return []
        at: Any = self.position.queued_at
        execution_id = self.position.id
        queued, ident = self.columns
        if self.position.stored is not None:  # compared as the text stored (module docstring)
            queued, at = cast(queued, Text), self.position.stored
        if self.position.newer:
            return [and_(queued >= at, or_(queued > at, ident > execution_id))]
        return [and_(queued <= at, or_(queued < at, ident < execution_id))]

    def order(self) -> list[UnaryExpression[Any]]:
        """ORDER BY: newest first, or oldest first for a newer page (the index read forward)."""
        queued, ident = self.columns
        return [queued.asc(), ident.asc()] if self.newer else [queued.desc(), ident.desc()]

    def page(
        self, found: Sequence[Any], limit: int, *, skipped: bool = False
    ) -> tuple[list[Execution], str | None, str | None]:
        """(rows newest first, next_cursor, prev_cursor) from the up to `limit + 1` rows the query
        found, each `(Execution, queued_at, id)` as `columns` read them (the query selects them
        after the run: its cursor is where the ordered index has it, a host row's own copy of
        `queued_at` or a stored text that is no time); `skipped`: the page started `skip` rows
        in. `next_cursor` (older runs) is exact when read older; `prev_cursor` (newer runs) exact
        when read newer. The other way, the page was reached from there, so it is given whenever
        the page has rows (it leads to an empty page only if those runs were deleted since)."""
        more = len(found) > limit
        rows = list(found[:limit])
        if self.newer:
            rows.reverse()
            older_exists, newer_exists = bool(rows), more
        else:
            older_exists, newer_exists = more, bool(rows) and (skipped or self.position is not None)
        first, last = (rows[0], rows[-1]) if rows else (None, None)
        next_cursor = encode(last[1], int(last[2])) if older_exists and last else None
        prev_cursor = encode(first[1], int(first[2]), newer=True) if newer_exists and first else None
        return [row[0] for row in rows], next_cursor, prev_cursor
