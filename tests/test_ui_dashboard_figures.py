"""The dashboard's figures as written for people: shares never rounded to 0% or 100% unless they
are, counts with thousands separators (short enough for a tile), "Running now" counting every
running run."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from opscraft.db.models import Execution
from opscraft.services.executions import DailyRate, DashboardStats
from opscraft.ui.dashboard import _chart_options, _running_key, _success_summary
from opscraft.ui.widgets import compact_count, format_count, percent

DAY = date(2026, 12, 2)


def _week(*days: tuple[int, int]) -> list[DailyRate]:
    """Seven days, oldest first, the last ones with (total, success) as given."""
    padded = [(0, 0)] * (7 - len(days)) + list(days)
    return [DailyRate(DAY - timedelta(days=6 - i), total, ok) for i, (total, ok) in enumerate(padded)]


@pytest.mark.parametrize(
    ("part", "whole", "digits", "expected"),
    [
        (999, 1000, 0, 99),  # rounded, 99.9 said "100%": as if nothing had failed
        (1, 1000, 0, 1),  # rounded, 0.1 said "0%": as if nothing had succeeded
        (9999, 10000, 1, 99.9),
        (1, 10000, 1, 0.1),
        (3, 4, 0, 75),
        (2, 3, 1, 66.7),
        (5, 5, 0, 100),
        (0, 5, 1, 0.0),
        (0, 0, 0, None),
    ],
)
def test_a_share_is_0_or_100_percent_only_when_it_is(
    part: int, whole: int, digits: int, expected: float | None
) -> None:
    assert percent(part, whole, digits) == expected


def test_the_success_summary_says_a_failure_happened() -> None:
    assert _success_summary(_week((1000, 999))) == "99% of 1,000 finished runs succeeded in the last 7 days."
    assert _success_summary(_week((600, 0), (400, 1))) == (
        "1% of 1,000 finished runs succeeded in the last 7 days."
    )
    assert _success_summary(_week((1, 1))) == "100% of 1 finished run succeeded in the last 7 days."
    assert _success_summary(_week()) == "No finished runs in the last 7 days."


def test_the_chart_line_stays_below_100_when_a_run_failed() -> None:
    line = _chart_options(_week((100000, 99999), (0, 0)))["series"][2]["data"]
    assert line[-2:] == [99.9, None]


def test_counts_have_thousands_separators() -> None:
    assert format_count(1234567) == "1,234,567"
    assert format_count(0) == "0"


@pytest.mark.parametrize(
    ("count", "shown"),
    [
        (0, "0"),
        (99_999, "99,999"),
        (100_000, "100k"),
        (999_999, "999k"),  # cut, never rounded up to a figure not reached
        (1_000_000, "1.00M"),
        (1_234_567, "1.23M"),  # a tile showed "1,234,56": the rest was cut off
        (12_345_678, "12.3M"),
        (999_999_999, "999M"),
        (1_234_567_890, "1.23B"),
    ],
)
def test_a_tile_count_fits_in_six_characters(count: int, shown: str) -> None:
    assert compact_count(count) == shown


def test_running_now_counts_every_running_run_not_only_those_listed() -> None:
    run = {"script_id": 1, "script_version": 1, "script_name": "s", "script_type": "bash"}
    listed = [Execution(id=i, **run) for i in range(8)]
    stats = DashboardStats(counts={"running": 600}, running=listed, recent=[], daily=_week())
    total, shown = _running_key(stats)
    assert (total, len(shown)) == (600, 8)
