"""Concurrent submissions share transactions, each keeping its own outcome (db/group_commit.py),
on SQLite and PostgreSQL.

A burst of submissions commits in fewer transactions than submissions, each execution with its
own `execution.create` audit event; a member that fails (a constraint, a check) fails alone and
leaves no row, the others are written exactly once; the database being busy is every member's
answer (no retry into a longer wait); the action after the commit runs for a caller that gave up.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import httpx
import pytest
from sqlalchemy import Engine, event
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from opscraft import runtime
from opscraft.db.group_commit import TASK_NAME, GroupInsert
from opscraft.db.models import AuditEvent, Execution
from opscraft.db.models.executions import ExecutionStatus
from opscraft.db.write_gate import WriteQueueTimeout
from opscraft.services.errors import Invalid
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, wait_for

BURST = 40


def _row(script_id: int, name: str = "s") -> Execution:
    return Execution(
        script_id=script_id, script_version=1, script_name=name, script_type="bash", runner="local"
    )


def _audit(execution_id: int, marker: str = "") -> list[AuditEvent]:
    return [
        AuditEvent(
            action="test.create", target_type="execution", target_id=str(execution_id), details={"m": marker}
        )
    ]


async def _stored(ids: list[int]) -> tuple[Counter[int], Counter[str]]:
    """Execution rows per id, and `test.create` or `execution.create` audit events per target."""
    async with runtime.current().db.session() as session:
        rows = Counter((await session.exec(select(Execution.id).where(col(Execution.id).in_(ids)))).all())
        audits = Counter(
            (
                await session.exec(
                    select(AuditEvent.target_id).where(
                        col(AuditEvent.action).in_(["test.create", "execution.create"]),
                        col(AuditEvent.target_type) == "execution",
                        col(AuditEvent.target_id).in_([str(i) for i in ids]),
                    )
                )
            ).all()
        )
    return rows, audits


async def test_a_burst_of_submissions_commits_in_fewer_transactions_each_with_its_audit_event(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    script_id = await make_script(client, admin, "true\n")
    group = runtime.current().db.group
    groups, members = group.groups, group.members

    async def submit() -> httpx.Response:
        body = {"script_id": script_id, "runner": "local"}
        return await client.post("/api/v1/executions", json=body, headers=admin.headers)

    responses = await asyncio.gather(*(submit() for _ in range(BURST)))
    assert [r.status_code for r in responses] == [202] * BURST, responses[0].text
    ids = [int(r.json()["id"]) for r in responses]
    assert len(set(ids)) == BURST
    assert group.members - members == BURST
    assert group.groups - groups < BURST, "concurrent submissions must share transactions"
    rows, audits = await _stored(ids)
    assert rows == Counter(ids)
    assert audits == Counter(str(i) for i in ids), "one audit event per submission, with its id"
    async with runtime.current().db.session() as session:
        details = (
            await session.exec(
                select(AuditEvent).where(
                    col(AuditEvent.action) == "execution.create", col(AuditEvent.target_id) == str(ids[0])
                )
            )
        ).one()
    assert details.actor_name == admin.username and details.details["script_id"] == script_id
    for execution_id in (ids[0], ids[-1]):  # each was handed to the queue once committed
        assert (await wait_for(client, admin, execution_id))["status"] == "success"


async def test_a_group_is_one_insert_per_table_and_each_member_gets_its_own_id(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """30 inserts queued together: one INSERT of the executions and one of their audit events,
    and each row's id is its own (its name and its audit event's marker match)."""
    script_id = await make_script(client, admin, "true\n")
    group = runtime.current().db.group
    inserts: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.startswith("INSERT INTO"):
            inserts.append(statement.split("(", 1)[0])

    event.listen(Engine, "before_cursor_execute", count)
    try:
        rows = [_row(script_id, f"member-{n}") for n in range(30)]
        ids = await asyncio.gather(
            *(group.insert(r, lambda i, n=n: _audit(i, f"member-{n}")) for n, r in enumerate(rows))
        )
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    assert sorted(inserts) == ["INSERT INTO audit_events ", "INSERT INTO executions "], inserts
    assert ids == [r.id for r in rows] and len(set(ids)) == 30
    async with runtime.current().db.session() as session:
        names = dict(
            (
                await session.exec(
                    select(Execution.id, Execution.script_name).where(col(Execution.id).in_(ids))
                )
            ).all()
        )
        markers = dict(
            (
                await session.exec(
                    select(AuditEvent.target_id, AuditEvent.details).where(
                        col(AuditEvent.action) == "test.create"
                    )
                )
            ).all()
        )
    assert all(names[i] == f"member-{n}" == markers[str(i)]["m"] for n, i in enumerate(ids))


async def test_a_member_that_fails_fails_alone_and_leaves_no_row(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """A group with a row breaking a foreign key, and one whose dependent rows fail their check:
    the group is rolled back and each member written alone, so the others commit exactly once
    and the failing ones leave neither a row nor an audit event."""
    script_id = await make_script(client, admin, "true\n")
    group = runtime.current().db.group
    enqueued: list[int] = []

    def dependents(marker: str) -> object:
        def rows(execution_id: int) -> list[AuditEvent]:
            if marker == "bad-dependent":
                raise Invalid("details: refused by a check")
            return _audit(execution_id, marker)

        return rows

    markers = [f"ok-{n}" for n in range(6)]
    markers[2], markers[4] = "bad-fk", "bad-dependent"
    rows = [_row(10**9 if m == "bad-fk" else script_id, m) for m in markers]
    outcomes = await asyncio.gather(
        *(group.insert(row, dependents(m), enqueued.append) for row, m in zip(rows, markers, strict=True)),
        return_exceptions=True,
    )
    assert isinstance(outcomes[2], IntegrityError)
    assert isinstance(outcomes[4], Invalid)
    good = [o for o in outcomes if isinstance(o, int)]
    assert len(good) == 4 and good == [r.id for r, m in zip(rows, markers, strict=True) if m.startswith("ok")]
    assert enqueued == good, "after_commit runs for the committed members only, in order"
    stored, audits = await _stored(good)
    assert stored == Counter(good) and audits == Counter(str(i) for i in good)
    async with runtime.current().db.session() as session:
        strays = (
            await session.exec(
                select(Execution).where(col(Execution.script_name).in_(["bad-fk", "bad-dependent"]))
            )
        ).all()
    assert strays == []


async def test_busy_is_every_members_answer_and_nothing_is_written(
    client: httpx.AsyncClient, admin: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No turn to write in time (`WriteQueueTimeout`): each member gets it (answered 503), none is
    retried alone into another long wait, no row is written."""
    script_id = await make_script(client, admin, "true\n")
    db = runtime.current().db
    group = GroupInsert(db.engine, lambda exc: isinstance(exc, WriteQueueTimeout))
    attempts = 0

    async def overloaded(_batch: object) -> list[int]:
        nonlocal attempts
        attempts += 1
        raise WriteQueueTimeout("waited 30 s for a turn to write to the database: overloaded")

    monkeypatch.setattr(group, "_transaction", overloaded)
    rows = [_row(script_id, "busy") for _ in range(5)]
    outcomes = await asyncio.gather(*(group.insert(r, _audit) for r in rows), return_exceptions=True)
    assert all(isinstance(o, WriteQueueTimeout) for o in outcomes), outcomes
    assert attempts == 1, "a busy group is not retried member by member"
    assert group.groups == 0 and all(r.id is None for r in rows)


async def test_the_action_after_the_commit_runs_for_a_caller_that_gave_up(
    client: httpx.AsyncClient, admin: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request cancelled while its row is being written: the row is committed and handed on
    (after_commit), so no committed execution is left unqueued; a caller cancelled before its
    group was taken writes nothing."""
    script_id = await make_script(client, admin, "true\n")
    group = runtime.current().db.group
    handed: list[int] = []
    writing, go_on = asyncio.Event(), asyncio.Event()
    transaction = group._transaction

    async def held(batch: list[object]) -> list[int]:  # the first group's write, held open
        writing.set()
        await go_on.wait()
        return await transaction(batch)  # type: ignore[arg-type]

    monkeypatch.setattr(group, "_transaction", held)
    first = asyncio.create_task(group.insert(_row(script_id, "kept"), _audit, handed.append))
    await asyncio.wait_for(writing.wait(), 60)
    gone = asyncio.create_task(group.insert(_row(script_id, "never"), _audit, handed.append))
    await asyncio.sleep(0)  # queued behind the write in progress
    gone.cancel()
    first.cancel()
    go_on.set()
    for task in (first, gone):
        with pytest.raises(asyncio.CancelledError):
            await task
    while group._committer is not None:
        await asyncio.sleep(0.01)
    assert len(handed) == 1
    async with runtime.current().db.session() as session:
        names = (
            await session.exec(
                select(Execution.script_name).where(col(Execution.script_name).in_(["kept", "never"]))
            )
        ).all()
        status = (await session.exec(select(Execution.status).where(col(Execution.id) == handed[0]))).one()
    assert names == ["kept"]
    assert status in {ExecutionStatus.queued, ExecutionStatus.running, ExecutionStatus.success}


async def test_the_action_after_the_commit_sees_the_row_committed_without_the_event_loop(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """On SQLite the run is handed to the queue on the group's thread, right after its COMMIT
    (not after the event loop took the result back): another connection already reads the row
    then. On PostgreSQL (no group thread) it runs on the event loop, after the commit too."""
    script_id = await make_script(client, admin, "true\n")
    db = runtime.current().db
    group = db.group
    loop_thread = threading.current_thread()
    seen: list[tuple[threading.Thread, int]] = []

    def hand_over(execution_id: int) -> None:
        on_loop = threading.current_thread() is loop_thread
        if not on_loop:  # SQLite's group thread: read on a connection of our own
            assert group._sqlite is not None
            with group._sqlite.connect() as conn:
                count = conn.execute(select(Execution.id).where(col(Execution.id) == execution_id)).all()
            seen.append((threading.current_thread(), len(count)))
        else:
            seen.append((threading.current_thread(), -1))

    row = _row(script_id, "handed")
    new_id = await group.insert(row, _audit, hand_over)
    assert len(seen) == 1, "after_commit runs once"
    thread, found = seen[0]
    if runtime.current().settings.is_sqlite:
        assert thread is not loop_thread and thread.name.startswith(TASK_NAME)
        assert found == 1, "the row is committed when the queue gets its id"
    else:
        assert thread is loop_thread
    rows, audits = await _stored([new_id])
    assert rows == Counter([new_id]) and audits == Counter([str(new_id)])
