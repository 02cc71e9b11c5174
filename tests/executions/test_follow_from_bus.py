"""A live run of this process's worker is followed from the bus alone while the bus holds all of
it (issue 15's lean path): its `running` event came before any output and nothing of its output
is stored yet, so a watcher (WebSocket, `POST .../stream`, the execution page) reads no storage
before its first message. Anything else reads storage first, as before."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from opscraft import runtime
from opscraft.execution.bus import LocalLogBus
from opscraft.execution.client import ExecutionClient
from opscraft.execution.events import Event, LogEvent, StatusEvent
from opscraft.execution.executor import Executor
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, start, statements_on, wait_for
from tests.executions.test_executions_stream import stream_run
from tests.waiting import until

STARTED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
RUNNING = StatusEvent("running", started_at=STARTED)


async def test_the_bus_holds_a_run_from_its_start_until_its_first_batch_is_stored() -> None:
    bus = LocalLogBus()
    bus.publish(1, RUNNING)
    bus.publish(1, LogEvent(1, "stdout", "a"))
    held = bus.subscribe(1)
    assert held.status == RUNNING and [e.seq for e in held.backlog] == [1]
    assert bus.subscribe(1, after_seq=1).backlog == []  # resumes after a seq, still whole
    bus.stored(1, 1)
    assert bus.subscribe(1).status is None  # stored output is read from storage again


async def test_the_bus_does_not_hold_a_run_it_did_not_see_start() -> None:
    bus = LocalLogBus()
    bus.publish(2, LogEvent(1, "stdout", "a"))  # output before any `running` event here
    bus.publish(2, RUNNING)
    assert bus.subscribe(2).status is None
    assert bus.subscribe(3).status is None  # nothing published at all: a queued run, another worker's
    bus.publish(4, RUNNING)
    bus.publish(4, StatusEvent("success", final=True, exit_code=0))
    assert bus.subscribe(4).status is None  # ended: the row says how


class _NoStorage:
    """A database a follow must not touch."""

    @property
    def engine(self) -> Any:
        raise AssertionError("storage was read")


async def test_follow_of_a_held_run_reads_no_storage() -> None:
    bus = LocalLogBus()
    client = ExecutionClient(_NoStorage(), None, bus, None, None)  # type: ignore[arg-type]
    bus.publish(5, RUNNING)
    bus.publish(5, LogEvent(1, "stdout", "one\n"))
    events: list[Event] = []

    async def watch() -> None:
        async for event in client.follow(5):
            events.append(event)

    watcher = asyncio.create_task(watch())
    await until(lambda: len(events) >= 2, "the watcher to get the first two events", every=0.001)
    bus.publish(5, LogEvent(2, "stderr", "two\n"))
    bus.publish(5, StatusEvent("success", final=True, exit_code=0))
    await asyncio.wait_for(watcher, 5)
    assert events == [
        RUNNING,
        LogEvent(1, "stdout", "one\n"),
        LogEvent(2, "stderr", "two\n"),
        StatusEvent("success", final=True, exit_code=0),
    ]


def _replays_on(rt: runtime.Runtime) -> Any:
    """The reads of stored output (`client._REPLAY`) on the web side's engine meanwhile."""
    return statements_on(rt.db.engine.sync_engine, lambda statement: "execution_logs" in statement.lower())


@pytest.fixture
async def http(live_api: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://{live_api}", timeout=60) as client:
        yield client


async def _streamed_without_a_replay(
    http: httpx.AsyncClient, admin: LoggedIn, rt: runtime.Runtime, script_id: int
) -> list[tuple[str, Any, Any]]:
    """(event name, status, content) of each event of `POST .../stream` of a local run of
    `script_id`, which read no stored output."""
    with _replays_on(rt) as reads:
        response, events = await stream_run(http, admin, {"script_id": script_id, "runner": "local"})
    assert response.status_code == 200
    assert reads == []
    return [(name, data.get("status"), data.get("content")) for name, data, _ in events if data]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_live_runs_stream_has_its_status_and_output_without_a_replay(
    http: httpx.AsyncClient, client: httpx.AsyncClient, admin: LoggedIn, rt: runtime.Runtime
) -> None:
    """`POST .../stream` of a run that prints, waits, then prints again: every event in order,
    and the run's stored output was never read (the bus held it all)."""
    script_id = await make_script(client, admin, "echo first; sleep 0.3; echo second >&2\n")
    kinds = await _streamed_without_a_replay(http, admin, rt, script_id)
    assert kinds == [
        ("execution", kinds[0][1], None),
        ("status", "running", None),
        ("log", None, "first\n"),
        ("log", None, "second\n"),
        ("end", "success", None),
    ], kinds


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_run_claimed_at_submission_is_held_before_its_thread_picks_it_up(
    http: httpx.AsyncClient,
    client: httpx.AsyncClient,
    admin: LoggedIn,
    rt: runtime.Runtime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A loaded machine: the consumer thread starts the claimed run after the stream has
    subscribed. The bus holds the run from its hand-over (`Executor._hand`, before the answer),
    so the stream still reads no storage; its `running` was published by the thread, and the
    stream read storage whenever the thread came late (the test above failed under load)."""
    start_claimed = Executor.start_claimed

    def late_thread(self: Executor, *args: Any) -> None:
        time.sleep(0.3)  # the loaded machine's lateness itself, not a wait for a condition
        start_claimed(self, *args)

    monkeypatch.setattr(Executor, "start_claimed", late_thread)
    script_id = await make_script(client, admin, "echo only\n")
    kinds = await _streamed_without_a_replay(http, admin, rt, script_id)
    assert kinds == [
        ("execution", "running", None),
        ("status", "running", None),
        ("log", None, "only\n"),
        ("end", "success", None),
    ], kinds


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"], indirect=True)
async def test_a_finished_run_is_replayed_from_storage(
    client: httpx.AsyncClient, admin: LoggedIn, rt: runtime.Runtime
) -> None:
    """A watcher that comes after the end reads it all from storage (the bus let the run go)."""
    script_id = await make_script(client, admin, "echo done\n")
    started = await start(client, admin, script_id, "local")
    assert (await wait_for(client, admin, started["id"]))["status"] == "success"
    assert rt.executions is not None
    with _replays_on(rt) as reads:
        events = [event async for event in rt.executions.follow(started["id"])]
    assert [e.message()["type"] for e in events] == ["status", "log", "end"]
    assert events[1].message()["content"] == "done\n"
    assert len(reads) == 1


async def test_a_quiet_held_run_is_read_from_storage_again() -> None:
    """After a quiet `poll_seconds` the row is read even while the bus holds the run: a run
    ended elsewhere (its worker declared lost by another process) is not awaited for ever."""
    bus = LocalLogBus()
    reads: list[int] = []

    class Client(ExecutionClient):
        async def _replay(self, execution_id: int, after: int) -> list[Any]:
            reads.append(after)
            lost = {"status": "error", "exit_code": None, "error_message": "worker lost"}
            return [type("Row", (), {**lost, "started_at": STARTED, "finished_at": STARTED, "seq": None})]

    client = Client(_NoStorage(), None, bus, None, None, poll_seconds=0.05)  # type: ignore[arg-type]
    bus.publish(6, RUNNING)
    events = await asyncio.wait_for(_all(client.follow(6)), 5)
    assert events[0] == RUNNING and reads == [0]
    assert [e.message()["type"] for e in events] == ["status", "end"]
    assert events[-1].message()["error_message"] == "worker lost"


async def _all(events: AsyncIterator[Event]) -> list[Event]:
    return [event async for event in events]
