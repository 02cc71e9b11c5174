"""Times a caller gives as filters (`since`, `until` of the audit trail and the run history):
one rule for the API and the UI's date pickers.

A time without a zone is UTC; one with a zone is converted to UTC, as the databases store UTC.
Rule (a 500 found by trying): an ISO 8601 time at the edge of the calendar with an offset,
`9999-12-31T23:59:59-14:00` or `0001-01-01T00:00:00+14:00`, has no UTC form (year 10000 or 0):
the conversion raised OverflowError. It is a 422 naming the field instead.

A day given alone (`2026-12-02`, the UI's day-range pickers and the API's `since`/`until` alike)
is a whole UTC day: from its first instant (`day_start`) to its last (`day_end`), so
`since=D&until=D` is day D (the API read `until=D` as D's first instant and matched nothing).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time

from opscraft.services.errors import Invalid

DAY_ALONE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
OUT_OF_RANGE = "must be a time between years 1 and 9999 in UTC"
"""What every date-and-time input (a body's, a query's) says of a time outside the calendar
Python and the services read (`datetime.MINYEAR` to `MAXYEAR`), in UTC: year 10000 or 0 written
out (Pydantic said "invalid date separator, expected `-`" or "year 0 is out of range"), or a time
at the calendar's edge whose offset takes it past either end."""
# The year an ISO 8601 date and time starts with: its sign and digits (`+10000-01-01`, `0000-...`).
_YEAR = re.compile(r"\s*([+-]?)([0-9]+)-")


def out_of_range(value: str) -> bool:
    """Whether the ISO 8601 text `value` names a time outside years 1-9999 in UTC (`OUT_OF_RANGE`):
    a signed or five-digit year, year 0, or an edge of the calendar that its offset takes past
    it. Anything else, well formed or not, is left to the field's own parsing."""
    year = _YEAR.match(value)
    if year is not None and (year.group(1) or len(year.group(2)) > 4 or int(year.group(2)) == 0):
        return True
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        return False
    if parsed.tzinfo is None:
        return False  # read as UTC already
    try:
        parsed.astimezone(UTC)
    except OverflowError:
        return True
    return False


def day_start(day: date) -> datetime:
    """The first instant of `day` in UTC (aware)."""
    return datetime.combine(day, time.min, UTC)


def day_end(day: date) -> datetime:
    """The last instant of `day` in UTC (aware, to the microsecond the databases keep)."""
    return datetime.combine(day, time.max, UTC)


def until_text(value: object) -> object:
    """An `until` query value as sent, with a day alone (`YYYY-MM-DD`) made its last instant in
    UTC (`day_end`); anything else as it came, for the field's own parsing (which names a date
    that does not exist, such as 2026-02-30)."""
    if isinstance(value, str) and DAY_ALONE.fullmatch(value):
        try:
            return day_end(date.fromisoformat(value))
        except ValueError:
            return value
    return value


def utc_instant(field: str, value: datetime | None) -> datetime | None:
    """`value` in UTC (a naive one is taken as UTC), None for None. Raises `Invalid` naming
    `field` when the time has no UTC form within years 1-9999."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise Invalid.input(field, OUT_OF_RANGE) from None


def time_range(since: datetime | None, until: datetime | None) -> tuple[datetime | None, datetime | None]:
    """(`since`, `until`) in UTC. Raises `Invalid` naming the field without a UTC form, or
    `since` when it is later than `until`."""
    start, end = utc_instant("since", since), utc_instant("until", until)
    if start is not None and end is not None and start > end:
        raise Invalid.input("since", "must not be later than until")
    return start, end
