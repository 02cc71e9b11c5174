"""New table rows without SQLModel's per-field constructor (issue 15's lean request path).

`Model(**values)` on a SQLModel table class walks every field (alias lookup, default,
`setattr` through both SQLAlchemy's instrumentation and Pydantic's `__setattr__`): a large part
of the submit path's CPU for the execution row, its audit event and the user cache's copy.
`new_row` builds the same object the way SQLAlchemy builds a loaded row (`ClassManager.
new_instance`: `__new__` and a fresh `InstanceState`), then fills `__dict__` at once and marks
every value as set, as the constructor's instrumented `setattr`s would: the result is a
transient row that flushes, inserts and dumps exactly like one from the constructor
(tests/test_rows.py compares them field for field on every model it is used on).
"""

from __future__ import annotations

import copy
import enum
from functools import cache, partial
from typing import Any, TypeVar

from sqlalchemy.orm import instrumentation
from sqlalchemy.orm.base import NO_VALUE
from sqlmodel import SQLModel

Row = TypeVar("Row", bound=SQLModel)
# Defaults of these types are shared between rows; any other is copied per row, as Pydantic's
# `FieldInfo.get_default` does (`smart_deepcopy`).
_IMMUTABLE = (type(None), bool, int, float, str, bytes, enum.Enum, frozenset)


_Shape = tuple[Any, frozenset[str], frozenset[str], tuple[tuple[str, Any, Any], ...]]


@cache
def _shape(model_cls: type[SQLModel]) -> _Shape:
    """(class manager, every field, the required ones, (name, default, factory) of the others)."""
    manager = instrumentation.manager_of_class(model_cls)
    if manager is None or model_cls.__sqlmodel_relationships__:  # type: ignore[attr-defined]
        raise TypeError(f"{model_cls.__name__} is not a table model without relationships")
    fields = model_cls.model_fields
    required = frozenset(name for name, field in fields.items() if field.is_required())
    if any(field.default_factory_takes_validated_data for field in fields.values()):
        raise TypeError(f"{model_cls.__name__} has a default factory that reads other fields")
    defaults = tuple(
        (
            name,
            field.default,
            field.default_factory
            if field.default_factory is not None or isinstance(field.default, _IMMUTABLE)
            else partial(copy.deepcopy, field.default),
        )
        for name, field in fields.items()
        if not field.is_required()
    )
    return manager, frozenset(fields), required, defaults


def new_row(model_cls: type[Row], **values: Any) -> Row:
    """A new (transient) `model_cls` row holding `values`, its other fields at the model's
    defaults (a `default_factory` is called once per row, as by the constructor).

    Precondition: `values` are already valid for their fields (types, lengths, enums): nothing
    here validates them, exactly as the table model's constructor does not; callers are services
    that checked their input, or copies of rows read from the database. Raises `TypeError` for a
    name that is not a field, or a required field left out (the constructor would silently drop
    the first and leave the second unset). `model_cls` must have no relationships."""
    manager, fields, required, defaults = _shape(model_cls)
    given = values.keys()
    if not given <= fields or not required <= given:
        unknown, missing = sorted(given - fields), sorted(required - given)
        raise TypeError(f"{model_cls.__name__}: unknown fields {unknown}, missing fields {missing}")
    row: Row = manager.new_instance()
    data = row.__dict__
    data.update(values)
    for name, default, factory in defaults:
        if name not in data:
            data[name] = factory() if factory is not None else default
    state = row._sa_instance_state  # type: ignore[attr-defined]
    state.committed_state = dict.fromkeys(fields, NO_VALUE)
    state.modified = True
    object.__setattr__(row, "__pydantic_fields_set__", set(given))
    return row
