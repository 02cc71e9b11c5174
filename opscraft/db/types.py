"""Column types shared by all tables."""

from __future__ import annotations

import operator
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.sqltypes import NullType

# The largest id: ids are INTEGER columns, 32-bit on PostgreSQL (which refuses a larger bound
# value with an error, where SQLite just finds nothing).
MAX_ID = 2**31 - 1


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


def utc_text(value: datetime | None) -> str | None:
    """`value` as the API writes every time (pydantic's JSON form of a UTC datetime, ISO 8601 /
    RFC 3339 with `Z`: `2026-12-02T15:54:45.189783Z`), None for None; a naive `value` is UTC.
    For times sent outside a response model: run events over the WebSocket and server-sent
    events, notification payloads (they said `+00:00` where the REST API says `Z`)."""
    if value is None:
        return None
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return aware.isoformat().removesuffix("+00:00") + "Z"


# What a time column holding text that is no time is read as: the earliest time, which does least
# where a time is compared (an expiry is past, a heartbeat lost, a `deleted_at` deleted, as the
# database's own `IS NULL` filters already see such a row).
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class UnreadTime(datetime):
    """`EPOCH`, as `UTCDateTime` hands back a stored value that is no time (`stored`: the text or
    number SQLite held, e.g. `'yesterday'`, `'2026-13-45'`, `5`). A datetime, so Core readers
    compute with it as with `EPOCH`; an ORM load reads it as `EPOCH` and keeps its problem
    (db/stored_shapes.py `Moment`)."""

    stored: Any = None


def unread_time(stored: Any) -> UnreadTime:
    """`UnreadTime` for the value `stored`."""
    value = UnreadTime(1970, 1, 1, tzinfo=UTC)
    value.stored = stored
    return value


class UTCDateTime(sa.TypeDecorator[datetime]):
    """Stores naive UTC on every backend, hands back timezone-aware UTC datetimes.

    A stored value that is no time (SQLite holds any text or number in a DATETIME column: an
    older version's, a manual edit's `yesterday`) is handed back as `unread_time(value)` instead
    of raising: such a row made every list and page holding it a 500. PostgreSQL's `timestamp`
    holds none."""

    impl = sa.DateTime
    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        """The impl's processor then `process_result_value`, a value neither reads being
        `unread_time(value)` (class doc)."""
        read = super().result_processor(dialect, coltype)
        if read is None:
            return None

        def process(value: Any) -> Any:
            try:
                return read(value)
            except (ValueError, TypeError):
                return unread_time(value)

        return process

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        """Store a datetime as naive UTC; a naive value is taken to be UTC already."""
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Read a stored naive datetime back as timezone-aware UTC."""
        return None if value is None else value.replace(tzinfo=UTC)


class _StoredTimeTest(FunctionElement[bool]):
    """A boolean SQL test of one time column's stored value: `sqlite(column's SQL)` on SQLite,
    which holds any value there; `elsewhere` on PostgreSQL, whose `timestamp` holds times only."""

    type = sa.Boolean()
    inherit_cache = True
    elsewhere = "false"

    @staticmethod
    def sqlite(stored: str) -> str:
        """The test's SQLite SQL over the column's SQL `stored`: each subclass gives its own (this
        base is never compiled itself)."""
        raise NotImplementedError


@compiles(_StoredTimeTest)
def _test_elsewhere(element: _StoredTimeTest, _compiler: SQLCompiler, **_kw: Any) -> str:
    return element.elsewhere


@compiles(_StoredTimeTest, "sqlite")
def _test_on_sqlite(element: _StoredTimeTest, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses.clauses
    return element.sqlite(compiler.process(column, **kw))


class no_time(_StoredTimeTest):
    """Whether a time column's stored value is no time, so that a load reads it as `EPOCH`
    (`UTCDateTime`): `no_time(column)`, a boolean SQL expression. On SQLite: a value that is not
    NULL and is no day `YYYY-MM-DD` there is (`yesterday`, `2026-13-45`, `2026-02-30`, a number),
    or whose time of day SQLite cannot read (`2026-12-04 25:00`): as Python's reader refuses
    them (it also takes ISO forms SQLite does not, `20261204`: those few are not caught). On
    PostgreSQL: `false`."""

    inherit_cache = True
    name = "no_time"

    @staticmethod
    def sqlite(stored: str) -> str:
        """SQL (SQLite) true when the column `stored` holds a value that is not a valid calendar date
        (date() returns NULL, or normalises an impossible day like 2026-02-30 to another one).
        """
        day = f"substr({stored}, 1, 10)"
        # `date(x)` alone takes `2026-02-30`; `+0 days` makes it `2026-03-02`, which then differs.
        return f"({stored} IS NOT NULL AND (date({stored}) IS NULL OR date({day}, '+0 days') IS NOT {day}))"


Comparison = Callable[[Any, Any], Any]


def compared(column: Any, op: Comparison, bound: datetime) -> ColumnElement[bool]:
    """`op(column, bound)` (`operator.lt`, `le`, `gt`, `ge` of a `UTCDateTime` column and an
    aware or naive-UTC `bound`) as the rows read: a row whose stored value is no time reads as
    `EPOCH` (`UTCDateTime`), so it matches when `op(EPOCH, bound)` does, whatever text SQLite
    compares (`yesterday` sorts after every time, so `finished_at < cutoff` never matched it:
    output retention kept such a run for ever, a heartbeat `yesterday` was never stale).
    On PostgreSQL `no_time` is `false`, the planner's index range unchanged; on SQLite a bound
    that the epoch meets (`finished_at < cutoff`) adds an `OR no_time(column)` that SQLite
    evaluates row by row rather than as an index range: for background rounds (retention,
    expiries, heartbeats); a list's date filter is `within` (docs/automation.md)."""
    if bound.tzinfo is None:
        bound = bound.replace(tzinfo=UTC)
    if op(EPOCH, bound):
        return sa.or_(op(column, bound), no_time(column))
    return sa.and_(op(column, bound), sa.not_(no_time(column)))


LT, LE, GT, GE = operator.lt, operator.le, operator.gt, operator.ge


class _Dated(_StoredTimeTest):
    """One side of the index range of the stored values that may be times (`within`): on SQLite,
    text that begins with a digit sorts after `'/'` and before `':'` (numbers sort before any
    text, `yesterday` after `':'`); on PostgreSQL `true`. No Boolean type: SQLAlchemy would
    compare the test with 1 on SQLite, hiding the bound from the planner."""

    type = NullType()
    inherit_cache = True
    elsewhere = "true"


class _before_letters(_Dated):
    inherit_cache = True

    @staticmethod
    def sqlite(stored: str) -> str:
        return f"{stored} < ':'"


class _after_numbers(_Dated):
    """Not from `'0'`: the column's NUMERIC affinity would compare that as the number 0."""

    inherit_cache = True

    @staticmethod
    def sqlite(stored: str) -> str:
        return f"{stored} > '/'"


def within(column: Any, since: datetime | None, until: datetime | None) -> list[ColumnElement[bool]]:
    """The conditions of a list's date filter, `since <= column <= until` (either bound None:
    open), among the rows whose stored time may be a time (the history's and the audit log's
    `since`/`until`, the dashboard's last days). A row whose time is no time is in no date
    window, whichever way a bound points (it lists unfiltered, as 1970 with its
    `stored_problem`). On SQLite a bound alone is completed into an index range that leaves out
    numbers and text after the digits (`_Dated`: `since` gets `< ':'`, `until` `> '/'`; two
    bounds are one already), no function per row: an `OR no_time(...)`, as `compared` adds for
    an `until`, made SQLite read every newer run, and `no_time` per row tripled a `since`. A
    text that begins with a digit and is no time (`2026-13-45`) is still compared as text."""
    found = []
    if since is not None:
        found.append(column >= since)
    if until is not None:
        found.append(column <= until)
    if (since is None) != (until is None):
        found.append(_after_numbers(column) if since is None else _before_letters(column))
    return found


def earlier(column: Any, bound: Any) -> ColumnElement[bool]:
    """`column < bound` as the rows read (`compared`), for a `bound` known only as SQL (a bind
    parameter of a statement built once) that is later than the epoch: `column < bound OR
    no_time(column)`."""
    return sa.or_(column < bound, no_time(column))


class StoredEnum(sa.Enum):
    """`sa.Enum` (the same column: a native type on PostgreSQL, VARCHAR on SQLite) that hands
    back text none of its values as the text itself instead of raising LookupError: SQLite holds
    any text there (an older version's value, a manual edit), and such a row made every answer
    holding it a 500. `db.stored_shapes.OneOf` then reads it as a value that does least and says
    what was stored. PostgreSQL's type refuses such text when it is written."""

    cache_ok = True

    def _object_value_for_elem(self, elem: Any) -> Any:
        try:
            return super()._object_value_for_elem(elem)
        except LookupError:
            return elem
