"""Column types shared by all tables."""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.sqltypes import NullType

from opscraft.db import clock

# The largest id: ids are INTEGER columns, 32-bit on PostgreSQL (which refuses a larger bound
# value with an error, where SQLite just finds nothing).
MAX_ID = 2**31 - 1


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC, on the database server's clock (`db.clock.now`:
    this machine's, corrected by the offset last measured; this machine's own before the first
    measure and on SQLite). Processes on machines whose clocks disagree then agree on every
    moment they store and compare (fire times, expiries, heartbeats)."""
    return clock.now()


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
# What a bind parameter's bound is taken to be in `compared`: a time after the epoch.
_AFTER_EPOCH = datetime(1970, 1, 2, tzinfo=UTC)


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


# The form SQLAlchemy stores every time in on SQLite (`2026-12-04 21:48:07.123456`, UTC): a value
# of it that is a day and a time of day SQLite reads alike (`+0 days` makes `2026-02-30` March 2nd,
# which then differs) sorts as its time, so that it is compared as stored, no function per row.
_STORED_GLOB = "-".join(["[0-9]" * 4, "[0-9]" * 2, "[0-9]" * 2]) + " " + ":".join(["[0-9]" * 2] * 3)
_STORED_GLOB += "." + "[0-9]" * 6
READ_FUNCTION = "opscraft_time"
_EPOCH_TEXT = "1970-01-01 00:00:00.000000"  # `EPOCH` in the stored form


def _stored_form(stored: str) -> str:
    return f"({stored} GLOB '{_STORED_GLOB}' AND datetime({stored}, '+0 days') = substr({stored}, 1, 19))"


@functools.cache
def _sqlite_reader() -> Callable[[Any], Any]:
    """`UTCDateTime`'s reader of SQLite's values (its processor, then `process_result_value`)."""
    dialect = sqlite.dialect()
    read = UTCDateTime().dialect_impl(dialect).result_processor(dialect, None)
    assert read is not None
    return read


def _read_with(value: Any) -> datetime:
    """`value` as `UTCDateTime` reads it from SQLite: an `UnreadTime` for a value that is no time."""
    return _sqlite_reader()(value)  # type: ignore[no-any-return]


def stored_text(value: Any) -> str | None:
    """The stored form (`2026-12-04 21:48:07.123456`) of the time a stored `value` reads as
    (`UTCDateTime`: `20261204` as 2026-12-04, `2026-12-04T10:00+05:00` as 10:00); None for None
    or a value that is no time (`yesterday`, `2026`, `99999-01-01`, a number). The SQL function
    `READ_FUNCTION` of every SQLite connection (`register`)."""
    if value is None:
        return None
    read = _read_with(value)
    if isinstance(read, UnreadTime):
        return None
    return (
        f"{read.year:04d}-{read.month:02d}-{read.day:02d} "
        f"{read.hour:02d}:{read.minute:02d}:{read.second:02d}.{read.microsecond:06d}"
    )


def register(dbapi_conn: Any) -> None:
    """Give the SQLite connection `dbapi_conn` the function `READ_FUNCTION` (`stored_text`)."""
    dbapi_conn.create_function(READ_FUNCTION, 1, stored_text, deterministic=True)


class no_time(_StoredTimeTest):
    """Whether a time column's stored value is no time, so that a load reads it as `EPOCH`
    (`UTCDateTime`): `no_time(column)`, a boolean SQL expression. On SQLite: a value that is not
    NULL, not in the stored form (`_stored_form`), and that Python's reader refuses
    (`READ_FUNCTION`, called for such values only: `yesterday`, `2026-13-45`, `2026`,
    `99999-01-01`, a number; not `20261204` nor `2026-12-04T10:00`, which it reads as times).
    On PostgreSQL: `false`."""

    inherit_cache = True
    name = "no_time"

    @staticmethod
    def sqlite(stored: str) -> str:
        """SQL (SQLite) true when the column `stored` holds a value that is not NULL, not in the
        stored form, and that `READ_FUNCTION` reads as no time."""
        return f"({stored} IS NOT NULL AND NOT {_stored_form(stored)} AND {READ_FUNCTION}({stored}) IS NULL)"


class stored_form(_StoredTimeTest):
    """Whether a time column's stored value is in the form SQLAlchemy stores times in, which
    compares as its time as text (`_stored_form`); `true` on PostgreSQL, whose `timestamp`
    compares as times."""

    inherit_cache = True
    name = "stored_form"
    elsewhere = "true"

    @staticmethod
    def sqlite(stored: str) -> str:
        """SQL (SQLite) true when the column `stored` holds a time in the stored form."""
        return _stored_form(stored)


class read_time(FunctionElement[datetime]):
    """`read_time(column)`: a time column's value as the time it reads as, to compare: on SQLite
    the stored form as stored, any other value through `READ_FUNCTION` (a value that is no time
    as `EPOCH`, as a load reads it; NULL stays NULL); the column itself on PostgreSQL."""

    type = UTCDateTime()
    name = "read_time"
    inherit_cache = True


@compiles(read_time)
def _read_elsewhere(element: read_time, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses.clauses
    return compiler.process(column, **kw)


@compiles(read_time, "sqlite")
def _read_on_sqlite(element: read_time, compiler: SQLCompiler, **kw: Any) -> str:
    (column,) = element.clauses.clauses
    stored = compiler.process(column, **kw)
    read = f"coalesce({READ_FUNCTION}({stored}), '{_EPOCH_TEXT}')"
    read = f"CASE WHEN {stored} IS NULL THEN NULL ELSE {read} END"
    return f"(CASE WHEN {_stored_form(stored)} THEN {stored} ELSE {read} END)"


Comparison = Callable[[Any, Any], Any]


def compared(column: Any, op: Comparison, bound: datetime | sa.BindParameter[Any]) -> ColumnElement[bool]:
    """`op(column, bound)` (`operator.lt`, `le`, `gt`, `ge` of a `UTCDateTime` column and an
    aware or naive-UTC `bound`) as the rows read: a row whose stored value is no time reads as
    `EPOCH` (`UTCDateTime`), so it matches when `op(EPOCH, bound)` does, whatever text SQLite
    compares (`yesterday` sorts after every time, so `finished_at < cutoff` never matched it:
    output retention kept such a run for ever, a heartbeat `yesterday` was never stale); a value
    in another form that is a time (`20261204`, `2026-12-04T10:00`) as that time (as text
    `20261204` sorted after every time of 2026).
    On PostgreSQL the extra terms are `true`/`false`, which its planner drops, the index range
    unchanged; on SQLite a bound that the epoch meets (`finished_at < cutoff`) adds an `OR` over
    the values not in the stored form that SQLite evaluates row by row rather than as an index
    range: for background rounds (retention, expiries, heartbeats); a list's date filter is
    `within` (docs/automation.md). A bound the epoch does not meet keeps the index range
    `op(column, bound)`, each row in it compared as it reads (a value in another form whose text
    sorts outside that range is not found: an ISO week date of the year before, a `2026-12-04`
    equal to a bound at midnight).
    `bound` may be a bind parameter (its value given at execution, so a statement is built once):
    it then stands for a time after the epoch, as every bound OpsCraft compares with."""
    if isinstance(bound, datetime) and bound.tzinfo is None:
        bound = bound.replace(tzinfo=UTC)
    as_read = op(read_time(column), bound)
    if op(EPOCH, bound if isinstance(bound, datetime) else _AFTER_EPOCH):
        return sa.or_(
            sa.and_(op(column, bound), stored_form(column)), sa.and_(sa.not_(stored_form(column)), as_read)
        )
    return sa.and_(op(column, bound), sa.or_(stored_form(column), as_read))


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
    an `until`, made SQLite read every newer run, and a test per row of the range (whether it is
    in the stored form, else read through `READ_FUNCTION`) doubled a `since` over 200,000 runs
    (session 35). So a value in another form that begins with a digit (`2026-13-45`, `2026`,
    `20261204`, `2026-12-04T10:00`: none written by OpsCraft) is compared as text here, while
    background rounds (`compared`) take it as it reads."""
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
    parameter of a statement built once) that is later than the epoch."""
    as_read = read_time(column) < bound
    return sa.or_(
        sa.and_(column < bound, stored_form(column)), sa.and_(sa.not_(stored_form(column)), as_read)
    )


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
