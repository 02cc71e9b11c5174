"""Every write and every query refuses text the databases cannot store (see `db.text`), whatever
the caller: API, UI pages or CLI. Nothing is half-written: the check runs before any SQL is sent.

- Before each flush, every new row and every changed column of a changed row is checked, JSON
  columns to their last nested key and value: `Invalid` names the field (`description`,
  `parameters.P`), so the UI can show the message next to it.
- Before each statement the runtime's engine sends, its bound text is checked (search terms,
  login names...): `Invalid` naming the query. This also catches what no flush sees.

The API refuses such text earlier, at the door (`security.http.RequestLimitsMiddleware`); these
hooks make the same rule hold for every other way in. `Text` is the request models' type for free
text: the same rule as a field validator (so a form names the field before anything is written),
and documented in the OpenAPI schema as a pattern.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any, get_args
from uuid import UUID

from pydantic import AfterValidator, Field
from sqlalchemy import event, inspect
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from opscraft.db.text import find_unstorable, problem
from opscraft.services.errors import Invalid

# ECMA-262 (JSON Schema) form of "no NUL"; a lone surrogate cannot be sent as UTF-8 at all.
NO_NUL_PATTERN = "^[^\\u0000]*$"


def _storable(value: str) -> str:
    message = problem(value)
    if message:
        raise ValueError(message)
    return value


Text = Annotated[str, AfterValidator(_storable), Field(json_schema_extra={"pattern": NO_NUL_PATTERN})]
"""Free text both databases can store (a `str` field type for request models)."""


def limited(text: Any, max_length: int) -> Any:
    """`text` (`Text`, or a type built on it such as `invisible.OptionalLabel`) of at most
    `max_length` characters, for a field that may also be None (`limited(Text, 500) | None`).

    pydantic checks a limit given in such a field's `Field(max_length=...)` after the type's
    validators, and refuses a long value with "Value should have at most 500 items after
    validation" (items, of a text); here the string's limit comes first and says "String should
    have at most 500 characters", as for a field that cannot be None."""
    return Annotated[str, Field(max_length=max_length), *get_args(text)[1:]]


# Values that hold no text, skipped without a walk (their exact types: a `str` enum is checked).
_NO_TEXT: frozenset[type] = frozenset({int, bool, float, datetime, date, Decimal, UUID})


def _changed_values(obj: object, new: bool) -> Iterable[tuple[str, Any]]:
    state = inspect(obj)
    if new:  # every value set on it (one never set reads as None: no text)
        values = state.dict
        for attr in state.mapper.column_attrs:
            yield attr.key, values.get(attr.key)
        return
    for attr in state.mapper.column_attrs:
        if state.attrs[attr.key].history.has_changes():
            yield attr.key, state.attrs[attr.key].value


def _check(rows: Iterable[tuple[object, bool]]) -> None:
    """Raise `Invalid` naming each field of `rows` ((row, whether it is new)) whose text the
    databases cannot store. A value without text (None, a number, a time) costs a type test, a
    text one regular-expression search, a JSON value the walk of `find_unstorable`: the check of a
    new run's row went from about 40 to 6 us (docs/benchmarks.md, session 49)."""
    errors: list[dict[str, str]] = []
    for obj, new in rows:
        for key, value in _changed_values(obj, new):
            if value is None or value.__class__ in _NO_TEXT:
                continue
            if isinstance(value, str):
                message = problem(value)
                if message:
                    errors.append({"field": key, "message": message})
                continue
            errors += ({"field": path, "message": message} for path, message in find_unstorable(value, key))
    if errors:
        raise Invalid.inputs(errors)


def _before_flush(session: Session, _context: object, _instances: object) -> None:
    _check([*((obj, True) for obj in session.new), *((obj, False) for obj in session.dirty)])


def check_new_row(row: object) -> None:
    """The flush check for a new row that no session flushes (`db.group_commit`): raises `Invalid`
    naming each field whose text the databases cannot store."""
    _check([(row, True)])


def _texts(parameters: Any) -> Iterable[str]:
    """The text values of a statement's parameters (a dict, a sequence, or many of them)."""
    rows = parameters if isinstance(parameters, list) else [parameters]
    for row in rows:
        values = row.values() if isinstance(row, dict) else row if isinstance(row, tuple | list) else ()
        yield from (v for v in values if isinstance(v, str))


def _before_cursor_execute(
    _conn: object, _cursor: object, statement: str, parameters: Any, _context: object, _many: bool
) -> None:
    for text in _texts(parameters):
        message = problem(text)
        if message:
            raise Invalid.inputs([{"field": "query", "message": message}])


def install(engine: Engine) -> None:
    """Register both checks: the flush check for every ORM session, the statement check on `engine`
    (the sync engine behind the runtime's AsyncEngine). Idempotent."""
    if not event.contains(Session, "before_flush", _before_flush):
        event.listen(Session, "before_flush", _before_flush)
    if not event.contains(engine, "before_cursor_execute", _before_cursor_execute):
        event.listen(engine, "before_cursor_execute", _before_cursor_execute)
