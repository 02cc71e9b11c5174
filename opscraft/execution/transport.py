"""Which implementation of each port this installation uses: in-process, or Redis when `REDIS_URL` is set.

Without Redis the job queue is Huey on SQLite in the data directory, and live output and cancels
stay inside one process (other processes follow runs through storage, once a second, and reach
a run's worker through the `cancel_requested` column, once a second). With Redis every web and
worker process shares one queue (`RedisHuey`, blocking pop), one live-log bus (Streams) and one
cancel channel (pub/sub), all under the key prefix `OPSCRAFT_REDIS_PREFIX`.
"""

from __future__ import annotations

from collections.abc import Callable

from opscraft.config import Settings
from opscraft.execution.bus import LocalLogBus
from opscraft.execution.cancel import LocalCancelSignal
from opscraft.execution.delivery import Delivery
from opscraft.execution.ports import CancelSignal, JobQueue, LogBus
from opscraft.execution.queue import HueyQueue


def queue_for(settings: Settings, handler: Callable[[int], None] | None = None) -> HueyQueue:
    """The job queue of this installation; without a `handler` it only enqueues (a process that
    runs no executions). Its consumer has `settings.workers` threads (slots)."""
    if settings.redis_url:
        return HueyQueue.redis(
            settings.redis_url, f"{settings.redis_prefix}:queue", settings.workers, handler
        )
    # On a SQLite database this process runs everything: its own jobs are handed over in memory.
    return HueyQueue.sqlite(
        settings.data_dir / "queue.db", settings.workers, handler, in_process=settings.is_sqlite
    )


def delivery_for(settings: Settings, queue: JobQueue) -> Delivery | None:
    """Where the execution client's enqueues go: with `REDIS_URL`, through a `Delivery` thread
    (an enqueue is a network round trip Redis may not answer); None otherwise (the queue is in
    memory or a local SQLite file: the caller enqueues directly)."""
    return Delivery(queue) if settings.redis_url else None


def bus_for(settings: Settings) -> LogBus:
    """The live-log bus: Redis Streams with `REDIS_URL`, else in-process."""
    if settings.redis_url:
        from opscraft.execution.redis_bus import RedisLogBus

        return RedisLogBus(settings.redis_url, settings.redis_prefix)
    return LocalLogBus()


def cancel_signal_for(settings: Settings) -> CancelSignal:
    """The cancel signal: Redis pub/sub with `REDIS_URL`, else in-process."""
    if settings.redis_url:
        from opscraft.execution.redis_cancel import RedisCancelSignal

        return RedisCancelSignal(settings.redis_url, settings.redis_prefix)
    return LocalCancelSignal()


def close(*ports: object) -> None:
    """Release the connections of ports that hold any (the Redis ones have `close()`)."""
    for port in ports:
        closer = getattr(port, "close", None)
        if callable(closer):
            closer()


def limitations(settings: Settings, *, runs_here: bool) -> str | None:
    """What does not work across processes in this set-up, said once at start-up; None when
    nothing is missing (Redis configured, or SQLite: one machine, one process by design)."""
    if settings.redis_url or settings.is_sqlite:
        return None
    what = "this worker" if runs_here else "this web process"
    return (
        f"PostgreSQL without REDIS_URL: {what} shares no live bus with other processes. The job "
        "queue is SQLite in this data directory (workers on other machines only pick up runs "
        "through the 10 s stall check), live output of runs on other workers arrives by polling "
        "storage once a second, cancels reach other workers through the database within a "
        "second, NiceGUI sessions are not shared between web processes, and /metrics counts "
        "the HTTP requests of the web process that answers the scrape only. Set REDIS_URL."
    )
