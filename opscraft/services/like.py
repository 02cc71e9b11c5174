"""Substring search with SQL `LIKE`: what a person types is matched literally.

`%` and `_` are `LIKE`'s wildcards and `\\` its escape here: a search for `DB_` must not match
`DBX`, nor `%` every row.

Text is compared in lower case and in Unicode's NFC on both sides (`db.fold`): `café` finds a
description typed `café` (U+00E9) and one pasted as `cafe` + U+0301 alike, and `cafe` finds
neither (accents are not folded away). A column searched through `fold` is normalized as it is
read; a column stored already folded (a script's `search_text`, under a trigram index that a
function around the column would bypass) is in NFC from its row's last save, and migration 0039
put the rows saved before this rule in NFC too; the term is still matched in its decomposed
spelling as well (`spellings`), for a row a manual edit stored so.
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
    and NFC (`db.fold.lower`, as the column's side)."""
    return _contains(lower(term))


def _contains(text: str) -> str:
    """The `LIKE` pattern of the texts holding `text` as it is (its wildcards escaped)."""
    escaped = text.replace(ESCAPE, ESCAPE * 2).replace("%", ESCAPE + "%").replace("_", ESCAPE + "_")
    return f"%{escaped}%"


def spellings(term: str) -> list[str]:
    """`term` composed and decomposed (Unicode NFC, then NFD), each once: the spellings a text
    stored as it came may hold (a folded column saved before the NFC rule, module doc; a name
    the audit trail recorded as typed)."""
    return list(dict.fromkeys(unicodedata.normalize(form, term) for form in ("NFC", "NFD")))


def holds(column: Any, term: str, *, folded: bool = False) -> ColumnElement[bool]:
    """`column` holds `term` literally, in any case (every cased letter: `db.fold`) and in any
    canonically equivalent spelling (NFC on both sides). `folded`: the column is stored in lower
    case and NFC (`db.fold.lower`, as a script's `search_text`), so it is compared as stored, in
    the term's decomposed spelling too (module doc)."""
    if not folded:
        return fold(column).like(pattern(term), escape=ESCAPE)
    return or_(*(column.like(_contains(spelling), escape=ESCAPE) for spelling in spellings(lower(term))))
