"""The schedules' "Next:" line, in the browser's time zone (`ui.schedules.fire_times_text`)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from opscraft.services.schedules import next_times
from opscraft.ui.schedules import fire_times_text


def test_the_two_fires_of_a_repeated_hour_are_told_apart() -> None:
    """`*/30 * * * *` fires at each matching instant of the hour a fall-back repeats (cronie's
    rule, docs/automation.md): shown in New York on 2027-11-07 it read `01:00, 01:30, 01:00,
    01:30`, as if the list repeated itself. The repeated wall-clock times carry their zone."""
    zone = ZoneInfo("America/New_York")
    now = datetime(2027, 11, 7, 4, 20, tzinfo=UTC)
    times = next_times("*/30 * * * *", "America/New_York", now, 5)
    assert fire_times_text(times, zone, now) == (
        "Sun 07 Nov 00:30, Sun 07 Nov 01:00 EDT, Sun 07 Nov 01:30 EDT, Sun 07 Nov 01:00 EST, "
        "Sun 07 Nov 01:30 EST (America/New_York)"
    )


def test_other_times_stay_short_in_any_zone() -> None:
    now = datetime(2027, 4, 3, tzinfo=UTC)
    times = next_times("0 9 * * *", "Asia/Kolkata", now, 2)
    assert fire_times_text(times, ZoneInfo("Pacific/Chatham"), now) == (
        "Sat 03 Apr 17:15, Sun 04 Apr 16:15 (Pacific/Chatham)"
    )


def test_a_fire_in_another_year_carries_its_year() -> None:
    """A yearly schedule's five fires read `Thu 31 Dec 18:00, Fri 31 Dec 18:00, Sun 31 Dec
    18:00, ...` (`@yearly`, stored as `0 0 1 1 *`, in Paris shown in New York) and a leap
    day's `Mon 28 Feb 18:00, Sat 28 Feb 18:00, ...`: five times that looked like one date,
    with no year to tell them apart or to say that the next fire is years away. A time in
    another year than now's, in the zone shown, carries its year; this year's stay short."""
    zone = ZoneInfo("America/New_York")
    now = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    times = next_times("0 0 1 1 *", "Europe/Paris", now, 3)
    assert fire_times_text(times, zone, now) == (
        "Thu 31 Dec 18:00, Fri 31 Dec 2027 18:00, Sun 31 Dec 2028 18:00 (America/New_York)"
    )
    times = next_times("0 0 29 2 *", "Europe/Paris", now, 2)
    assert fire_times_text(times, zone, now) == (
        "Mon 28 Feb 2028 18:00, Sat 28 Feb 2032 18:00 (America/New_York)"
    )
    # The year is now's in the zone shown: 23:30 UTC on New Year's Eve is already 2027 in
    # Tokyo, so a fire there on 1 January is this year's.
    eve = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    times = next_times("0 12 1 1 *", "Asia/Tokyo", eve, 1)
    assert fire_times_text(times, ZoneInfo("Asia/Tokyo"), eve) == "Fri 01 Jan 12:00 (Asia/Tokyo)"
    assert fire_times_text(times, ZoneInfo("UTC"), eve) == "Fri 01 Jan 2027 03:00 (UTC)"
