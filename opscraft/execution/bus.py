"""The in-process live-log bus (`ports.LogBus`): workers publish, watchers subscribe, no gap, no duplicate.

Published log events stay in the channel's `pending` list until storage reports them committed
(`stored`). `subscribe` returns that list as the backlog together with a queue of everything
published afterwards, so "stored output + backlog + live" covers every event; watchers drop
duplicates by sequence number. A watcher that falls too far behind gets `OVERFLOW` and
re-attaches (storage has caught up by then), which keeps memory bounded. A run's final event
releases its channel, whatever is still pending.

A run started by this process's worker announces itself `running` before its first output, so
from that event until its first batch is stored the channel holds the whole run: its status and
every log event (issue 15's lean path). A watcher subscribing then gets that status with the
backlog (`status`) and needs no read of storage, which took a database round trip on the
event loop before the first message of every live run's WebSocket or event stream.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from dataclasses import dataclass, field

from opscraft.db.models.executions import ExecutionStatus
from opscraft.execution.events import Event, LogEvent, StatusEvent
from opscraft.execution.ports import OVERFLOW

MAX_QUEUED_BYTES = 8 * 1024 * 1024


class _LocalSubscription:
    def __init__(
        self, bus: LocalLogBus, execution_id: int, backlog: list[LogEvent], status: StatusEvent | None
    ) -> None:
        self.backlog = backlog
        self.status = status
        self._bus = bus
        self._execution_id = execution_id
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[Event | object] = asyncio.Queue()
        self.queued_bytes = 0
        self.overflowed = False

    def push(self, event: Event | object) -> None:
        """Called with the bus lock held, from any thread."""
        self._loop.call_soon_threadsafe(self._queue.put_nowait, event)

    async def get(self, wait_seconds: float | None = None) -> Event | object | None:
        if not self._queue.empty():
            event = self._queue.get_nowait()
        else:
            try:
                async with asyncio.timeout(wait_seconds):
                    event = await self._queue.get()
            except TimeoutError:
                return None
        if isinstance(event, LogEvent):
            with self._bus.lock:
                self.queued_bytes -= len(event.content)
        return event

    def close(self) -> None:
        self._bus.unsubscribe(self._execution_id, self)


@dataclass
class _Channel:
    pending: deque[LogEvent] = field(default_factory=deque)
    subscribers: set[_LocalSubscription] = field(default_factory=set)
    whole: StatusEvent | None = None
    """The run's `running` event while `pending` holds every log event it published (none
    stored yet, none published before it): the channel then holds the whole run so far."""
    logs: bool = False
    """A log event was published on this channel."""


class LocalLogBus:
    """In-process `ports.LogBus` (one process). A Redis-backed one serves `opscraft worker` processes."""

    def __init__(self, max_queued_bytes: int = MAX_QUEUED_BYTES) -> None:
        self.lock = threading.Lock()
        self._channels: dict[int, _Channel] = {}
        self._max_queued = max_queued_bytes

    def publish(self, execution_id: int, event: Event) -> None:
        """Deliver a run's event to its subscribers in this process, keeping log events pending until
        stored.

        A subscriber whose queued log text passes the bus's limit (in characters) gets OVERFLOW once and
        nothing more. A final status event drops the run's channel.
        """
        with self.lock:
            channel = self._channels.setdefault(execution_id, _Channel())
            if isinstance(event, LogEvent):
                channel.pending.append(event)
                channel.logs = True
            elif event.final or event.status != ExecutionStatus.running or channel.logs:
                channel.whole = None  # the row (final, or not this run's start) is the truth
            else:
                channel.whole = event
            for sub in channel.subscribers:
                if sub.overflowed:
                    continue
                if isinstance(event, LogEvent):
                    sub.queued_bytes += len(event.content)
                    if sub.queued_bytes > self._max_queued:
                        sub.overflowed = True
                        sub.push(OVERFLOW)
                        continue
                sub.push(event)
            if isinstance(event, StatusEvent) and event.final:
                # Published after the run's end (and its output) was committed: what is still
                # pending is stored (its `stored` comes late) or never will be (its batch
                # failed); a later watcher reads the row and storage. It used to stay for good.
                del self._channels[execution_id]

    def stored(self, execution_id: int, upto_seq: int) -> None:
        """Drop the run's pending log events up to `upto_seq`, now that storage holds them."""
        with self.lock:
            channel = self._channels.get(execution_id)
            if channel is None:
                return
            while channel.pending and channel.pending[0].seq <= upto_seq:
                channel.pending.popleft()
                channel.whole = None  # what is stored is no longer all here
            if not channel.pending and not channel.subscribers:
                del self._channels[execution_id]

    def subscribe(self, execution_id: int, after_seq: int = 0) -> _LocalSubscription:
        """Subscribe to a run's events: pending log events after `after_seq` come first, then live ones."""
        with self.lock:
            channel = self._channels.setdefault(execution_id, _Channel())
            backlog = [event for event in channel.pending if event.seq > after_seq]
            sub = _LocalSubscription(self, execution_id, backlog, channel.whole)
            channel.subscribers.add(sub)
            return sub

    def unsubscribe(self, execution_id: int, sub: _LocalSubscription) -> None:
        """End a subscription; the run's channel is dropped once it has no subscribers and no pending
        events.
        """
        with self.lock:
            channel = self._channels.get(execution_id)
            if channel is None:
                return
            channel.subscribers.discard(sub)
            if not channel.subscribers and not channel.pending:
                del self._channels[execution_id]
