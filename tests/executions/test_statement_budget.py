"""How many SQL statements a run costs on the event loop (issue 15's lean request path), pinned so
the count cannot silently regrow (SQLite and PostgreSQL).

Counted with SQLAlchemy's `before_cursor_execute`, per asyncio task: the submit is the request's
own task, the run-event delivery the dispatcher's. Every rule still runs (authentication from
the user cache, RBAC, validation, audit, rate limit, one commit); a change that adds a statement
to these paths must say why here.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, event
from sqlmodel import col, func, select
from websockets.asyncio.client import connect

from opscraft import runtime
from opscraft.db import group_commit
from opscraft.db.models import AuditEvent, RunEventDelivery
from opscraft.execution import run_events
from opscraft.execution.run_events import RunEventDispatcher
from opscraft.services import app_settings, chains, notifications, run_audit, user_cache
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, start, wait_for
from tests.executions.test_executions_ws import collect, token_of, url

# script + approval policy (one join) in the request; INSERT execution, INSERT audit event by the
# group committer (db/group_commit.py), shared by the submissions of a group; the user comes from
# the user cache and the runners on offer from the availability cache.
SUBMIT_STATEMENTS = 3
# On SQLite, where this process's worker takes its runs in memory, the group committer also
# claims the run in the same transaction when a consumer thread is free (`Executor.take`): the
# script version's read (its concurrency limit decides whether the run is taken) and the
# conditional UPDATE, which the worker's consumer thread ran in a transaction of its own before.
# (It was 3: the scripts with a concurrency limit were read apart.)
TAKE_STATEMENTS = 2


def submit_statements() -> int:
    """What a submission writes and reads, with the claim when the group commit takes it."""
    client = runtime.current().executions
    assert client is not None
    return SUBMIT_STATEMENTS + (TAKE_STATEMENTS if client.take is not None else 0)


# A batch of finished runs, whatever its size (up to run_events.BATCH), with no notification rule
# and no chain link: the events not yet handled by every subscriber (with how many have: none
# here, so who handled which is not read), the settled floor (at most every FLOOR_CHECK_SECONDS),
# then in one transaction every subscriber's delivery rows (one INSERT) and each subscriber's own
# work (audit: the `execution.finished` events; notifications: the enabled rules; chains: the
# scripts with an enabled link). (It was 3 + 2 + 2 + 2: who handled which always, and a delivery
# INSERT and a transaction per subscriber.)
DELIVERY_STATEMENTS = 2 + 1 + 3
# The same batch when one subscriber has already handled some of it (another process, or a
# subscriber that failed): who handled which is read too, and the others deliver the rest.
PARTIAL_DELIVERY_STATEMENTS = DELIVERY_STATEMENTS + 1
# Watching an ended run over the WebSocket: its status columns and its stored output, one
# statement (a join, `client._REPLAY`) read by the event stream; authentication and the view
# permission read nothing while the user cache is warm. (It was 2, the row then the output.)
WATCH_STATEMENTS = 1


class StatementsByTask:
    """Every statement any engine of this process executes, keyed by the asyncio task (the
    thread's name off any event loop, e.g. the workers' threads)."""

    def __init__(self) -> None:
        self.by_task: dict[asyncio.Task[Any] | str | None, list[str]] = {}

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        try:
            task: asyncio.Task[Any] | str | None = asyncio.current_task()
        except RuntimeError:
            task = threading.current_thread().name
        self.by_task.setdefault(task, []).append(statement)

    def of_this_task(self) -> list[str]:
        return self.by_task.get(asyncio.current_task(), [])

    def of_group_commits(self) -> list[str]:
        """What the group committer (db/group_commit.py) wrote: its task's statements, or its
        thread's on SQLite."""
        return [
            statement
            for task, statements in self.by_task.items()
            if (task.get_name() if isinstance(task, asyncio.Task) else str(task)).startswith(
                group_commit.TASK_NAME
            )
            for statement in statements
        ]


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> Iterator[StatementsByTask]:
    monkeypatch.setattr(user_cache, "TTL_SECONDS", 600.0)  # a slow machine must not expire it
    counter = StatementsByTask()
    event.listen(Engine, "before_cursor_execute", counter)
    try:
        yield counter
    finally:
        event.remove(Engine, "before_cursor_execute", counter)


async def test_a_submit_costs_three_statements(
    client: httpx.AsyncClient, admin: LoggedIn, statements: StatementsByTask
) -> None:
    script_id = await make_script(client, admin, "true\n")
    await start(client, admin, script_id, "local")  # warms the user and availability caches
    statements.by_task.clear()
    started = await start(client, admin, script_id, "local")
    submitted = statements.of_this_task() + statements.of_group_commits()
    assert len(submitted) == submit_statements(), submitted
    assert (await wait_for(client, admin, started["id"]))["status"] == "success"


async def test_a_batch_of_finished_runs_costs_a_fixed_number_of_statements_to_deliver(
    client: httpx.AsyncClient,
    admin: LoggedIn,
    statements: StatementsByTask,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(run_events, "FLOOR_CHECK_SECONDS", 600.0)  # once, however slow the machine
    rt = runtime.current()
    assert rt.run_events is not None
    await rt.run_events.stop()  # this test delivers them itself
    script_id = await make_script(client, admin, "true\n")

    async def finished_runs(count: int) -> list[int]:
        ids = [(await start(client, admin, script_id, "local"))["id"] for _ in range(count)]
        for execution_id in ids:
            assert (await wait_for(client, admin, execution_id))["status"] == "success"
        return ids

    def dispatcher_of(*subscribers: str) -> RunEventDispatcher:
        """A new dispatcher (its first round reads the floor) with the runtime's `subscribers`."""
        handlers = {
            run_audit.SUBSCRIBER: run_audit.record_finished,
            notifications.SUBSCRIBER: notifications.on_run_events,
            chains.SUBSCRIBER: chains.on_run_events,
        }
        dispatcher = RunEventDispatcher(rt.db, "test")
        for name in subscribers:
            dispatcher.subscribe(name, handlers[name])
        return dispatcher

    everyone = (run_audit.SUBSCRIBER, notifications.SUBSCRIBER, chains.SUBSCRIBER)
    ids = await finished_runs(5)
    dispatcher = dispatcher_of(*everyone)
    statements.by_task.clear()
    assert await dispatcher.deliver() == 3 * len(ids)
    delivered = statements.of_this_task()
    assert len(delivered) == DELIVERY_STATEMENTS, "\n".join(s[:90] for s in delivered)
    statements.by_task.clear()
    assert await dispatcher.deliver() == 0
    assert len(statements.of_this_task()) == 1, "an idle round is one query"

    # Two runs already audited (by another process, say), three not yet: one more read.
    early = await finished_runs(2)
    assert await dispatcher_of(run_audit.SUBSCRIBER).deliver() == len(early)
    late = await finished_runs(3)
    dispatcher = dispatcher_of(*everyone)
    statements.by_task.clear()
    assert await dispatcher.deliver() == 2 * len(early) + 3 * len(late)
    delivered = statements.of_this_task()
    assert len(delivered) == PARTIAL_DELIVERY_STATEMENTS, "\n".join(s[:90] for s in delivered)

    ids += early + late
    async with rt.db.session() as session:
        audited = await session.exec(
            select(func.count())
            .select_from(AuditEvent)
            .where(
                col(AuditEvent.action) == run_audit.ACTION,
                col(AuditEvent.target_id).in_([str(i) for i in ids]),
            )
        )
        assert audited.one() == len(ids)
        deliveries = await session.exec(select(func.count()).select_from(RunEventDelivery))
        assert deliveries.one() == 3 * len(ids)


@pytest.mark.parametrize("role_from", ["environment", "setting"])
async def test_a_submit_costs_three_statements_whoever_sets_the_local_runner_role(
    client: httpx.AsyncClient,
    admin: LoggedIn,
    statements: StatementsByTask,
    role_from: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With `OPSCRAFT_LOCAL_RUNNER_ROLE` unset, the role comes from the `local_runner_role`
    setting: read from the settings cache, not per submission."""
    if role_from == "setting":
        monkeypatch.setattr(runtime.current().settings, "local_runner_role", None)
    monkeypatch.setattr(app_settings, "CACHE_SECONDS", 600.0)
    script_id = await make_script(client, admin, "true\n")
    await start(client, admin, script_id, "local")  # warms the caches
    statements.by_task.clear()
    started = await start(client, admin, script_id, "local")
    submitted = statements.of_this_task() + statements.of_group_commits()
    assert len(submitted) == submit_statements(), submitted
    assert (await wait_for(client, admin, started["id"]))["status"] == "success"


async def test_watching_an_ended_run_costs_one_statement(
    client: httpx.AsyncClient, live_api: str, admin: LoggedIn, statements: StatementsByTask
) -> None:
    script_id = await make_script(client, admin, "echo hi\n")
    execution_id = (await start(client, admin, script_id, "local"))["id"]
    assert (await wait_for(client, admin, execution_id))["status"] == "success"
    # wait_for's reads have put the admin in the user cache
    statements.by_task.clear()
    async with connect(url(live_api, execution_id, token_of(admin))) as ws:
        messages, code = await collect(ws)
    assert code == 1000
    assert [m["type"] for m in messages] == ["status", "log", "end"]
    # The WebSocket's own task (uvicorn's `run_asgi`) and the one sending its events.
    watchers = {"WSProtocol.run_asgi", "_send_events"}
    watched = [
        statement
        for task, seen in statements.by_task.items()
        if isinstance(task, asyncio.Task) and getattr(task.get_coro(), "__qualname__", "") in watchers
        for statement in seen
    ]
    assert len(watched) == WATCH_STATEMENTS, watched
