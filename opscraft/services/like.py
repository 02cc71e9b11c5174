"""Substring search with SQL `LIKE`: what a person types is matched literally.

`%` and `_` are `LIKE`'s wildcards and `\\` its escape here: a search for `DB_` must not match
`DBX`, nor `%` every row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.sql.elements import ColumnElement

from opscraft.db.fold import fold, lower

ESCAPE = "\\"


def trimmed(search: str | None) -> str:
    """A list's `search` without its surrounding blanks ("" when nothing is left: no filter), as
    the UI's search boxes send it: through the API, `?search=%20alice` found nobody and a blank
    `?search=%20` matched nothing instead of everything."""
    return (search or "").strip()


def pattern(term: str) -> str:
    """The `LIKE` pattern (escape character `ESCAPE`) of the texts holding `term` in lower case
    (`db.fold.lower`, as the column's side)."""
    escaped = lower(term).replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")
    return f"%{escaped}%"


def holds(column: Any, term: str) -> ColumnElement[bool]:
    """`column` (any case, every cased letter: `db.fold`) holds `term` literally."""
    return fold(column).like(pattern(term), escape=ESCAPE)
