"""Lower case in SQL that folds every cased letter on either database, in Unicode's NFC:
`fold(column)`, the form searches compare text in.

PostgreSQL's `lower()` folds every cased letter (the database's UTF-8 character type); SQLite's
built-in `lower()` only folds A-Z, so on SQLite a search for `émile` missed `Émile` while
PostgreSQL found it. `fold` compiles to `lower()` on PostgreSQL and to `opscraft_lower()` on
SQLite, a function every SQLite connection gets (`register`, from db/engine.py): `lower` below,
the same fold as the searched term's (services/like.py) and the scripts' `search_text`. It is for
searches only: the indexes on `lower(name)` keep SQLite's own function.

`lower` is Unicode's simple lowercase mapping, one letter for one letter, as PostgreSQL's
`lower()` folds (character by character, `towlower`). Python's `str.lower` is the full mapping
of SpecialCasing.txt, which differs in two letters: `İ` (U+0130) becomes `i` and a combining dot
(U+0307), and a word-final `Σ` becomes `ς`. With it the term `İstanbul` missed `İstanbul` on
PostgreSQL (whose `lower()` makes it `istanbul`), and `istanbul` missed it on SQLite.

Both sides are then put in NFC (canonical composition, Unicode Standard Annex #15; PostgreSQL's
`normalize(..., NFC)`, which needs the UTF-8 database OpsCraft's are): a letter with an accent has
two canonically equivalent spellings, `é` (U+00E9) and `e` + U+0301 COMBINING ACUTE ACCENT, that
look the same. Compared as stored, `cafe` found a description pasted as `cafe` + U+0301 (its
base letters match) but not one typed `café`, and `café` typed found only one of them; in NFC
on both sides `café` finds both and `cafe` neither. Accents are not folded away (`cafe` does not
find `café`): the comparison is of what people see, as the NFC names of services/names.py.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from sqlalchemy import String
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

SQLITE_FUNCTION = "opscraft_lower"


# The letters whose full lowercase mapping (`str.lower`) is not their simple one, and the latter.
_SIMPLE = str.maketrans({"\u0130": "i", "\u03a3": "\u03c3"})


def lower(text: str) -> str:
    """`text` with every cased letter in lower case by Unicode's simple mapping (one letter for
    one letter, as PostgreSQL's `lower()`: `str.lower`, but `İ` becomes `i` and `Σ` a small
    sigma (U+03C3) anywhere in a word), then in NFC (module doc)."""
    return unicodedata.normalize("NFC", text.translate(_SIMPLE).lower())


class fold(FunctionElement[str]):
    """`fold(column)`: `column` in lower case, every cased letter folded, in NFC (`lower`)."""

    type = String()
    name = "fold"
    inherit_cache = True


@compiles(fold)
def _lower(element: fold, compiler: SQLCompiler, **kw: Any) -> str:
    return f"normalize(lower({compiler.process(element.clauses, **kw)}), NFC)"


@compiles(fold, "sqlite")
def _python_lower(element: fold, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{SQLITE_FUNCTION}({compiler.process(element.clauses, **kw)})"


def register(dbapi_conn: DBAPIConnection) -> None:
    """Give the SQLite connection `dbapi_conn` (stdlib `sqlite3` or SQLAlchemy's aiosqlite
    adapter) the function `SQLITE_FUNCTION`."""
    dbapi_conn.create_function(SQLITE_FUNCTION, 1, _lower_text, deterministic=True)  # type: ignore[attr-defined]


def _lower_text(value: object) -> object:
    return lower(value) if isinstance(value, str) else value
