"""Run events (the outbox) and system actors, on SQLite and PostgreSQL.

Every final state writes one run event with it; each subscriber gets each event once, also
across a restart and with two dispatchers at work; a failing subscriber gets it again. A system
actor starts runs on a user's behalf with that user's permissions at that moment.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft import lifecycle, runtime
from opscraft.db.models import AuditEvent, Execution, RunEvent, RunEventDelivery, User
from opscraft.db.models.executions import Trigger
from opscraft.execution import run_events
from opscraft.execution.run_events import RunEventDispatcher, RunEventMessage
from opscraft.services import audit, executions
from opscraft.services.actor import Actor
from opscraft.services.errors import Forbidden
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, run, start, wait_for
from tests.waiting import until


class Probe:
    """A subscriber that remembers what it was given; fails while `failing` is set."""

    def __init__(self) -> None:
        self.seen: list[int] = []
        self.failing = False

    async def __call__(self, session: AsyncSession, events: list[RunEventMessage]) -> None:
        if self.failing:
            raise RuntimeError("subscriber down")
        self.seen += [e.execution_id for e in events]


async def test_each_final_state_writes_one_event_delivered_once_per_subscriber(
    client: httpx.AsyncClient, admin: LoggedIn, tmp_path: Path
) -> None:
    ok, _ = await run(client, admin, "echo ok\n", "local")
    failed, _ = await run(client, admin, "exit 3\n", "local")
    script_id = await make_script(client, admin, "sleep 30\n", max_concurrent=1)
    running = await start(client, admin, script_id, "local")
    await wait_for(client, admin, running["id"], {"running"})
    queued = await start(client, admin, script_id, "local")
    for execution in (queued, running):  # a queued run ends in the service, a running one in the worker
        r = await client.post(f"/api/v1/executions/{execution['id']}/cancel", headers=admin.headers)
        assert r.status_code == 200, r.text
    await wait_for(client, admin, running["id"])
    ids = [ok["id"], failed["id"], queued["id"], running["id"]]
    async with runtime.current().db.session() as session:
        events = (await session.exec(select(RunEvent).order_by(col(RunEvent.id)))).all()
    assert sorted(e.execution_id for e in events) == sorted(ids)
    assert {e.execution_id: e.status for e in events} == {
        ok["id"]: "success",
        failed["id"]: "failed",
        queued["id"]: "cancelled",
        running["id"]: "cancelled",
    }
    failed_event = next(e for e in events if e.execution_id == failed["id"])
    assert failed_event.details["exit_code"] == 3 and failed_event.details["trigger"] == "api"

    db = runtime.current().db
    probe = Probe()
    first = RunEventDispatcher(db, "test-first")
    first.subscribe("probe", probe)
    probe.failing = True
    assert await first.deliver() == 0  # nothing recorded: it comes again
    probe.failing = False
    assert await first.deliver() == len(ids)
    assert await first.deliver() == 0
    assert sorted(probe.seen) == sorted(ids)

    # A restart: a new dispatcher with the same subscriber sees only what is new.
    later, _ = await run(client, admin, "echo later\n", "local")
    restarted = RunEventDispatcher(db, "test-restarted")
    restarted.subscribe("probe", probe)
    other = RunEventDispatcher(db, "test-other")
    other.subscribe("probe", probe)
    await asyncio.gather(restarted.deliver(), other.deliver())  # two processes at once
    await restarted.deliver()
    assert Counter(probe.seen) == Counter([*ids, later["id"]])

    # The audit subscriber of the runtime, across a real restart of the runtime: once per run.
    settings = runtime.current().settings
    await lifecycle.stop()
    await lifecycle.start(settings)
    dispatcher = runtime.current().run_events
    assert dispatcher is not None
    await dispatcher.deliver()
    async with runtime.current().db.session() as session:
        audited = Counter(
            (
                await session.exec(
                    select(AuditEvent.target_id).where(col(AuditEvent.action) == "execution.finished")
                )
            ).all()
        )
        deliveries = (
            await session.exec(
                select(func.count())
                .select_from(RunEventDelivery)
                .where(RunEventDelivery.subscriber == "audit")
            )
        ).one()
    assert audited == Counter(str(i) for i in [*ids, later["id"]])
    assert deliveries == len(ids) + 1


async def _user(user_id: int) -> User:
    async with runtime.current().db.session() as session:
        user = await session.get(User, user_id)
    assert user is not None
    return user


async def test_system_actor_runs_as_its_user_and_is_refused_for_a_deactivated_one(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn
) -> None:
    script_id = await make_script(client, admin, "echo scheduled\n")
    db = runtime.current().db
    async with db.session() as session:
        owner = await session.get(User, operator.id)
        started = await executions.create(
            session,
            Actor.on_behalf_of(owner, "schedule:7"),
            script_id,
            {},
            runner="local",
            trigger=Trigger.schedule,
        )
    final = await wait_for(client, admin, started.id)
    assert final["status"] == "success"
    assert final["triggered_by"] == operator.id
    async with db.session() as session:
        row = await session.get(Execution, started.id)
    assert final["trigger"] == "schedule" and final["trigger_ref"] == "schedule:7"
    assert row is not None and row.worker_id == final["worker_id"] is not None

    r = await client.put(f"/api/v1/users/{operator.id}", json={"is_active": False}, headers=admin.headers)
    assert r.status_code == 200, r.text
    deactivated = await _user(operator.id)
    attempts = [
        (Actor.on_behalf_of(deactivated, "schedule:7"), Trigger.schedule),
        (Actor.on_behalf_of(deactivated, "webhook:2"), Trigger.webhook),
        (Actor.on_behalf_of(None, "schedule:9"), Trigger.schedule),  # the owner was deleted
    ]
    async with db.session() as session:
        count_before = (await session.exec(select(func.count()).select_from(Execution))).one()
    for actor, trigger in attempts:
        async with db.session() as session:
            with pytest.raises(Forbidden, match=str(actor.system)):
                await executions.create(session, actor, script_id, {}, runner="local", trigger=trigger)
    async with db.session() as session:
        assert (await session.exec(select(func.count()).select_from(Execution))).one() == count_before
        refused = (
            await session.exec(
                select(AuditEvent)
                .where(col(AuditEvent.action) == "execution.refused")
                .order_by(col(AuditEvent.id))
            )
        ).all()
    assert [(e.actor_id, e.details["system_actor"], e.details["trigger"]) for e in refused] == [
        (operator.id, "schedule:7", "schedule"),
        (operator.id, "webhook:2", "webhook"),
        (None, "schedule:9", "schedule"),
    ]
    assert all(e.target_id == str(script_id) and "deactivated" in e.details["reason"] for e in refused)
    # A human actor cannot claim a system trigger, nor a system actor a human one.
    for actor, trigger in ((Actor(await _user(admin.id)), Trigger.schedule), (attempts[0][0], Trigger.api)):
        async with db.session() as session:
            with pytest.raises(ValueError, match="does not fit"):
                await executions.create(session, actor, script_id, {}, trigger=trigger)


async def test_a_failing_subscriber_holds_back_only_itself_in_the_shared_transaction(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """The subscribers of a batch share one transaction: when one fails, it is rolled back and
    written again at once without it, so the others' database work lands exactly once."""
    ids = [(await run(client, admin, "echo ok\n", "local"))[0]["id"] for _ in range(3)]

    async def record(session: AsyncSession, events: list[RunEventMessage]) -> None:
        rows = [audit.columns(Actor(None), "test.delivered", "execution", e.execution_id) for e in events]
        await audit.record_all(session, rows)

    db = runtime.current().db
    dispatcher = RunEventDispatcher(db, "test-shared")
    dispatcher.subscribe("test-recorder", record)  # its work is written, then rolled back once
    broken = Probe()
    broken.failing = True
    dispatcher.subscribe("test-broken", broken)
    async with db.session() as session:
        events = (await session.exec(select(func.count()).select_from(RunEvent))).one()
    assert await dispatcher.deliver() == events  # the recorder's deliveries only
    broken.failing = False
    assert await dispatcher.deliver() == events  # now the broken one's, alone
    assert await dispatcher.deliver() == 0
    async with db.session() as session:
        recorded = Counter(
            (
                await session.exec(
                    select(AuditEvent.target_id).where(col(AuditEvent.action) == "test.delivered")
                )
            ).all()
        )
        delivered = Counter(
            (
                await session.exec(
                    select(RunEventDelivery.subscriber).where(
                        col(RunEventDelivery.subscriber).in_(["test-recorder", "test-broken"])
                    )
                )
            ).all()
        )
    assert all(recorded[str(i)] == 1 for i in ids) and sum(recorded.values()) == events
    assert delivered == {"test-recorder": events, "test-broken": events}
    assert sorted(broken.seen) == sorted(int(target) for target in recorded)


class _CountingLoop:
    """The dispatcher's loop, counting the wake-ups handed to it from other threads."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.handed = 0

    def call_soon_threadsafe(self, callback: Callable[[], object]) -> None:
        self.handed += 1
        self._loop.call_soon_threadsafe(callback)

    def is_closed(self) -> bool:
        return self._loop.is_closed()


async def _written(execution_id: int, count: int) -> list[int]:
    """The ids of `count` run events of `execution_id` written (committed) now."""
    async with runtime.current().db.session() as session:
        rows = [RunEvent(execution_id=execution_id, kind="test.wake", status="success") for _ in range(count)]
        session.add_all(rows)
        await session.commit()
        return [row.id for row in rows if row.id is not None]


def _wakes(dispatcher: RunEventDispatcher, threads: int, each: int) -> None:
    """Wake `dispatcher` from `threads` threads, `each` times each, the loop held meanwhile."""
    workers = [
        threading.Thread(target=lambda: [dispatcher.wake() for _ in range(each)]) for _ in range(threads)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()


async def test_a_burst_of_wakes_reaches_the_loop_once_and_every_event_written_before_is_delivered(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """The finisher wakes the dispatcher once per run's end, from its own thread: while a
    wake-up is on its way to the busy loop, more are not sent (a burst of ends costs the loop
    one), yet each event committed before a wake is delivered without waiting for the poll, and
    a wake after that round reaches the loop again (docs/benchmarks.md, session 35)."""
    execution, _ = await run(client, admin, "echo ok\n", "local")
    db = runtime.current().db
    seen: list[int] = []

    async def probe(session: AsyncSession, events: list[RunEventMessage]) -> None:
        seen.extend(e.id for e in events)

    dispatcher = RunEventDispatcher(db, "test-wakes", poll_seconds=3600)  # only a wake delivers
    dispatcher.subscribe("test-wakes", probe)
    dispatcher.start()

    try:
        await until(lambda: seen, "the first round")  # the events there at its start
        loop = _CountingLoop(asyncio.get_running_loop())
        dispatcher._loop = loop  # type: ignore[assignment]
        await until(lambda: dispatcher._parked, "the dispatcher waiting for a wake-up")
        burst = await _written(execution["id"], 5)
        _wakes(dispatcher, 8, 25)
        assert loop.handed == 1, "one wake-up on its way at a time"
        await until(lambda: set(burst) <= set(seen), "the burst's events")
        await until(lambda: dispatcher._parked, "the dispatcher waiting again")
        later = await _written(execution["id"], 1)
        _wakes(dispatcher, 1, 1)
        assert loop.handed == 2, "a wake after the round reaches the loop"
        await until(lambda: set(later) <= set(seen), "the later event")
        assert sorted(e for e in seen if e in {*burst, *later}) == sorted([*burst, *later]), "each once"
    finally:
        await dispatcher.stop()


async def test_wakes_while_the_dispatcher_is_busy_hand_the_loop_nothing_and_start_the_next_round(
    client: httpx.AsyncClient, admin: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ends written while the dispatcher is busy (here: the pause after a round) hand the loop
    no wake-up at all, from whatever thread: they leave a note, and the dispatcher starts its
    next round at once instead of waiting for a wake-up, so their events are still delivered
    without the poll. Each such wake-up was a write to the loop's wake-up descriptor with the
    GIL held, the finisher's largest share of a burst (docs/benchmarks.md, session 46)."""
    monkeypatch.setattr(run_events, "MIN_ROUND_SECONDS", 3.0)  # a pause long enough to act in
    execution, _ = await run(client, admin, "echo ok\n", "local")
    db = runtime.current().db
    seen: list[int] = []

    async def probe(session: AsyncSession, events: list[RunEventMessage]) -> None:
        seen.extend(e.id for e in events)

    dispatcher = RunEventDispatcher(db, "test-busy-wakes", poll_seconds=3600)  # only wakes deliver
    dispatcher.subscribe("test-busy-wakes", probe)
    dispatcher.start()
    loop = _CountingLoop(asyncio.get_running_loop())
    dispatcher._loop = loop  # type: ignore[assignment]

    try:
        await until(lambda: seen, "the first round")  # now in the pause after it
        during = await _written(execution["id"], 3)
        _wakes(dispatcher, 4, 10)
        assert loop.handed == 0, "no wake-up is handed to the loop while the dispatcher is busy"
        assert not dispatcher._parked, "still in the pause"
        await until(lambda: set(during) <= set(seen), "the events written during the pause")
        assert loop.handed == 0, "the next round started on the note, without a wake-up"
        await until(lambda: dispatcher._parked, "the dispatcher waiting for a wake-up")
        later = await _written(execution["id"], 1)
        _wakes(dispatcher, 2, 5)
        assert loop.handed == 1, "once it waits, one wake-up reaches the loop"
        await until(lambda: set(later) <= set(seen), "the later event")
        ours = [e for e in seen if e in {*during, *later}]
        assert sorted(ours) == sorted([*during, *later]), "each once"
    finally:
        await dispatcher.stop()
