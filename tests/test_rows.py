"""`db.rows.new_row` builds the same row as the model's constructor, field for field, for each
model it is used on (the execution row, the audit event, the user cache's copy), and the rows it
builds are written and read back alike (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest
from sqlmodel import SQLModel, select

from opscraft import runtime
from opscraft.db import clock
from opscraft.db.models import AuditEvent, Execution, User
from opscraft.db.models.executions import ExecutionStatus
from opscraft.db.rows import new_row
from opscraft.services import audit, user_cache
from opscraft.services.actor import Actor
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script

# Fields whose default is "now" (`default_factory=utcnow`): equal up to the moment of each call.
NOW_FIELDS = {"queued_at", "time", "created_at", "updated_at"}


def assert_same_row(built: SQLModel, constructed: SQLModel, *, history: bool = True) -> None:
    """Same class, fields, values (a "now" default within a second), set fields and ORM state
    (transient, every field in its history; with `history`, the same history: `model_validate`
    records the values as the old ones too, which only a flush of the copy could notice)."""
    assert type(built) is type(constructed)
    ours, theirs = built.model_dump(), constructed.model_dump()
    assert ours.keys() == theirs.keys()
    for name, value in theirs.items():
        if name in NOW_FIELDS and name not in constructed.model_fields_set:
            assert isinstance(ours[name], datetime) and ours[name].tzinfo is not None, name
            assert abs((ours[name] - value).total_seconds()) < 1, name
        else:
            assert ours[name] == value and type(ours[name]) is type(value), name
    assert built.model_fields_set == constructed.model_fields_set
    assert built.__pydantic_extra__ == constructed.__pydantic_extra__
    assert built.__pydantic_private__ == constructed.__pydantic_private__
    state, expected = built._sa_instance_state, constructed._sa_instance_state  # type: ignore[attr-defined]
    assert state.transient and expected.transient
    assert state.committed_state.keys() == expected.committed_state.keys() == type(built).model_fields.keys()
    if history:
        assert state.committed_state == expected.committed_state
    assert state.modified == expected.modified
    assert built.__dict__.keys() == constructed.__dict__.keys()


def execution_values(script_id: int) -> dict[str, Any]:
    """What `services.executions.create` passes (held for approval: no worker claims it)."""
    return {
        "script_id": script_id,
        "script_version": 1,
        "script_name": "deploy",
        "script_type": "bash",
        "parameters": {"region": "eu"},
        "terraform_action": None,
        "run_options": None,
        "triggered_by": None,
        "triggered_by_name": "admin",
        "trigger": "api",
        "trigger_ref": None,
        "runner": "local",
        "status": ExecutionStatus.awaiting_approval,
        "draft": False,
    }


def audit_values() -> dict[str, Any]:
    actor = Actor(None, client_ip="192.0.2.7")
    return audit.columns(actor, "execution.create", "execution", 5, actor_name="system", runner="local")


async def stored(row: SQLModel) -> SQLModel:
    """`row` added and committed in an ORM session, then read back in another one."""
    db = runtime.current().db
    async with db.session() as session:
        session.add(row)
        await session.commit()
        key = row.id  # type: ignore[attr-defined]
    async with db.session() as session:
        found = await session.get(type(row), key)
    assert found is not None
    return found


async def test_an_execution_row_is_the_constructors_and_is_stored_alike(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    values = execution_values(await make_script(client, admin, "true\n"))
    built = new_row(Execution, **values)
    assert_same_row(built, Execution(**values))
    assert built.parameters is values["parameters"]  # given values are taken as they are
    reread_built = await stored(built)
    reread_constructed = await stored(Execution(**values))
    assert_same_row(
        new_row(Execution, **reread_built.model_dump(exclude={"id", "queued_at"})),
        Execution(**reread_constructed.model_dump(exclude={"id", "queued_at"})),
    )
    assert reread_built.queued_at.tzinfo is not None
    # Through the group committer (the submit path), as the constructor's row would be.
    group = runtime.current().db.group
    grouped = await stored_by_group(group, new_row(Execution, **values))
    assert grouped.status == ExecutionStatus.awaiting_approval and grouped.parameters == {"region": "eu"}
    assert grouped.output_bytes == 0 and grouped.cancel_requested is False and grouped.worker_id is None


async def stored_by_group(group: Any, row: Execution) -> Execution:
    new_id = await group.insert(row)
    assert row.id == new_id
    async with runtime.current().db.session() as session:
        found = await session.get(Execution, new_id)
    assert found is not None
    return found


async def test_default_factories_run_once_per_row(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    values = execution_values(await make_script(client, admin, "true\n"))
    del values["parameters"]
    first, second = new_row(Execution, **values), new_row(Execution, **values)
    assert first.parameters == {} and first.parameters is not second.parameters
    # `queued_at` is on the database's clock (`db.clock.now`: this machine's plus the measured offset).
    assert first.queued_at <= second.queued_at <= clock.now()


async def test_an_audit_row_is_the_constructors_and_is_stored_alike(rt: runtime.Runtime) -> None:
    values = audit_values()
    assert_same_row(new_row(AuditEvent, **values), AuditEvent(**values))
    without_time = {k: v for k, v in values.items() if k != "time"}
    assert_same_row(new_row(AuditEvent, **without_time), AuditEvent(**without_time))
    built = await stored(audit.build(Actor(None, client_ip="192.0.2.7"), "execution.create", "execution", 5))
    constructed = await stored(AuditEvent(**values))
    for name in ("actor_id", "action", "target_type", "target_id", "client_ip"):
        assert getattr(built, name) == getattr(constructed, name), name
    assert built.details == {} and constructed.details == {"runner": "local"}


async def test_record_all_writes_plain_dicts(rt: runtime.Runtime) -> None:
    rows = [audit_values() for _ in range(3)]
    async with rt.db.session() as session:
        await audit.record_all(session, rows)
        await session.commit()
    async with rt.db.session() as session:
        found = (await session.exec(select(AuditEvent).where(AuditEvent.action == "execution.create"))).all()
    assert len(found) == 3
    assert all(e.actor_name == "system" and e.client_ip == "192.0.2.7" for e in found)
    assert all(e.details == {"runner": "local"} and e.time.tzinfo is not None for e in found)


async def test_the_user_caches_copy_is_the_validated_copy(
    client: httpx.AsyncClient, admin: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(user_cache, "TTL_SECONDS", 600.0)
    db = runtime.current().db
    async with db.session() as session:
        user = await session.get(User, admin.id)
    assert user is not None
    dumped = user.model_dump()
    assert_same_row(new_row(User, **dumped), User.model_validate(dumped), history=False)

    async def load(user_id: int) -> User | None:
        async with db.session() as session:
            return await session.get(User, user_id)

    user_cache.clear()
    await user_cache.get(db.engine, admin.id, load)  # read and cached
    cached = await user_cache.get(db.engine, admin.id, load)
    assert cached is not None
    assert_same_row(cached, User.model_validate(dumped), history=False)


def test_unknown_and_missing_fields_are_refused() -> None:
    with pytest.raises(TypeError, match=r"unknown fields \['colour'\]"):
        new_row(AuditEvent, action="x", colour="red")
    with pytest.raises(TypeError, match=r"missing fields \['action'\]"):
        new_row(AuditEvent, actor_name="x")
