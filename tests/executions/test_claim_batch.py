"""A burst's runs claimed several at a time (`store.claim_batch`, `Executor._claim`, issue 15):
a consumer thread that finds more ids waiting at the front of this process's queue claims them
with its own in one transaction and hands them back claimed; every rule of a single claim
holds (exactly once, the concurrency limit, cancel, the stop)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from opscraft import runtime
from opscraft.execution import store
from opscraft.execution.bus import LocalLogBus
from opscraft.execution.cancel import LocalCancelSignal
from opscraft.execution.executor import ClaimedRun, Executor
from opscraft.execution.queue import HueyQueue
from opscraft.execution.spec import StopReason
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, output, start, statements_on, wait_for

_E = store.EXECUTIONS.c


def _rows(rt: runtime.Runtime, ids: list[int]) -> dict[int, tuple[str, str | None]]:
    """{id: (status, worker_id)} of runs `ids`, read through the worker's store."""
    assert rt.worker is not None
    query = select(_E.id, _E.status, _E.worker_id).where(_E.id.in_(ids))
    return {int(i): (str(s), w) for i, s, w in rt.worker.store.run(lambda conn: conn.execute(query).all())}


async def test_a_batch_claims_each_queued_run_of_an_unlimited_script_once(
    client: httpx.AsyncClient, admin: LoggedIn, rt: runtime.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = rt.worker
    assert worker is not None
    # Runs left `queued`: the worker neither takes them at submission nor from its queue.
    monkeypatch.setattr(worker.queue, "enqueue", lambda _id: None)
    monkeypatch.setattr(worker.queue, "free_slots", lambda: 0)
    plain = await make_script(client, admin, "echo plain\n")
    limited = await make_script(client, admin, "echo limited\n", max_concurrent=5)
    a, b = [(await start(client, admin, plain, "local"))["id"] for _ in range(2)]
    held = (await start(client, admin, limited, "local"))["id"]
    c = (await start(client, admin, plain, "local"))["id"]
    claims = worker.store.run(store.claim_batch, rt.settings, "batch-worker", [c, held, a, b])
    assert [claim.execution_id for claim in claims] == [c, a, b]  # in the order asked
    assert all(claim.spec is not None and claim.spec.content == "echo plain\n" for claim in claims)
    assert all(claim.columns["worker_id"] == "batch-worker" for claim in claims)
    rows = _rows(rt, [a, b, c, held])
    assert rows[held] == ("queued", None)  # a limited script's run is weighed by `claim` alone
    assert {rows[i] for i in (a, b, c)} == {("running", "batch-worker")}
    # Exactly once: claimed already, nobody claims them again, alone or in a batch.
    assert worker.store.run(store.claim_batch, rt.settings, "other", [a, b, c]) == []
    assert worker.store.run(store.claim, rt.settings, "other", a) is None
    assert _rows(rt, [a])[a] == ("running", "batch-worker")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_burst_behind_busy_threads_is_claimed_in_batches_and_runs_once_each(
    client: httpx.AsyncClient, admin: LoggedIn, rt: runtime.Runtime, tmp_path: Path
) -> None:
    """Runs queued while every consumer thread is busy are claimed a few per transaction once
    the threads are free; each runs once, with its output; a limited script's runs in the same
    burst still never overlap (each holds a directory while it runs)."""
    worker = rt.worker
    assert worker is not None and worker.store._sync is not None
    threads = rt.settings.workers
    gate = tmp_path / "gate"
    holder = await make_script(client, admin, f"while [ ! -e {gate} ]; do sleep 0.01; done\n")
    plain = await make_script(client, admin, 'echo "run $$"\n')
    busy = tmp_path / "busy"
    limited = await make_script(
        client, admin, f"mkdir {busy} || exit 3\nsleep 0.05\nrmdir {busy}\n", max_concurrent=1
    )
    holders = [(await start(client, admin, holder, "local"))["id"] for _ in range(threads)]
    burst = [(await start(client, admin, plain, "local"))["id"] for _ in range(4 * threads)]
    limited_runs = [(await start(client, admin, limited, "local"))["id"] for _ in range(3)]
    assert {row[0] for row in _rows(rt, burst).values()} == {"queued"}  # all waiting in the queue
    batch = "WHERE EXECUTIONS.ID IN"
    with statements_on(worker.store._sync, lambda s: batch in s.upper() and "UPDATE" in s.upper()) as claims:
        gate.touch()
        finals = [await wait_for(client, admin, i) for i in [*holders, *burst, *limited_runs]]
    assert [final["status"] for final in finals] == ["success"] * len(finals), finals
    assert 0 < len(claims) < len(burst)  # claimed several at a time
    outputs = [await output(client, admin, i) for i in burst]
    assert all(text.startswith("run ") and text.count("\n") == 1 for text in outputs), outputs
    assert {final["worker_id"] for final in finals} == {worker.worker_id}


def _bare_executor(queue: HueyQueue, claims: list[store.Claim]) -> tuple[Executor, list[Any]]:
    """An `Executor` on `queue` whose store claims `claims` (batch) or nothing (alone); the
    ends it hands its finisher."""
    ended: list[Any] = []

    class Finisher:
        def put(self, execution_id: int, result: store.Finish) -> None:
            ended.append((execution_id, result.status, result.error_message))

    class Db:
        def run(self, step: Any, *args: Any) -> Any:
            return claims if step is store.claim_batch else None

    executor = Executor.__new__(Executor)
    executor.finisher = Finisher()  # type: ignore[assignment]
    executor.cancels, executor._lock, executor._active = LocalCancelSignal(), threading.Lock(), {}
    executor.bus, executor.queue, executor.allowed = LocalLogBus(), queue, None
    executor.db, executor.settings, executor.worker_id = Db(), None, "w"  # type: ignore[assignment]
    return executor, ended


def _claim(execution_id: int) -> store.Claim:
    return store.Claim(execution_id, "local", 1, store.clock.now(), False)


def test_runs_claimed_ahead_go_back_in_front_watched_and_the_rest_as_ids(tmp_path: Path) -> None:
    queue = HueyQueue.sqlite(tmp_path / "queue.db", 4, lambda _: None, in_process=True)
    for execution_id in (2, 3, 4, 5, 6):
        queue.enqueue(execution_id)
    executor, ended = _bare_executor(queue, [_claim(1), _claim(2), _claim(4)])
    mine = executor._claim(1)
    assert mine is not None and mine.execution_id == 1
    handed = list(queue._handed)
    # 2 and 4 claimed, in front in their order, 3 not (weighed alone later), 5 and 6 untouched.
    order = [job.claim.execution_id if isinstance(job, ClaimedRun) else job for job in handed]
    assert order == [2, 3, 4, 5, 6]
    assert sorted(executor.active()) == [2, 4]  # watched for a cancel while they wait
    executor.cancel(4)
    run_4 = handed[2]
    assert isinstance(run_4, ClaimedRun) and run_4.control.reason is StopReason.cancelled
    assert queue.queued_ahead(5) == []  # a claimed run at the front: none taken ahead of it
    assert ended == []


def test_queued_ahead_takes_at_most_one_less_than_the_threads_and_only_ids(tmp_path: Path) -> None:
    queue = HueyQueue.sqlite(tmp_path / "queue.db", 3, lambda _: None, in_process=True)
    for execution_id in (1, 2, 3, 4):
        queue.enqueue(execution_id)
    assert queue.queued_ahead(10) == [1, 2]
    assert queue.put_back([1, 2]) is True
    assert list(queue._handed) == [1, 2, 3, 4]
    on_file = HueyQueue.sqlite(tmp_path / "file.db", 3, lambda _: None)
    assert on_file.queued_ahead(2) == []  # a queue in a file (other processes) is never read ahead


def test_runs_claimed_ahead_as_the_worker_stops_end_as_interrupted(tmp_path: Path) -> None:
    queue = HueyQueue.sqlite(tmp_path / "queue.db", 4, lambda _: None, in_process=True)
    queue.enqueue(2)
    queue.enqueue(3)
    executor, ended = _bare_executor(queue, [_claim(1), _claim(2)])
    real = queue.queued_ahead

    def then_stopped(most: int) -> list[int]:
        taken = real(most)
        assert queue.left_over() == []  # the worker's stop, while the batch is claimed
        return taken

    queue.queued_ahead = then_stopped  # type: ignore[method-assign]
    assert executor._claim(1) is not None
    assert ended == [(2, "error", "interrupted by server shutdown")]  # never left `running`
    assert executor.active() == [] and list(queue._handed) == []
