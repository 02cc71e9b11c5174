"""Column types shared by all tables."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

# The largest id: ids are INTEGER columns, 32-bit on PostgreSQL (which refuses a larger bound
# value with an error, where SQLite just finds nothing).
MAX_ID = 2**31 - 1


def utcnow() -> datetime:
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
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


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
