"""Cron expressions for tests that must not fire by themselves while the test runs.

The suite runs at any hour of any day: `0 0 1 1 *` ("once a year, so never during the test")
fires at UTC's New Year, when a run of the suite crossing that midnight would see a second,
unexpected fire.
"""

from __future__ import annotations

from datetime import UTC, datetime


def far_yearly_cron(now: datetime | None = None) -> str:
    """A once-a-year cron expression (`0 0 1 M *`, schedules' default zone UTC) whose only fire
    is six months from `now` (aware; default the current time): never within a test's minutes."""
    month = (now or datetime.now(UTC)).astimezone(UTC).month
    return f"0 0 1 {(month + 5) % 12 + 1} *"
