"""The automation loops' first rounds (services/automation.py): none runs at a runtime's start.
The sender and the chains' starter take theirs at their first wake-up or idle period, the
scheduler at the first fire time (at most its idle period away), the history upkeep a minute
after the start; a fire missed while no process ran still fires at once after a start."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from opscraft import lifecycle, runtime
from opscraft.db.models import ScheduleFire
from tests.automation.conftest import LOOPBACK_RECEIVERS
from tests.automation.test_schedules import add, due_now, fires, local_runner, script
from tests.conftest import PG_URL, LoggedIn, empty_postgres, make_settings
from tests.executions.conftest import statements_on
from tests.waiting import until

# What each loop's round reads first (`deliver_due`, `recover_lost`, `tick`'s `_start_waiting`,
# `refresh_tally` and `drop_ended_previous_values`), and the period it waits at most for it.
SENDER, CHAINS, SCHEDULER = "notification_deliveries", "chain_runs", "schedule_fires"
UPKEEP = ("execution_tallies", "secret_previous_values")
IDLE = {SENDER: 2.0, CHAINS: 2.0, SCHEDULER: 1.0}


async def test_no_loop_round_runs_at_the_start(backend: str, tmp_path: Path) -> None:
    """Each round comes at its period after the start, not at the start: a runtime stopped before
    (most tests' runtimes) paid about 20 ms of CPU on SQLite for the four rounds. The loops' tasks
    take their first step after `lifecycle.start` has returned (it awaits nothing after creating
    them), so every statement of theirs comes after `started`; the migrations' name the tables
    too, before it."""
    url = PG_URL if backend == "postgresql" else None
    if url:
        await empty_postgres(url)
    settings = make_settings(tmp_path, url, OPSCRAFT_SCHEDULER_IDLE_SECONDS=IDLE[SCHEDULER])
    first: dict[str, float] = {}  # seconds after `started` of each table's first statement
    started = float("inf")

    def note(statement: str) -> bool:
        for table in (*IDLE, *UPKEEP):
            if table in statement and time.monotonic() >= started:
                first.setdefault(table, time.monotonic() - started)
        return False

    with statements_on(Engine, note):
        await lifecycle.start(settings)
        started = time.monotonic()
        try:
            await until(lambda: set(IDLE) <= first.keys(), "the sender's, chains' and scheduler's rounds")
        finally:
            await lifecycle.stop()
    assert all(first[table] >= idle for table, idle in IDLE.items()), first
    assert not first.keys() & set(UPKEEP), "the upkeep's first round comes a minute after the start"


@pytest.mark.parametrize(
    "engine_settings", [{**LOOPBACK_RECEIVERS, "OPSCRAFT_SCHEDULER_IDLE_SECONDS": 60}], ids=["idle-60s"]
)
async def test_a_fire_missed_while_stopped_fires_at_once_after_a_start(
    client: httpx.AsyncClient, admin: LoggedIn, tmp_path: Path
) -> None:
    """The scheduler's first tick is at the first fire time: one already due is ticked at once
    after the start, not after the idle period (60 s here: longer than the wait's bound of 10 s
    even times the load factor, `tests.waiting.scale`)."""
    await local_runner(client, admin)
    sid = await script(client, admin)
    schedule_id = (await add(client, admin, sid)).json()["id"]
    await due_now(schedule_id)  # its fire time passed while no process ran (the scheduler sleeps 60 s)
    settings = runtime.current().settings
    await lifecycle.stop()
    await lifecycle.start(settings, runners=frozenset({"local"}))

    async def fired() -> list[ScheduleFire] | None:
        rows = await fires(schedule_id)
        return rows if {f.outcome for f in rows} not in (set(), {"due"}) else None

    (fire,) = await until(fired, "the scheduler to fire after the start", 10, 0.2)
    assert fire.outcome == "started"
