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
    times = next_times("*/30 * * * *", "America/New_York", datetime(2027, 11, 7, 4, 20, tzinfo=UTC), 5)
    assert fire_times_text(times, zone) == (
        "Sun 07 Nov 00:30, Sun 07 Nov 01:00 EDT, Sun 07 Nov 01:30 EDT, Sun 07 Nov 01:00 EST, "
        "Sun 07 Nov 01:30 EST (America/New_York)"
    )


def test_other_times_stay_short_in_any_zone() -> None:
    times = next_times("0 9 * * *", "Asia/Kolkata", datetime(2027, 4, 3, tzinfo=UTC), 2)
    assert fire_times_text(times, ZoneInfo("Pacific/Chatham")) == (
        "Sat 03 Apr 17:15, Sun 04 Apr 16:15 (Pacific/Chatham)"
    )
