"""Lower case in SQL that folds every cased letter on either database: `fold(column)`.

PostgreSQL's `lower()` folds every cased letter (the database's UTF-8 character type); SQLite's
built-in `lower()` only folds A-Z, so on SQLite a search for `émile` missed `Émile` while
PostgreSQL found it. `fold` compiles to `lower()` on PostgreSQL and to `opscraft_lower()` on
SQLite, a function every SQLite connection gets (`register`, from db/engine.py): Python's
`str.lower`, the same fold as the searched term's (services/like.py). It is for searches only:
the indexes on `lower(name)` keep SQLite's own function.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import String
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

SQLITE_FUNCTION = "opscraft_lower"


class fold(FunctionElement[str]):
    """`fold(column)`: `column` in lower case, every cased letter folded (`str.lower`)."""

    type = String()
    name = "fold"
    inherit_cache = True


@compiles(fold)
def _lower(element: fold, compiler: SQLCompiler, **kw: Any) -> str:
    return f"lower({compiler.process(element.clauses, **kw)})"


@compiles(fold, "sqlite")
def _python_lower(element: fold, compiler: SQLCompiler, **kw: Any) -> str:
    return f"{SQLITE_FUNCTION}({compiler.process(element.clauses, **kw)})"


def register(dbapi_conn: DBAPIConnection) -> None:
    """Give the SQLite connection `dbapi_conn` (stdlib `sqlite3` or SQLAlchemy's aiosqlite
    adapter) the function `SQLITE_FUNCTION`."""
    dbapi_conn.create_function(SQLITE_FUNCTION, 1, _lower_text, deterministic=True)  # type: ignore[attr-defined]


def _lower_text(value: object) -> object:
    return value.lower() if isinstance(value, str) else value
