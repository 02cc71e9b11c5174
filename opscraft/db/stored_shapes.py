"""JSON columns, and enum-like text columns, read in the shape their code expects, whatever a
row holds.

A JSON column takes any JSON: a row written by an older version, restored from a backup or edited
by hand may hold a list where the code reads an object (`mapping`, `config`), text where it reads
a list (`events`), a number where it reads text. Read as stored, such a row made every list, page,
fire or delivery holding it a 500. `expect(Model, column=Shape(...))` (db/models/__init__.py, one
table for every JSON column) makes each loaded row of `Model` hold a value of the expected shape:
a column whose stored value is another shape is read as its empty value (`{}`, `[]` or None), the
row's `problems(row)` say what was stored instead (`note(row)` as one sentence for people), and the
stored value is left as it is in the database until a save replaces it (a loaded value is never
written back: nothing a user stored is lost unseen).

Readers that only show a row need nothing more (it lists and reads); readers that act on it (a
webhook call, a chained run, a schedule's fire, a delivery) refuse it with `note(row)` and log it;
pages and API answers show `note(row)` next to the row (`stored_problem`), and a save that sends
the column anew clears its problem.

An enum-like text column (`OneOf`: a channel's `kind`, a schedule's policies, a user's `role`)
is the same: a value none of its choices (`sms`, a policy a later version dropped) made every
answer holding the row a 500; it is read as the choice that does least, its problem kept alike.

A time column (`Moment`, every `UTCDateTime` column: `expect_times`) holding text or a number
that is no time (SQLite holds any: `yesterday`, `2026-13-45`) is read as `db.types.EPOCH`, the
time that does least where times are compared, its problem kept alike.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import Mapper
from sqlalchemy.orm.attributes import set_committed_value

from opscraft.db.types import EPOCH, UnreadTime, UTCDateTime, utc_text

_INFO_KEY = "stored_shapes_problems"
SHOWN_CHARS = 80  # of a refused stored value, in its problem


@dataclass(frozen=True)
class Shape:
    """What one JSON column must hold: a JSON `kind` (`dict` for an object, `list` for an
    array) whose every value (object) or item (array) is of type `each` (`str` for text, `dict`
    for objects, `int` for whole numbers; None: any JSON), or null when `nullable`. `shown`:
    a problem quotes the stored value (False for a column that may hold a credential, such as a
    channel's `config` with a webhook URL's token: its JSON kind alone is said). `check`: a
    further rule for a value of the right kind (`refine`), its problem or None."""

    kind: type[dict[str, Any]] | type[list[Any]]
    each: type | None = None
    nullable: bool = False
    shown: bool = True
    check: Callable[[Any], str | None] | None = None

    def empty(self) -> Any:
        """The value a row whose stored value has another shape is read as."""
        return None if self.nullable else self.kind()

    def expected(self) -> str:
        """The shape in words: `an object of text values`, `a list of objects`..."""
        whole = "an object" if self.kind is dict else "a list"
        if self.each is None:
            return whole + (" or null" if self.nullable else "")
        parts = "values" if self.kind is dict else "items"
        return f"{whole} of {_KIND_NAMES[self.each]} {parts}" + (" or null" if self.nullable else "")

    def problem(self, value: Any) -> str | None:
        """Why `value` (as the JSON column hands it back) is not of this shape, None when it is."""
        if value is None and self.nullable:
            return None
        if not isinstance(value, self.kind):
            return f"stored as {_described(value, self.shown)}, not {self.expected()}"
        if self.each is not None:
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if not _is(item, self.each):
                    return f"stored with {key!r} as {_described(item, self.shown)}, not {self.expected()}"
        return None if self.check is None else self.check(value)


@dataclass(frozen=True)
class OneOf:
    """What an enum-like text column must hold: one of `choices` (a StrEnum's values). A row
    holding other text is read as `fallback`, the choice that does least (a role's `viewer`, a
    script's `draft`), its problem kept as a JSON column's is (`problems`, `note`)."""

    choices: tuple[str, ...]
    fallback: Any  # a member of the column's StrEnum (what the ORM hands back for the others)

    @classmethod
    def of(cls, enum: Iterable[Any], fallback: Any) -> OneOf:
        """`OneOf` the members of `enum` (a StrEnum), read as `fallback` (one of them)."""
        return cls(tuple(str(member) for member in enum), fallback)

    def empty(self) -> Any:
        """The value a row holding other text is read as."""
        return self.fallback

    def problem(self, value: Any) -> str | None:
        """Why `value` is none of `choices`, None when it is one."""
        if value in self.choices:
            return None
        return f"stored as {_short(value)}, none of {', '.join(self.choices)}"


@dataclass(frozen=True)
class Moment:
    """What a time column (`db.types.UTCDateTime`) must hold: a time. A stored value its type
    could not read (`db.types.UnreadTime`) is read as `EPOCH`, its problem kept as a JSON
    column's is."""

    def empty(self) -> Any:
        """The value a row holding no time there is read as."""
        return EPOCH

    def problem(self, value: Any) -> str | None:
        """Why `value` (as `UTCDateTime` hands it back) is no time, None when it is one."""
        if isinstance(value, UnreadTime):
            return f"stored as {_short(value.stored)}, not a time"
        return None


_KIND_NAMES = {str: "text", dict: "object", int: "whole number", list: "list"}


def _is(value: Any, kind: type) -> bool:
    return isinstance(value, kind) and not (kind is int and isinstance(value, bool))


def _described(value: Any, shown: bool) -> str:
    """`value`'s JSON kind and, when `shown`, a short form of it: `a list ([1, 2])`."""
    if value is None:
        kind = "null"
    elif isinstance(value, bool):
        kind = "a boolean"
    elif isinstance(value, int | float):
        kind = "a number"
    elif isinstance(value, str):
        kind = "text"
    elif isinstance(value, list):
        kind = "a list"
    else:
        kind = "an object"
    return f"{kind} ({_short(value)})" if shown else kind


def _short(value: Any) -> str:
    """`repr(value)`, cut to `SHOWN_CHARS` characters."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


Expected = Shape | OneOf | Moment
_SHAPES: dict[type, dict[str, Expected]] = {}


def expect(model: type, **columns: Expected) -> None:
    """Read `model`'s JSON `columns` (attribute name -> `Shape`), enum-like text columns
    (-> `OneOf`) and time columns (-> `Moment`) as this module says: listens to the ORM's `load`
    and `refresh` of `model`'s rows and to each column's `set`. A later call adds columns."""
    if model not in _SHAPES:
        _SHAPES[model] = {}
        shapes = _SHAPES[model]

        def loaded(target: Any, _context: Any, attrs: Any = None) -> None:
            _check(target, shapes, attrs)

        event.listen(model, "load", loaded)
        event.listen(model, "refresh", loaded)
    _SHAPES[model].update(columns)
    for name in columns:
        event.listen(getattr(model, name), "set", _forget(name))


def expect_times(mappers: Iterable[Mapper[Any]]) -> None:
    """`expect` a `Moment` of every `UTCDateTime` column of each of `mappers` (the tables'):
    every time column is one whose stored value may be no time."""
    for mapper in mappers:
        times = {
            prop.key: Moment()
            for prop in mapper.column_attrs
            if any(isinstance(column.type, UTCDateTime) for column in prop.columns)
        }
        if times:
            expect(mapper.class_, **times)


def refine(model: type, column: str, check: Callable[[Any], str | None]) -> None:
    """Add `check` to the shape `expect` gave `model.column`: a rule of the layer that owns the
    value's meaning (services/parameters.py for parameter declarations), which db/ cannot
    import. Rows loaded from then on are read with it."""
    columns = _SHAPES[model]
    shape = columns[column]
    assert isinstance(shape, Shape), f"{model.__name__}.{column} is no JSON column"
    columns[column] = replace(shape, check=check)


def read(model: type, values: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """`values` (column -> value, as a Core statement hands them back: the submit path, a
    worker's claim, a cache's copy) read as an ORM load of `model` reads them: each column of a
    shape `expect` (and `refine`) gave holding another is read as its empty value. Returns those
    values, and the problems (column -> problem, as `problems` says them; {} when none)."""
    shapes = _SHAPES[model]
    shown, found = dict(values), {}
    for name, value in values.items():
        shape = shapes.get(name)
        problem = None if shape is None else shape.problem(value)
        if shape is not None and problem is not None:
            found[name] = problem
            shown[name] = shape.empty()
    return shown, found


def expected(model: type, column: str) -> Expected | None:
    """What `expect` said `model.column` must hold (None: nothing)."""
    return _SHAPES.get(model, {}).get(column)


def as_loaded(model: type, column: str, value: Any) -> Any:
    """`value` of `model.column` read by a Core statement as a load of `model` reads it (`read`):
    a status none of today's as `failed`, a role as `viewer`."""
    return read(model, {column: value})[0][column]


def worded(found: Mapping[str, str]) -> str:
    """Problems (`problems`, `read`) as one phrase: `parameters: stored as text ('P'), not a list
    of object items; script_type: stored as 'perl', none of bash, python, ansible, terraform`."""
    return "; ".join(f"{name}: {problem}" for name, problem in sorted(found.items()))


def unread(row: Any) -> dict[str, tuple[str, Any]]:
    """What `row` as loaded holds that could not be read (column -> (problem, stored value)), to
    be given to a copy of it by `mark_unread` (a cache keeps a row's values, not its state)."""
    state = inspect(row, raiseerr=False)
    return {} if state is None else dict(state.info.get(_INFO_KEY, {}))


def mark_unread(row: Any, found: Mapping[str, tuple[str, Any]]) -> None:
    """Give `row` (a copy of a loaded row, holding the values it read) the problems `unread`
    took from the original: `problems`, `note` and `changed` then say of it what of the original."""
    if found:
        inspect(row).info[_INFO_KEY] = dict(found)


def _check(row: Any, columns: dict[str, Expected], attrs: Any) -> None:
    state = inspect(row)
    loaded = state.dict
    for name, shape in columns.items():
        if (attrs is not None and name not in attrs) or name not in loaded:
            continue  # not (re)loaded now: a deferred column, or a refresh of other columns
        stored = loaded[name]
        problem = shape.problem(stored)
        if problem is not None:
            state.info.setdefault(_INFO_KEY, {})[name] = (problem, stored)
            set_committed_value(row, name, shape.empty())
        elif _INFO_KEY in state.info:  # a refresh: what it held before is gone
            state.info[_INFO_KEY].pop(name, None)


def _forget(name: str) -> Any:
    """The `set` listener of column `name`: a value set replaces the one stored, so its problem
    goes, and the stored value becomes what the change is compared with (the empty value read in
    its place may equal the new one: `{}` sent for `[1, 2]` must be written)."""

    def forget(target: Any, value: Any, _old: Any, _initiator: Any) -> Any:
        state = inspect(target)
        unread = state.info.get(_INFO_KEY, {}).pop(name, None)
        if unread is not None and name not in state.committed_state:
            state.committed_state[name] = unread[1]
        return value

    return forget


def problems(row: Any) -> dict[str, str]:
    """Column name -> what its stored value was instead of the expected shape (`mapping:
    stored as a list ([1, 2]), not an object of text values`), for `row` as loaded; {} when every
    JSON column held its shape (or `row` was never loaded from the database)."""
    state = inspect(row, raiseerr=False)
    found = {} if state is None else state.info.get(_INFO_KEY, {})
    return {name: problem for name, (problem, _stored) in found.items()}


def changed(row: Any, values: dict[str, Any]) -> dict[str, Any]:
    """The items of `values` (column -> value an update sets) that change `row`: those that differ
    from what it reads, and those replacing a value stored in another shape (`problems`) even
    when the value read in its place is the one sent (a user's role `root`, read as `viewer`,
    set to `viewer`: the stored `root` and its problem must go)."""
    unread = problems(row)
    return {key: value for key, value in values.items() if key in unread or getattr(row, key) != value}


def note(row: Any) -> str | None:
    """`problems(row)` as one sentence saying what each column is read as and what to do, None
    when there are none: `mapping: stored as a list ([1]), not an object of text values, read as
    {} (edit or delete it)`."""
    found = problems(row)
    if not found:
        return None
    shapes = _SHAPES[type(row)]
    listed = "; ".join(
        f"{name}: {problem}, read as {json.dumps(shapes[name].empty(), default=utc_text)}"
        for name, problem in sorted(found.items())
    )
    return f"{listed} (edit or delete it)"
