"""Stopping the background loops while they are being woken: the cancellation is never lost.

Python 3.11's `asyncio.wait_for` returns the awaited result and drops a cancellation that arrives
in the same event-loop step as that result. A loop (run events, chained runs, notifications)
that was woken and cancelled together therefore ran on, and `lifecycle.stop` waited for it for
ever: a CI run hung for 40 minutes in a fixture's teardown. The loops wait with
`asyncio.timeout`, which keeps the cancellation; these tests wake and cancel in one step.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from opscraft import lifecycle, runtime
from opscraft.services import chains, notifications

ROOT = Path(__file__).resolve().parents[1] / "opscraft"


async def test_run_event_dispatcher_stops_when_woken_in_the_same_step(rt: runtime.Runtime) -> None:
    dispatcher = rt.run_events
    assert dispatcher is not None
    for _ in range(3):
        async with asyncio.timeout(60):
            while not (dispatcher._wake and dispatcher._wake._waiters):  # type: ignore[attr-defined]
                await asyncio.sleep(0.01)
        dispatcher._wake.set()
        async with asyncio.timeout(10):
            await dispatcher.stop()
        assert dispatcher._task is None
        dispatcher.start()


async def test_lifecycle_stop_returns_while_the_automation_loops_are_woken(rt: runtime.Runtime) -> None:
    async with asyncio.timeout(60):
        while not (
            chains._wakeup is not None
            and chains._wakeup._waiters  # type: ignore[attr-defined]
            and any(wakeup._waiters for wakeup in notifications._wakeups)  # type: ignore[attr-defined]
        ):
            await asyncio.sleep(0.01)
    chains.wake()
    notifications.wake()
    async with asyncio.timeout(30):
        await lifecycle.stop()
    with pytest.raises(RuntimeError):
        runtime.current()


def test_no_asyncio_wait_for_in_the_package() -> None:
    """`asyncio.wait_for` can drop a cancellation on Python 3.11: use `asyncio.timeout`."""
    offenders = [
        f"{path.relative_to(ROOT.parent)}:{n}"
        for path in sorted(ROOT.rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "wait_for(" in line and "asyncio" in line
    ]
    assert offenders == []
