"""Runs' ends written by the finisher (execution/finisher.py): several in one transaction, each
announced only once committed, and the consumer threads not held while they wait."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import event, select

from opscraft import runtime
from opscraft.db import unreachable
from opscraft.execution import executor, store
from opscraft.execution.events import LogEvent, StatusEvent
from opscraft.execution.output import OutputPipeline
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, output, start, wait_for
from tests.test_disk_full import sqlite_disk_full

RUNS = 6


async def test_ends_waiting_together_share_a_transaction_and_each_is_announced_after_its_commit(
    client: httpx.AsyncClient, admin: LoggedIn, rt: runtime.Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = rt.worker
    assert worker is not None
    finisher = worker.executor.finisher
    real_db, real_ended = finisher._db, worker.executor._ended
    batches: list[list[int]] = []
    first_held, release = threading.Event(), threading.Event()

    class HeldStore:
        """The worker's store, whose first transaction of ends waits until the others are over."""

        def run(self, step: Any, ends: list[tuple[int, store.Finish]]) -> Any:
            assert step is store.finish
            batches.append([execution_id for execution_id, _ in ends])
            if len(batches) == 1:
                first_held.set()
                assert release.wait(60)
            return real_db.run(step, ends)

    announced: dict[int, str] = {}

    def ended(execution_id: int, final: StatusEvent, waiting: int | None) -> None:
        # What another transaction reads as the end is announced: the end is committed.
        query = select(store.EXECUTIONS.c.status).where(store.EXECUTIONS.c.id == execution_id)
        announced[execution_id] = worker.store.run(lambda conn: str(conn.execute(query).scalar_one()))
        real_ended(execution_id, final, waiting)

    monkeypatch.setattr(finisher, "_db", HeldStore())
    engine = worker.store._sync or worker.loop.db.engine.sync_engine
    event_inserts: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO RUN_EVENTS"):
            event_inserts.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    monkeypatch.setattr(finisher, "_done", ended)
    try:
        script_id = await make_script(client, admin, "echo out\n")
        first = await start(client, admin, script_id, "local")
        assert first_held.wait(30)
        rest = [await start(client, admin, script_id, "local") for _ in range(RUNS - 1)]
        # The consumer threads are not held by the first end's write: the other runs run.
        ids = [first["id"], *(started["id"] for started in rest)]
        for execution_id in ids[1:]:
            await _wait_pending(finisher, execution_id)
        release.set()
        finals = [await wait_for(client, admin, execution_id) for execution_id in ids]
    finally:
        release.set()
        event.remove(engine, "before_cursor_execute", count)
    assert [final["status"] for final in finals] == ["success"] * RUNS
    assert [await output(client, admin, execution_id) for execution_id in ids] == ["out\n"] * RUNS
    assert batches[0] == [ids[0]]
    assert sorted(execution_id for batch in batches[1:] for execution_id in batch) == sorted(ids[1:])
    assert len(batches) < RUNS, batches  # the ends that waited were written together
    assert len(event_inserts) == len(batches)  # one INSERT of a transaction's run events
    assert announced == {execution_id: "success" for execution_id in ids}


async def _wait_pending(finisher: Any, execution_id: int) -> None:
    """Until the end of `execution_id` waits in the finisher (its run is over)."""
    for _ in range(600):
        with finisher._cond:
            if any(pending_id == execution_id for pending_id, _ in finisher._pending):
                return
        await asyncio.sleep(0.05)
    raise AssertionError(f"execution {execution_id} did not end while the first end was being written")


async def _run_in_worker_transactions(
    client: httpx.AsyncClient, admin: LoggedIn, rt: runtime.Runtime, script_id: int
) -> tuple[dict[str, Any], list[list[str]]]:
    """Run `script_id` locally to its end (SQLite): its final state and the statements (each
    up to its first parenthesis) of every transaction the worker's store began meanwhile."""
    worker = rt.worker
    assert worker is not None and worker.store._sync is not None
    engine = worker.store._sync
    transactions: list[list[str]] = []

    def begun(_conn: Any) -> None:
        transactions.append([])

    def executed(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        transactions[-1].append(statement.split("(")[0].strip())

    event.listen(engine, "begin", begun)
    event.listen(engine, "before_cursor_execute", executed)
    try:
        started = await start(client, admin, script_id, "local")
        final = await wait_for(client, admin, started["id"])
        assert worker.executor.finisher.wait_idle(10)
    finally:
        event.remove(engine, "begin", begun)
        event.remove(engine, "before_cursor_execute", executed)
    return final, transactions


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_a_short_runs_output_is_stored_in_its_ends_transaction(
    client: httpx.AsyncClient, admin: LoggedIn, rt: runtime.Runtime
) -> None:
    """The claim is in the submission (`Executor.take`) and the output comes with the end: the
    worker's store commits one transaction for the run, which holds its output chunks."""
    script_id = await make_script(client, admin, "echo out; echo err >&2\n")
    final, transactions = await _run_in_worker_transactions(client, admin, rt, script_id)
    assert final["status"] == "success", final
    assert await output(client, admin, final["id"]) == "out\nerr\n"
    writes = [t for t in transactions if any(not s.upper().startswith("SELECT") for s in t)]
    assert len(writes) == 1, transactions
    assert writes[0][0].upper().startswith("INSERT INTO EXECUTION_LOGS"), writes


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("limit", "statements"), [(None, 3), (2, 4)])
async def test_an_end_looks_for_a_waiting_run_only_for_a_script_with_a_concurrency_limit(
    client: httpx.AsyncClient, admin: LoggedIn, rt: runtime.Runtime, limit: int | None, statements: int
) -> None:
    """The end's transaction: the last output, the UPDATE (which returns the script's limit) and
    the run event; a run held back by a concurrency limit is looked for only when the script has
    one (session 49: it was looked for after every run, 4 statements)."""
    script_id = await make_script(client, admin, "echo out\n", max_concurrent=limit)
    final, transactions = await _run_in_worker_transactions(client, admin, rt, script_id)
    assert final["status"] == "success", final
    ends = [t for t in transactions if any(s.upper().startswith("UPDATE EXECUTIONS") for s in t)]
    assert [len(t) for t in ends][-1:] == [statements], transactions


@pytest.mark.parametrize(
    ("refusal", "message"),
    [
        ("refused", "storing the output failed: see the server log"),
        # Found with a server whose data directory filled up: the run ended as above (or "the
        # docker runner failed unexpectedly"). A full disk is the operator's to fix: said so.
        ("disk full", "its output could not be stored: the database cannot write: its disk is full"),
    ],
)
async def test_an_end_whose_output_cannot_be_stored_is_written_as_an_error(
    client: httpx.AsyncClient,
    admin: LoggedIn,
    rt: runtime.Runtime,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    refusal: str,
    message: str,
) -> None:
    """The end's transaction with its output chunks fails (not for want of a database; or its
    disk is full: SQLite's real SQLITE_FULL, tests/test_disk_full.py): the end is written again
    without them, `error` saying so, the byte counts kept."""
    worker = rt.worker
    assert worker is not None
    finisher = worker.executor.finisher
    real_db = finisher._db
    error = RuntimeError("refused") if refusal == "refused" else sqlite_disk_full(tmp_path)

    class RefusingOutput:
        def run(self, step: Any, ends: list[tuple[int, store.Finish]]) -> Any:
            if any(end.logs for _, end in ends):
                raise error
            return real_db.run(step, ends)

    monkeypatch.setattr(finisher, "_db", RefusingOutput())
    script_id = await make_script(client, admin, "echo lost\n")
    with caplog.at_level(logging.INFO, logger="opscraft.execution"):
        started = await start(client, admin, script_id, "local")
        final = await wait_for(client, admin, started["id"])
    assert final["status"] == "error", final
    assert final["error_message"] == message
    assert final["output_bytes"] == len("lost\n")
    failed = [r for r in caplog.records if "writing its final state failed" in r.getMessage()]
    assert len(failed) == 1, caplog.text
    # A full disk is one line saying so (the operator's to fix); any other refusal a traceback.
    assert (failed[0].exc_info is None) == (refusal == "disk full"), caplog.text
    if refusal == "disk full":
        assert (
            failed[0]
            .getMessage()
            .startswith(
                f"execution {started['id']}: writing its final state failed: {unreachable.disk_full()} "
                "(OperationalError: "
            )
        ), caplog.text
    # Its chunks, never stored, are gone from the live bus too: no `stored` comes for them, and
    # the run's channel used to stay for the life of the process.
    assert finisher.wait_idle(10)
    assert started["id"] not in worker.bus._channels  # type: ignore[attr-defined]


async def test_a_last_output_write_that_meets_a_full_disk_is_one_log_line(
    client: httpx.AsyncClient,
    admin: LoggedIn,
    rt: runtime.Runtime,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The run's last output batch (stored as its output ends, `OutputPipeline.close`) meets a
    full disk (SQLite's real SQLITE_FULL): the log said "storing the output failed" with a
    traceback, where a full disk met anywhere else is one line."""
    full = sqlite_disk_full(tmp_path)

    class FullDisk(OutputPipeline):
        def close(self, *, keep_tail: bool = False, cut: bool = False) -> list[LogEvent]:
            raise full

    monkeypatch.setattr(executor, "OutputPipeline", FullDisk)
    script_id = await make_script(client, admin, "echo lost\n")
    with caplog.at_level(logging.INFO, logger="opscraft.execution"):
        started = await start(client, admin, script_id, "local")
        final = await wait_for(client, admin, started["id"])
    assert final["status"] == "error", final
    assert final["error_message"] == (
        "its output could not be stored: the database cannot write: its disk is full"
    )
    said = [r for r in caplog.records if "storing the output failed" in r.getMessage()]
    assert [r.getMessage().split(" (")[0] for r in said] == [
        f"execution {started['id']}: storing the output failed: {unreachable.disk_full()}"
    ], caplog.text
    assert all(r.exc_info is None for r in caplog.records), caplog.text
    assert "[parameters:" not in caplog.text, "the statement's bound values (the run's output) in the log"
