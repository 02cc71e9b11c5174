"""The in-process log bus honours the `ports.LogBus` contract: a subscription resumes after a
sequence number (older events come from storage) and `get` gives up after `wait_seconds`."""

from __future__ import annotations

import time

from opscraft.execution.bus import LocalLogBus
from opscraft.execution.events import LogEvent, StatusEvent


async def test_subscription_resumes_after_a_sequence_number() -> None:
    bus = LocalLogBus()
    for seq in range(1, 6):
        bus.publish(7, LogEvent(seq, "stdout", f"line {seq}\n"))
    bus.stored(7, 2)  # storage has 1-2: the bus keeps 3-5 until they are stored
    sub = bus.subscribe(7, after_seq=3)
    try:
        assert [e.seq for e in sub.backlog] == [4, 5]
        bus.publish(7, LogEvent(6, "stderr", "late\n"))
        assert await sub.get(1.0) == LogEvent(6, "stderr", "late\n")
        t0 = time.monotonic()
        assert await sub.get(0.2) is None  # nothing more within the wait
        assert time.monotonic() - t0 >= 0.15
        bus.publish(7, StatusEvent("success", final=True))
        event = await sub.get(1.0)
        assert isinstance(event, StatusEvent) and event.final
    finally:
        sub.close()
