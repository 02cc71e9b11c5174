"""The words of the Settings page's lines (`ui.settings_page`), without a browser."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from opscraft.services.warm_pools import WorkerPool
from opscraft.ui.settings_page import pool_text


def test_a_pools_line_says_one_start_in_the_singular() -> None:
    """A worker that had started one run cold was said to have "1 cold starts"."""
    now = datetime.now(UTC)
    pool = WorkerPool("vm-1", "h", now, size=2, burst=4, warm=2, warm_starts=8, cold_starts=1)
    said = pool_text(pool)
    assert said == "vm-1: 2 warm (2 per profile in use, up to 4 under demand), 8 warm starts, 1 cold start"
    said = pool_text(replace(pool, burst=2, warm_starts=1, cold_starts=0))
    assert said == "vm-1: 2 warm (2 per profile in use), 1 warm start, 0 cold starts"
