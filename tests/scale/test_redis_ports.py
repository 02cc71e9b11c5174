"""The Redis implementations of the engine's ports, in process against the test Redis (keys under
a prefix of their own), plus the start-up warning without Redis and the JSON log format."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from opscraft import lifecycle, logs
from opscraft.api.health import _redis_status
from opscraft.execution import queue
from opscraft.execution.delivery import Delivery
from opscraft.execution.events import LogEvent, StatusEvent
from opscraft.execution.ports import OVERFLOW
from opscraft.execution.queue import HueyQueue
from opscraft.execution.redis_bus import RedisLogBus
from opscraft.execution.redis_cancel import RedisCancelSignal
from opscraft.execution.transport import queue_for
from tests.conftest import PG_URL, REDIS_URL, empty_postgres, make_settings, require_service
from tests.scale.cluster import RedisServer
from tests.waiting import wait_until

pytestmark = pytest.mark.redis


@pytest.fixture
def redis_url() -> str:
    require_service(bool(REDIS_URL), "Redis (OPSCRAFT_TEST_REDIS_URL)")
    assert REDIS_URL
    return REDIS_URL


async def _drain(sub: object, until_final: bool = True) -> list[object]:
    events = []
    while True:
        event = await sub.get(5)  # type: ignore[attr-defined]
        assert event is not None, f"nothing within 5 s after {events}"
        events.append(event)
        if event is OVERFLOW or (isinstance(event, StatusEvent) and event.final) or not until_final:
            return events


async def test_log_bus_resumes_from_a_sequence_number_without_gap_or_duplicate(redis_url: str) -> None:
    bus = RedisLogBus(redis_url, f"test-{secrets.token_hex(4)}")
    try:
        bus.publish(7, StatusEvent("running"))
        for seq in range(1, 6):
            bus.publish(7, LogEvent(seq, "stdout", f"line {seq}\n"))
        sub = bus.subscribe(7, after_seq=2)
        assert sub.backlog == []
        seen = [await sub.get(5) for _ in range(3)]
        assert [e.seq for e in seen] == [3, 4, 5]  # type: ignore[union-attr]
        # Published from another thread while the watcher blocks in XREAD.
        threading.Timer(0.2, lambda: bus.publish(7, LogEvent(6, "stderr", "six\n"))).start()
        threading.Timer(0.3, lambda: bus.publish(7, StatusEvent("success", final=True))).start()
        rest = await _drain(sub)
        assert rest[0] == LogEvent(6, "stderr", "six\n")
        assert isinstance(rest[-1], StatusEvent) and rest[-1].status == "success"
        # A second watcher from 0 sees everything once, in order, then the end.
        everything = await _drain(bus.subscribe(7, 0))
        assert [e.seq for e in everything if isinstance(e, LogEvent)] == [1, 2, 3, 4, 5, 6]
    finally:
        bus.close()


async def test_log_bus_carries_each_chunks_time(redis_url: str) -> None:
    """A Redis bus handed its watchers chunks without the time they were produced (`at`): the
    execution page's *Timestamps* stamped no live line of a team server's runs (a reload, read
    from storage, stamped them all)."""
    bus = RedisLogBus(redis_url, f"test-{secrets.token_hex(4)}")
    try:
        at = datetime(2026, 12, 6, 8, 30, 1, 234567, tzinfo=UTC)
        bus.publish(8, LogEvent(1, "stdout", "one\n", at))
        assert await bus.subscribe(8).get(5) == LogEvent(1, "stdout", "one\n", at)
    finally:
        bus.close()


async def test_log_bus_trimmed_after_storage_sends_watchers_to_storage(redis_url: str) -> None:
    bus = RedisLogBus(redis_url, f"test-{secrets.token_hex(4)}")
    try:
        for seq in range(1, 11):
            bus.publish(8, LogEvent(seq, "stdout", "x"))
        bus.stored(8, 8)  # storage has 1..8: Redis keeps 8 on (trimmed by the bus's thread)
        first = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + 10
        while first.xrange(bus.key(8), count=1)[0][0] != b"8-0":
            assert time.monotonic() < deadline, "the stream was not trimmed"
            await asyncio.sleep(0.01)
        first.close()
        assert await bus.subscribe(8, 2).get(5) is OVERFLOW  # 3..7 are only in storage
        later = bus.subscribe(8, 8)
        assert [(await later.get(5)).seq for _ in range(2)] == [9, 10]  # type: ignore[union-attr]
    finally:
        bus.close()


async def test_log_bus_survives_an_unreachable_redis() -> None:
    bus = RedisLogBus("redis://127.0.0.1:1/0", "test")
    bus.publish(1, LogEvent(1, "stdout", "lost on the bus, kept in storage"))  # no exception
    assert await bus.subscribe(1, 0).get(0.2) is None  # "quiet": the client re-reads storage
    bus.close()


async def _within(seconds: float, awaitable: object) -> tuple[object, float]:
    """`awaitable`'s result and how long it took; fails when it takes over `seconds`."""
    started = time.monotonic()
    result = await asyncio.wait_for(awaitable, seconds)  # type: ignore[arg-type]
    return result, time.monotonic() - started


async def test_a_frozen_redis_holds_no_watcher_publisher_health_check_or_cancel(
    private_redis: RedisServer,
) -> None:
    """Redis frozen (SIGSTOP: connections are accepted and stay open, nothing answers). Before,
    a watcher's `XREAD BLOCK` and the health check's PING had redis-py's default socket timeout
    (none before redis-py 8: for ever; 5 s from 8 on, for every poll of every watcher, and every
    publish); a cancel published from the request's event loop held it for the sync client's 5 s.
    Now the watcher's read fails within `READ_TIMEOUT_SECONDS`, the bus then stops asking Redis
    for a pause (reads answer "quiet" at once, so the execution client follows storage;
    publishing is skipped), health says "disconnected", a cancel returns at once; when Redis
    answers again, live output flows again."""
    from opscraft.execution import redis_bus

    prefix = f"test-{secrets.token_hex(4)}"
    bus, cancels = RedisLogBus(private_redis.url, prefix), RedisCancelSignal(private_redis.url, prefix)
    assert private_redis.process is not None
    try:
        bus.publish(5, LogEvent(1, "stdout", "before\n"))
        sub = bus.subscribe(5, 0)
        assert await sub.get(5) == LogEvent(1, "stdout", "before\n")
        private_redis.process.send_signal(signal.SIGSTOP)
        started = time.monotonic()
        bus.stored(5, 1)  # trimmed from the bus's own thread: the worker's event loop is not held
        assert time.monotonic() - started < 0.5
        # The first read finds out: its socket times out (one blocked read plus the margin).
        quiet, took = await _within(redis_bus.READ_TIMEOUT_SECONDS + 5, sub.get(1))
        assert quiet is None
        # Meanwhile Redis is not asked: a watcher's poll is "quiet" within its wait.
        quiet, took = await _within(3, bus.subscribe(5, 1).get(0.2))
        assert quiet is None and took < 1.5, took
        started = time.monotonic()
        bus.publish(5, LogEvent(2, "stdout", "skipped\n"))  # the pump is not held
        assert time.monotonic() - started < 0.5
        status, took = await _within(10, _redis_status(private_redis.url))
        assert status == "disconnected" and took < 5, took
        started = time.monotonic()
        cancels.request(77)  # published from the cancel's own thread, not this loop
        assert time.monotonic() - started < 0.5
    finally:
        private_redis.process.send_signal(signal.SIGCONT)
    try:
        # Back: once the pause ends, what is published is read live again.
        later = bus.subscribe(5, 2)
        seen = None
        deadline = time.monotonic() + redis_bus.OUTAGE_MAX_PAUSE_SECONDS + 10
        while seen is None and time.monotonic() < deadline:
            bus.publish(5, LogEvent(3, "stdout", "after\n"))
            seen = await later.get(1)
        assert seen == LogEvent(3, "stdout", "after\n")
        assert await _redis_status(private_redis.url) == "connected"
    finally:
        cancels.close()
        bus.close()


def test_runs_handed_over_while_redis_is_frozen_reach_the_queue_once_it_answers(
    private_redis: RedisServer, tmp_path: Path
) -> None:
    """Redis frozen (SIGSTOP) as runs are handed to the queue. Before, the execution client
    enqueued on its caller (the web process's event loop), held for the queue's 5 s socket
    timeout per run, and a run that failed waited for a worker's stall check (one per script
    every 10 s). Now `Delivery.put` returns at once, the first failed enqueue is said
    (`error`), and every run reaches the queue once Redis answers."""
    settings = make_settings(
        tmp_path, REDIS_URL=private_redis.url, OPSCRAFT_REDIS_PREFIX=f"test-{secrets.token_hex(4)}"
    )
    got: list[int] = []
    all_three = threading.Event()

    def handler(execution_id: int) -> None:
        got.append(execution_id)
        if len(got) == 3:
            all_three.set()

    producer = queue_for(settings)
    delivery = Delivery(producer)
    assert private_redis.process is not None
    private_redis.process.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        for execution_id in (1, 2, 3):
            delivery.put(execution_id)
        assert time.monotonic() - started < 0.5
        deadline = time.monotonic() + queue.REDIS_SOCKET_TIMEOUT_SECONDS + 10
        while delivery.error is None:
            assert time.monotonic() < deadline, "the failed enqueue was not said"
            time.sleep(0.05)
        assert "the job queue is unreachable" in delivery.error and delivery.waiting() == 3
    finally:
        private_redis.process.send_signal(signal.SIGCONT)
    consumer = queue_for(settings, handler)
    consumer.start()
    try:
        assert all_three.wait(60), got
        assert sorted(got) == [1, 2, 3]
        deadline = time.monotonic() + 10  # the last enqueue's reply may come after its run
        while delivery.waiting() or delivery.error is not None:
            assert time.monotonic() < deadline, (delivery.waiting(), delivery.error)
            time.sleep(0.01)
    finally:
        delivery.close()
        consumer.stop()
        assert consumer.join(10)
        consumer.clear()


def test_cancel_signal_reaches_the_watching_process(redis_url: str) -> None:
    prefix = f"test-{secrets.token_hex(4)}"
    worker_side, web_side = RedisCancelSignal(redis_url, prefix), RedisCancelSignal(redis_url, prefix)
    killed = threading.Event()
    try:
        worker_side.watch(42, killed.set)
        for _ in range(50):  # the listener subscribes in its thread: ask until it hears
            web_side.request(42)
            if killed.wait(0.1):
                break
        assert killed.is_set()
        killed.clear()
        web_side.request(43)  # not a run of that worker
        assert not killed.wait(0.3)
    finally:
        worker_side.close()
        web_side.close()


def test_redis_queue_hands_jobs_to_a_blocking_consumer(redis_url: str, tmp_path: Path) -> None:
    settings = make_settings(
        tmp_path, REDIS_URL=redis_url, OPSCRAFT_REDIS_PREFIX=f"test-{secrets.token_hex(4)}"
    )
    got: list[int] = []
    done = threading.Event()

    def handler(execution_id: int) -> None:
        got.append(execution_id)
        if len(got) == 3:
            done.set()

    consumer, producer = queue_for(settings, handler), queue_for(settings)
    consumer.start()
    try:
        for execution_id in (1, 2, 3):
            producer.enqueue(execution_id)
        assert done.wait(30)
        assert sorted(got) == [1, 2, 3]
    finally:
        consumer.stop()
        assert consumer.join(10)
        consumer.clear()


@pytest.mark.postgres
async def test_web_process_on_postgres_without_redis_says_what_does_not_work(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require_service(bool(PG_URL), "PostgreSQL (OPSCRAFT_TEST_PG_URL)")
    assert PG_URL
    await empty_postgres(PG_URL)
    with caplog.at_level(logging.WARNING, logger="opscraft.lifecycle"):
        await lifecycle.start(make_settings(tmp_path, PG_URL), worker=False, dispatch=True)
        await lifecycle.stop()
    assert any(
        "no live bus" in r.getMessage() and "/metrics" in r.getMessage() and "Set REDIS_URL" in r.getMessage()
        for r in caplog.records
    )


def test_json_logs_carry_worker_and_execution_ids(capsys: pytest.CaptureFixture[str]) -> None:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        logs.configure("INFO", "json")
        log = logging.getLogger("opscraft.execution.executor")
        with logs.engine_context(worker_id="w-1", execution_id=12):
            log.warning("execution %s: storing the output failed", 12)
        log.info("no context")
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert (
        lines[0]["worker_id"] == "w-1" and lines[0]["execution_id"] == 12 and lines[0]["level"] == "WARNING"
    )
    assert lines[0]["message"] == "execution 12: storing the output failed"
    assert "worker_id" not in lines[1]


def _wait_until_blocking_on_the_queue(queue: HueyQueue, consumer: str, within: float = 10.0) -> None:
    """Until a connection named `consumer` blocks in `BRPOP`: Redis's `CLIENT LIST` shows it with
    the command `brpop` and the flag `b` (blocked) while the pop waits for a job."""
    redis = queue._huey.storage.conn
    deadline = time.monotonic() + within
    while True:
        clients = redis.client_list()
        if any(c["name"] == consumer and c["cmd"] == "brpop" and "b" in c["flags"] for c in clients):
            return
        assert time.monotonic() < deadline, f"no consumer blocking on the queue: {clients}"
        time.sleep(0.01)


def test_a_stopped_consumer_hands_a_job_it_was_blocking_for_back_to_the_queue(redis_url: str) -> None:
    """A worker told to stop (SIGTERM) takes no new job: one that arrives while its consumer
    threads still block on the queue (`BRPOP`, up to a second) goes back to the queue for another
    worker; it used to be run by the stopping worker and killed at the end of its grace period
    ("interrupted by server shutdown")."""
    handled: list[int] = []
    name = f"test-{secrets.token_hex(4)}:queue"
    queue = HueyQueue.redis(redis_url, name, 1, handled.append)
    other = HueyQueue.redis(redis_url, name, 1, lambda i: handled.append(-i))
    # Its consumer's Redis connections carry a name, to be told apart in `CLIENT LIST`.
    consumer = f"test-consumer-{secrets.token_hex(4)}"
    queue._huey.storage.pool.connection_kwargs["client_name"] = consumer
    queue.start()
    try:
        _wait_until_blocking_on_the_queue(queue, consumer)
        queue.stop()
        queue.enqueue(42)
        assert queue.join(10)
        assert handled == []
        other.start()  # another worker takes it
        deadline = time.monotonic() + 10
        while not handled and time.monotonic() < deadline:
            time.sleep(0.05)
        assert handled == [-42]
    finally:
        other.stop()
        other.join(10)
        other.clear()


def test_a_job_taken_from_the_queue_runs_whatever_redis_answers_next(private_redis: RedisServer) -> None:
    """A job a consumer popped runs without another Redis command. Huey's `execute` asked Redis
    whether the job was revoked before running it (and cleared the flag after): a Redis that went
    away between the pop and that question (stopped, restarted with persistence while every slot
    was busy) dropped the job with a traceback at ERROR, and its run waited `queued` for a
    worker's stall check (18 s here). Here Redis refuses every command but the queue's own (an
    ACL user), so the question fails every time, as it did once in that window."""
    server = redis.Redis(port=private_redis.port)
    server.acl_setuser(
        "queue-only",
        enabled=True,
        passwords=["+queue-only-pw"],
        keys=["*"],
        commands=["+brpop", "+lpush", "+ping"],
    )
    url = f"redis://queue-only:queue-only-pw@127.0.0.1:{private_redis.port}/0"
    handled: list[int] = []
    queue = HueyQueue.redis(url, f"test-{secrets.token_hex(4)}:queue", 1, handled.append)
    queue.start()
    try:
        queue.enqueue(7)
        wait_until(lambda: handled, "the job to run", timeout=10)
        assert handled == [7]
        assert queue.unreadable() is None
    finally:
        queue.stop()
        assert queue.join(10)
