"""Substring search with SQL `LIKE`: what a person types is matched literally.

`%` and `_` are `LIKE`'s wildcards and `\\` its escape here: a search for `DB_` must not match
`DBX`, nor `%` every row.

A letter with an accent has two canonically equivalent spellings (Unicode's NFC `é`, one
character, and NFD `e` + U+0301 COMBINING ACUTE ACCENT): most keyboards type the first, macOS
file names and some pastes give the second, and both look the same. A search matches either
(`holds`), whatever the row stored: `café` typed found no description pasted as `cafe` + accent.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from sqlalchemy import or_
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


def spellings(term: str) -> list[str]:
    """`term` composed and decomposed (Unicode NFC, then NFD), each once: the spellings of one
    text a stored row may hold (module doc)."""
    return list(dict.fromkeys(unicodedata.normalize(form, term) for form in ("NFC", "NFD")))


def holds(column: Any, term: str, *, folded: bool = False) -> ColumnElement[bool]:
    """`column` holds `term` literally, in any case (every cased letter: `db.fold`) and in either
    spelling of its accented letters (`spellings`). `folded`: the column is already in lower
    case (`db.fold.lower`, as a script's `search_text`), so it is compared as stored."""
    side = column if folded else fold(column)
    return or_(*(side.like(pattern(spelling), escape=ESCAPE) for spelling in spellings(term)))
