"""One compiled-SQL cache for every engine of a test process (`share_across_engines`).

SQLAlchemy compiles each distinct statement once per engine (the engine's cache, and the mappers'
for the ORM's INSERT/UPDATE/DELETE, key each entry by the engine's dialect object). A test starts
OpsCraft on an engine of its own, so every test compiled again each statement it and the
runtime's first background rounds run: 18.6 % of the CPU of tests/test_secrets_api.py
(`py-spy --gil`, session 28). Here the caches key entries by what a compiled statement depends
on, the dialect's class and its settings, so that a test reuses what an earlier test's engine of
the same kind compiled: the statements, their parameters and the database are each test's own;
only the SQL text and its processors are reused, as one long-running server reuses them.
"""

from __future__ import annotations

import weakref
from collections.abc import Hashable
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.orm import Mapper
from sqlalchemy.util import LRUCache

_PLAIN = (str, int, float, bool, type(None), tuple)
_kinds: weakref.WeakKeyDictionary[Dialect, Hashable] = weakref.WeakKeyDictionary()


def _kind(dialect: Dialect) -> Hashable:
    """What a statement's compiled form depends on in `dialect`: its class and every setting it
    holds after its first connection (server version, paramstyle, flags: by value; JSON
    (de)serializers: by identity; helper objects such as the DBAPI module: by class)."""
    kind = _kinds.get(dialect)
    if kind is None:
        settings = []
        for name, value in sorted(vars(dialect).items()):
            if isinstance(value, weakref.WeakKeyDictionary):  # the dialect's own memo of type processors
                continue
            if isinstance(value, _PLAIN) or (callable(value) and hasattr(value, "__code__")):
                settings.append((name, value))
            else:
                settings.append((name, type(value).__qualname__))
        kind = (type(dialect), tuple(settings))
        _kinds[dialect] = kind
    return kind


class _AcrossEngines(LRUCache):  # type: ignore[type-arg]
    """A compiled cache whose keys, (dialect, statement key, ...), hold the dialect's `_kind`."""

    def get(self, key: Any, default: Any = None) -> Any:
        return super().get((_kind(key[0]), *key[1:]), default)

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__((_kind(key[0]), *key[1:]), value)


def share_across_engines() -> None:
    """Every engine, at its first connection, and every mapper use one cache each of this process."""
    statements = _AcrossEngines(5000)
    orm_writes = _AcrossEngines(5000)

    @event.listens_for(Engine, "engine_connect")
    def _shared(connection: Connection) -> None:
        if connection.engine._compiled_cache is not None:  # None: the engine caches nothing
            connection.engine._compiled_cache = statements

    Mapper._compiled_cache = property(lambda _mapper: orm_writes)  # type: ignore[assignment,method-assign]
