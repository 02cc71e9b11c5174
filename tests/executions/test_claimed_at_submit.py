"""A run claimed in its submission's own transaction (`Executor.take`, issue 15): on SQLite, where
this process's worker takes its runs in memory, a run submitted while a consumer thread is free
is claimed by the group commit that inserts it and handed to that thread after the COMMIT; the
worker runs no claim transaction of its own. Everything else goes through the queue as before."""

from __future__ import annotations

import collections
import threading
from contextlib import AbstractContextManager
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from opscraft import runtime
from opscraft.db.models import AuditEvent
from opscraft.execution import queue as queue_module
from opscraft.execution import store
from opscraft.execution.bus import LocalLogBus
from opscraft.execution.cancel import LocalCancelSignal
from opscraft.execution.executor import ClaimedRun, Executor
from opscraft.execution.queue import HueyQueue
from opscraft.execution.spec import RunControl
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, output, start, statements_on, wait_for
from tests.waiting import wait_until


def claims_on(engine: Engine) -> AbstractContextManager[list[str]]:
    """The claim UPDATEs (`queued` -> `running`) run on `engine` meanwhile."""
    claim = "UPDATE EXECUTIONS SET STATUS=?, WORKER_ID="
    return statements_on(engine, lambda statement: statement.lstrip().upper().startswith(claim))


def _engines(rt: runtime.Runtime) -> tuple[Engine, Engine]:
    """(the submissions' group commit engine, the worker's store engine), SQLite's."""
    worker = rt.worker
    assert worker is not None and worker.store._sync is not None and rt.db.group._sqlite is not None
    return rt.db.group._sqlite, worker.store._sync


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_run_is_claimed_in_its_submission_and_runs_once(
    client: httpx.AsyncClient, admin: LoggedIn, rt: runtime.Runtime
) -> None:
    assert rt.executions is not None and rt.executions.take is not None
    group_engine, worker_engine = _engines(rt)
    script_id = await make_script(client, admin, "echo out; echo err >&2\n")
    with claims_on(group_engine) as in_submission, claims_on(worker_engine) as by_worker:
        started = await start(client, admin, script_id, "local")
        final = await wait_for(client, admin, started["id"])
    assert final["status"] == "success", final
    assert len(in_submission) == 1 and by_worker == []
    # The 202 says what is true: the run was claimed before it was answered (it said `queued`).
    assert started["status"] == "running" and started["worker_id"] == final["worker_id"]
    assert started["started_at"] == final["started_at"] and started["image"] is None
    assert await output(client, admin, started["id"]) == "out\nerr\n"
    async with rt.db.session() as session:
        row = (
            await session.exec(select(store.EXECUTIONS).where(store.EXECUTIONS.c.id == started["id"]))
        ).one()  # type: ignore[call-overload]
        audited = (
            await session.exec(
                select(AuditEvent.action).where(  # type: ignore[call-overload]
                    AuditEvent.target_id == str(started["id"])
                )
            )
        ).all()
    assert row.worker_id == rt.worker.worker_id  # type: ignore[union-attr]
    assert row.started_at is not None and row.started_at >= row.queued_at
    assert "execution.create" in {action for (action,) in audited}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_run_with_a_concurrency_limit_or_no_free_thread_goes_through_the_queue(
    client: httpx.AsyncClient, admin: LoggedIn, rt: runtime.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    group_engine, worker_engine = _engines(rt)
    limited = await make_script(client, admin, "echo limited\n", max_concurrent=1)
    with claims_on(group_engine) as in_submission, claims_on(worker_engine) as by_worker:
        first = await start(client, admin, limited, "local")
        assert (await wait_for(client, admin, first["id"]))["status"] == "success"
    assert in_submission == [] and len(by_worker) == 1
    assert first["status"] == "queued" and first["worker_id"] is None and first["started_at"] is None
    plain = await make_script(client, admin, "echo plain\n")
    assert rt.worker is not None
    monkeypatch.setattr(rt.worker.queue, "free_slots", lambda: 0)
    with claims_on(group_engine) as in_submission, claims_on(worker_engine) as by_worker:
        second = await start(client, admin, plain, "local")
        assert (await wait_for(client, admin, second["id"]))["status"] == "success"
    assert in_submission == [] and len(by_worker) == 1
    assert await output(client, admin, second["id"]) == "plain\n"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_run_claimed_in_its_submission_is_cancelled_at_once(
    client: httpx.AsyncClient, admin: LoggedIn, rt: runtime.Runtime
) -> None:
    script_id = await make_script(client, admin, "echo started; sleep 30\n")
    started = await start(client, admin, script_id, "local")
    response = await client.post(f"/api/v1/executions/{started['id']}/cancel", headers=admin.headers)
    assert response.status_code == 200, response.text
    final = await wait_for(client, admin, started["id"], timeout=10)
    assert final["status"] == "cancelled", final


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_cancel_before_its_consumer_thread_starts_the_run_is_not_lost(
    client: httpx.AsyncClient, admin: LoggedIn, rt: runtime.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel answered between the submission's COMMIT and the moment a consumer thread picks
    the claimed run up (a loaded machine) still stops it: the run ends `cancelled`, never
    `success`. Its cancel watcher is set at the hand-over, before the submission is answered;
    it used to be set by the consumer thread, so this cancel reached nobody and the run went
    on (the housekeeping's look in the database comes only every second, too late for it)."""
    picked_up, release = threading.Event(), threading.Event()
    start_claimed = Executor.start_claimed

    def slow_thread(self: Executor, *args: Any) -> None:
        picked_up.set()
        assert release.wait(10)
        start_claimed(self, *args)

    monkeypatch.setattr(Executor, "start_claimed", slow_thread)
    script_id = await make_script(client, admin, "echo ran\n")
    started = await start(client, admin, script_id, "local")
    response = await client.post(f"/api/v1/executions/{started['id']}/cancel", headers=admin.headers)
    assert response.status_code == 200, response.text
    assert picked_up.wait(10)  # claimed in the submission: its thread waits to start it
    release.set()
    final = await wait_for(client, admin, started["id"], timeout=10)
    assert final["status"] == "cancelled", final
    assert await output(client, admin, started["id"]) == ""  # cancelled before it started: never started


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
async def test_no_claim_in_the_submission_without_an_in_process_queue(
    client: httpx.AsyncClient, admin: LoggedIn, rt: runtime.Runtime
) -> None:
    """On PostgreSQL the job queue is shared (a file or Redis): the worker claims, as before."""
    assert rt.worker is not None and rt.executions is not None
    assert rt.worker.submission_take() is None and rt.executions.take is None
    script_id = await make_script(client, admin, "echo pg\n")
    started = await start(client, admin, script_id, "local")
    assert (await wait_for(client, admin, started["id"]))["status"] == "success"
    assert await output(client, admin, started["id"]) == "pg\n"


def _bare_executor() -> tuple[Executor, list[tuple[int, store.Finish]]]:
    """An `Executor` with what hand-overs and abandons use, and the ends it hands its finisher."""
    ended: list[tuple[int, store.Finish]] = []

    class Finisher:
        def put(self, execution_id: int, result: store.Finish) -> None:
            ended.append((execution_id, result))

    executor = Executor.__new__(Executor)
    executor.finisher = Finisher()  # type: ignore[assignment]
    executor.cancels, executor._lock, executor._active = LocalCancelSignal(), threading.Lock(), {}
    executor.bus = LocalLogBus()
    return executor, ended


def test_claimed_runs_left_at_shutdown_end_as_interrupted(tmp_path: Any) -> None:
    """A claimed run handed after the consumer threads stopped is given back by `left_over` and
    ended by `Executor.abandon` (its row is `running`: recovery would otherwise end it later)."""
    ran: list[int] = []
    queue = HueyQueue.sqlite(tmp_path / "queue.db", 1, ran.append, in_process=True)
    assert queue.free_slots() == 1
    executor, ended = _bare_executor()
    claim = store.Claim(7, "local", 1, store.clock.now(), False)
    queue.enqueue(3)
    executor._hand(queue, ClaimedRun(executor, claim, RunControl()))
    assert executor.active() == [7]  # watched for its cancel from the hand-over on
    assert queue.free_slots() == -1  # two handed, one thread
    left = queue.left_over()
    assert [job.claim.execution_id for job in left] == [7]  # type: ignore[attr-defined]
    executor.abandon(left)
    assert [(i, f.status, f.error_message) for i, f in ended] == [
        (7, "error", "interrupted by server shutdown")
    ]
    assert executor.active() == []
    assert queue.free_slots() == 0  # the plain id stays: it is claimed when consumed


def test_a_run_claimed_as_the_worker_stops_ends_as_interrupted_not_running(tmp_path: Any) -> None:
    """The shutdown's race: a submission's group commit claimed a run while the consumer was
    still taking runs (`free_slots` > 0), and hands it over after the worker's stop collected
    what was left (`left_over`). The stopped queue refuses it (`hand` is False) and the run
    ends as interrupted at once; it used to stay in the deque, `running` with no thread, until
    the next start recovered it."""
    queue = HueyQueue.sqlite(tmp_path / "queue.db", 1, lambda _: None, in_process=True)
    queue.start()
    assert queue.free_slots() == 1  # what the submission's `take` saw
    queue.stop()
    assert queue.join(10)
    assert queue.left_over() == []  # nothing was handed yet
    executor, ended = _bare_executor()
    claim = store.Claim(9, "local", 1, store.clock.now(), False)
    executor._hand(queue, ClaimedRun(executor, claim, RunControl()))  # after the COMMIT
    assert [(i, f.status, f.error_message) for i, f in ended] == [
        (9, "error", "interrupted by server shutdown")
    ]
    assert executor.active() == [] and queue.left_over() == []  # not left waiting anywhere
    assert queue.hand(lambda: None) is False


def test_free_slots_counts_threads_running_a_handed_job(tmp_path: Any) -> None:
    started, release = threading.Event(), threading.Event()

    def job() -> None:
        started.set()
        assert release.wait(10)

    queue = HueyQueue.sqlite(tmp_path / "queue.db", 2, lambda _: None, in_process=True)
    queue.start()
    try:
        queue.hand(job)
        assert started.wait(10)
        assert queue.free_slots() == 1
    finally:
        release.set()
        wait_until(lambda: queue.free_slots() == 2, "both slots free")
        queue.stop()
        assert queue.join(10)
    assert queue.free_slots() == 0  # stopping: a run claimed now would never start


def test_free_slots_never_counts_a_thread_taking_a_job_as_free(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seen by a submission at the instant a consumer thread pops a handed job, the thread is
    busy: it used to count as free (the job gone from the deque, the thread not yet busy), and
    a run claimed then waited, `running`, for a thread that was not free."""
    seen: list[int] = []
    queue: HueyQueue | None = None

    class Watched(collections.deque):  # type: ignore[type-arg]
        def popleft(self) -> Any:
            job = super().popleft()
            assert queue is not None
            seen.append(queue.free_slots())  # the thread paused right after its pop
            return job

    monkeypatch.setattr(queue_module, "deque", Watched)
    done = threading.Event()
    queue = HueyQueue.sqlite(tmp_path / "queue.db", 1, lambda _: None, in_process=True)
    queue.start()
    try:
        queue.hand(done.set)
        assert done.wait(10)
    finally:
        queue.stop()
        assert queue.join(10)
    assert seen == [0]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_group_of_several_submissions_is_left_to_the_queue(rt: runtime.Runtime) -> None:
    """A burst's runs are claimed by the consumer threads, not by the group's thread: `take`
    returns at once for a group of two, without a statement (no connection is even needed)."""
    assert rt.worker is not None and rt.worker.queue.free_slots() > 0  # type: ignore[attr-defined]
    members: list[tuple[Any, int]] = [(object(), 1), (object(), 2)]
    assert rt.worker.executor.take(None, members) == {}  # type: ignore[arg-type]
