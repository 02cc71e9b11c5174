"""List filters of an enum-like text column by the choice its rows read as (`stored_shapes.OneOf`).

SQLite holds any text in such a column (an older version's status, a manual edit's): the row
reads as the column's `fallback` (a run's status `x` as `failed`, a script's `sms` type as
`bash`), and every count counts it so (`services.execution_counts`); a filter `status = 'failed'`
skipped it, so the list said fewer runs than the dashboard. `reading_as` is the filter that
agrees: on SQLite, for the fallback, `column IN (fallback, <the other texts stored>)`, the
others found by index searches (`stored_others`); `column = value` otherwise, and
always on PostgreSQL, whose enum types refuse other text when it is written. With no other text
stored (every database written by this version) the condition is `column = value` exactly, its
plan unchanged (`ix_executions_status_queued`: tests/history/test_stored_reads_in_queries.py
shows it; with some, the same index is searched once per text).
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

from sqlalchemy import and_, func, literal, select, union_all
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db import stored_shapes


def _between(column: Any, low: Any, high: Any) -> ColumnElement[bool]:
    """`low < column < high`, either bound None: open."""
    return and_(*([] if low is None else [column > low]), *([] if high is None else [column < high]))


async def stored_others(session: AsyncSession, column: Any, choices: tuple[str, ...]) -> list[Any]:
    """The distinct values of `column` (an ORM attribute, indexed) that are none of `choices`,
    as stored: [] on PostgreSQL, whose enum holds its choices only, without a query. On SQLite
    the least stored value of each range of the text order between the choices (`< first`,
    `> a AND < b`, `> last`: a number or blob SQLite holds sorts before or after all text), each
    one index search (`min`), then of each range found not empty the next above it, until none
    is left: one query of index searches when no other text is stored, where `NOT IN`, or a
    `DISTINCT` over the ranges, read the whole index."""
    if session.bind is None or session.bind.dialect.name != "sqlite":
        return []
    ordered = sorted(choices)
    ranges: list[tuple[Any, Any]] = list(pairwise([None, *ordered, None]))
    found: list[Any] = []
    while ranges:
        least = [
            select(literal(i).label("i"), func.min(column).label("v")).where(_between(column, low, high))
            for i, (low, high) in enumerate(ranges)
        ]
        rows = dict((await session.exec(union_all(*least))).all())  # type: ignore[call-overload]
        ranges_left = []
        for i, (_, high) in enumerate(ranges):
            if rows.get(i) is not None:
                found.append(rows[i])
                ranges_left.append((rows[i], high))
        ranges = ranges_left
    return found


async def reading_as(session: AsyncSession, column: Any, value: Any) -> ColumnElement[bool]:
    """The rows whose `column` (an ORM attribute of a column `stored_shapes.expect` gave a
    `OneOf`) reads as `value`, one of its choices: for its fallback also those holding text none
    of its choices (module doc)."""
    one_of = stored_shapes.expected(column.class_, column.key)
    assert isinstance(one_of, stored_shapes.OneOf), f"{column} is no enum-like column"
    equal: ColumnElement[bool] = column == value
    if str(value) != str(one_of.fallback):
        return equal
    others = await stored_others(session, column, one_of.choices)
    return column.in_([value, *others]) if others else equal
