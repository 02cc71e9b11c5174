"""A schedule's fire times: a checked 5-field cron expression (`schedules.check_cron`) in an IANA
time zone, as instants (aware UTC datetimes).

croniter walks the wall clock only, on naive datetimes; this module alone turns each wall-clock
time into instants, by the zone's own offsets:
- a time that exists once is that instant;
- a time a fall-back repeats fires at its first occurrence, and also at its second when the
  expression's minute or hour field starts with `*` (`*/20 * * * *`, `0 * * * *`: cronie's rule for
  "wildcard" jobs, which run at every matching instant, `fires_in_repeated_hour`);
- a time a spring-forward skips fires at the first instant after the gap (`30 2 * * *` in
  Europe/Paris at 03:00 CEST); the times a wildcard expression's gap skips are not made up for
  (cronie: such jobs run "based on the new time").

croniter given aware datetimes did this itself, assuming one-hour shifts: in Australia/Lord_Howe,
whose clocks go back 30 minutes, `*/20 * * * *` missed the repeated 01:40, and in the gap it fired
a wildcard expression's skipped hour once after it (`*/20 2 * * *` at 03:00 CEST).
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

from croniter import CroniterError, croniter

# Longer than any clock shift of the tz database (Antarctica/Troll's two hours), and than a day
# skipped whole (Pacific/Apia on 30 December 2011): the offsets around an instant are looked up
# this far either side, to start the wall-clock walk early enough to find every fire after it.
SHIFT_REACH = timedelta(hours=26)


def fires_in_repeated_hour(cron: str) -> bool:
    """Whether the schedule fires at each matching instant of the time a fall-back to standard
    time repeats: cronie's rule for "wildcard" jobs, whose minute or hour field starts with `*`
    (`*/30 * * * *`, `0 * * * *`). Others (`30 2 * * *`) name a wall-clock time and fire once,
    at its first occurrence, as in cronie and Vixie cron."""
    minute, hour = cron.split()[:2]
    return minute.startswith("*") or hour.startswith("*")


def day_halves(cron: str) -> list[str]:
    """`[cron]`, or, when both day fields are restricted (neither `*` nor `?`), the expression
    twice: once with only its day-of-month, once with only its day-of-week (the other `*`). A day
    matching either fires (Vixie cron), and the union of the two halves is that rule whatever the
    fields hold: croniter applies it to plain days only. Given `L`, `nW`, `n#k` or `Ln` in one day
    field and a restricted other, it read the pair some other way (`0 0 15W * MON` fired on the
    15th's weekday only, `0 0 13 * 5#2` on second Fridays only) or found no date at all
    (`0 0 1 * 1#2`, refused as "matches no date")."""
    minute, hour, day, month, weekday = cron.split()
    if day in ("*", "?") or weekday in ("*", "?"):
        return [cron]
    return [f"{minute} {hour} {day} {month} *", f"{minute} {hour} * {month} {weekday}"]


def _walls(cron: str, start: datetime, forward: bool) -> Iterator[datetime]:
    """Naive wall-clock times of one `day_halves` expression from the naive `start` (excluded);
    none when it matches no date (`0 0 30 2 *`, half of `0 0 30 2 MON`)."""
    it = croniter(cron, start)
    step = it.get_next if forward else it.get_prev
    while True:
        try:
            yield step(datetime)
        except CroniterError:
            return


def _exists(wall: datetime, zone: ZoneInfo, fold: int) -> datetime | None:
    """The instant (UTC) of `wall` read with `fold`, or None when the zone's clocks never show
    `wall` (a spring-forward gap): its instant would not read back as `wall`."""
    instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
    return instant if instant.astimezone(zone).replace(tzinfo=None) == wall else None


def _after_gap(wall: datetime, zone: ZoneInfo) -> datetime:
    """The first instant after the gap that skips `wall`: the zone's shift lies between the
    instants `wall` reads as with the offsets before (fold 0) and after it (fold 1); found by
    halving that span to the second."""
    low = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    low, high = min(low, high), max(low, high)
    after = high.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == after:
            high = middle
        else:
            low = middle
    return high.replace(microsecond=0)


def _half_times(
    cron: str, zone: ZoneInfo, start: datetime, forward: bool, every_instant: bool
) -> Iterator[datetime]:
    """The instants of one `day_halves` expression's wall-clock times from the naive `start`
    (excluded), in order. A repeated time's two instants lie on either side of the shift, with
    the other repeated times' between them: forward, a second occurrence is held until the walk
    reaches a later instant; backward, a first one, until an earlier."""
    held: list[datetime] = []
    for wall in _walls(cron, start, forward):
        first, second = _exists(wall, zone, 0), _exists(wall, zone, 1)
        if first is None:
            if every_instant:
                continue
            instant = _after_gap(wall, zone)
        elif every_instant and second is not None and second != first:
            instant, later = (first, second) if forward else (second, first)
            held.append(later)
        else:
            instant = first
        while held and (held[0] < instant if forward else held[0] > instant):
            yield held.pop(0)
        yield instant
    yield from held


def _times(cron: str, timezone: str, start: datetime, forward: bool) -> Iterator[datetime]:
    """Fire times strictly after (`forward`) or before `start`, in order, as aware UTC datetimes,
    without repeats. The wall-clock walk starts where the zone's smallest (forward) or largest
    offset near `start` puts it, so that a repeated time whose second instant is past `start`
    is not left behind; instants on the wrong side of `start` are dropped."""
    zone = ZoneInfo(timezone)
    start = start.astimezone(UTC)
    offsets = [
        (start + reach).astimezone(zone).utcoffset() or timedelta(0)
        for reach in (-SHIFT_REACH, timedelta(0), SHIFT_REACH)
    ]
    wall = (start + (min(offsets) if forward else max(offsets))).replace(tzinfo=None)
    every_instant = fires_in_repeated_hour(cron)
    halves = [_half_times(half, zone, wall, forward, every_instant) for half in day_halves(cron)]
    previous = None
    for instant in heapq.merge(*halves, reverse=not forward):
        if instant == previous or (instant <= start if forward else instant >= start):
            continue
        previous = instant
        yield instant


def next_times(cron: str, timezone: str, after: datetime, count: int = 1) -> list[datetime]:
    """The next `count` fire times strictly after `after` (aware), as timezone-aware UTC
    datetimes, by the rules of this module's docstring."""
    return list(islice(_times(cron, timezone, after, forward=True), count))


def previous_time(cron: str, timezone: str, before: datetime) -> datetime:
    """The latest fire time strictly before `before` (aware), as timezone-aware UTC (the same
    fire times as `next_times`). Raises StopIteration for an expression that matches no date."""
    return next(_times(cron, timezone, before, forward=False))
