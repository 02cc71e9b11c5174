"""The background loops of automation in a server process: started and stopped by `lifecycle`.

The notification sender (`notifications.run_sender`), the scheduler
(`schedules.run_scheduler`), the starter of chained runs (`chains.run_starter`) and the history
upkeep (`retention.run_upkeep`: output retention and the dashboard's status tally). Each loop is
safe to run in any number of processes at once (database claims decide who does what).
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field

from opscraft.db.engine import Database
from opscraft.services import chains, notifications, retention, schedules


@dataclass
class AutomationLoops:
    """The running loops of this process."""

    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def stop(self) -> None:
        """Cancel the automation loops' tasks and wait for them to end."""
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks.clear()


def start(db: Database, scheduler_idle_seconds: float) -> AutomationLoops:
    """Start the loops on the running event loop; the scheduler looks at the schedules at least
    every `scheduler_idle_seconds` (`OPSCRAFT_SCHEDULER_IDLE_SECONDS`)."""
    return AutomationLoops(
        [
            asyncio.create_task(notifications.run_sender(db), name="notifications"),
            asyncio.create_task(schedules.run_scheduler(db, scheduler_idle_seconds), name="scheduler"),
            asyncio.create_task(chains.run_starter(db), name="chains"),
            asyncio.create_task(retention.run_upkeep(db), name="history-upkeep"),
        ]
    )
