"""Paging of every list of the API and the UI: `{items, total, skip, limit}`.

docs/api.md ("Lists page with `skip` and `limit` (at most 500)") states it. A page is the `limit`
rows after the first `skip` of a list in a stable order (every list's ORDER BY ends with a unique
column, so two requests never see tied rows swapped), with `total`, the rows of the whole list.
A `limit` outside 1..500 or a `skip` outside 0..2147483647 is a 422 naming the field, from the
API's `Limit`/`Skip` query types and from `check` here for the UI and other callers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from sqlalchemy import func
from sqlalchemy.sql import Select
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db.types import MAX_ID
from opscraft.services.errors import Invalid

T = TypeVar("T")

# Rows one list page may hold (`limit`); the API's `Limit` query type and the services check it.
MAX_PAGE = 500
# A page's size when the caller says none (the API's default `limit`).
DEFAULT_PAGE = 50


def check(skip: int, limit: int) -> None:
    """`Invalid` (422 naming `skip` or `limit`) unless 0 <= `skip` <= MAX_ID and
    1 <= `limit` <= MAX_PAGE."""
    for field, value, low, high in (("skip", skip, 0, MAX_ID), ("limit", limit, 1, MAX_PAGE)):
        if not low <= value <= high:
            raise Invalid.input(field, f"must be between {low} and {high}")


async def page(session: AsyncSession, query: Select[Any], skip: int, limit: int) -> tuple[list[Any], int]:
    """The rows of `query` (already ordered, on a unique column last) from `skip` on, at most
    `limit` of them, and how many rows the whole query has; `Invalid` for bounds `check` refuses."""
    check(skip, limit)
    counted = select(func.count()).select_from(query.order_by(None).subquery())
    total = (await session.exec(counted)).one()
    rows = await session.exec(query.offset(skip).limit(limit))
    return list(rows.all()), int(total)


async def every(fetch: Callable[[int, int], Awaitable[tuple[Sequence[T], int]]]) -> list[T]:
    """Every row of a paged list, read `MAX_PAGE` at a time through `fetch(skip, limit)`: for the
    UI's tables and name maps, which show a whole list (a script's webhooks, the channels)."""
    found: list[T] = []
    while True:
        rows, total = await fetch(len(found), MAX_PAGE)
        found.extend(rows)
        if not rows or len(found) >= total:
            return found
