"""`ExecutionOut.of` reads a run's columns from the row's loaded values: the same answer as the
row's `model_dump()`, every field set, for a row as built and as read back from the database
(an attribute refreshed from the database is read as any other)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy.orm import configure_mappers

from opscraft import runtime
from opscraft.api.executions_schemas import ExecutionOut
from opscraft.db.models import Execution
from opscraft.db.models.executions import ExecutionStatus
from opscraft.db.rows import new_row
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script


def _as_before(execution: Execution) -> dict[str, object]:
    """`ExecutionOut.of` as it was: from the row's `model_dump()`."""
    started = execution.started_at
    duration = None if started is None else round((execution.finished_at - started).total_seconds(), 3)
    values = {**execution.model_dump(), "duration_seconds": duration}
    return ExecutionOut.model_validate(values, from_attributes=True).model_dump(mode="json")


def _every_field(script_id: int) -> Execution:
    start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    return new_row(
        Execution,
        script_id=script_id,
        script_version=1,
        script_name="every-field",
        script_type="ansible",
        status=ExecutionStatus.failed,
        parameters={"ENV": "prod", "N": 3},
        terraform_action="plan",
        terraform_workspace="default",
        run_options={"limit": "web", "check": True},
        inventory_id=None,
        inventory_sha256="ab" * 32,
        triggered_by=None,
        triggered_by_name="someone",
        trigger="schedule",
        trigger_ref="schedule:3",
        draft=False,
        worker_id="w-1",
        runner="local",
        rerun_of=None,
        image="python:3.12-slim",
        exit_code=2,
        error_message="exit 2",
        output_bytes=123,
        output_truncated=True,
        output_removed_at=start + timedelta(days=3),
        cancel_requested=True,
        cancelled_by=None,
        cancelled_by_name="admin",
        queued_at=start - timedelta(seconds=1),
        started_at=start,
        finished_at=start + timedelta(seconds=2.5),
    )


def test_the_same_answer_as_model_dump_for_every_field() -> None:
    configure_mappers()  # no runtime started in this test
    row = _every_field(1)
    row.id = 7
    assert ExecutionOut.of(row).model_dump(mode="json") == _as_before(row)


async def test_the_same_answer_for_a_row_read_back_and_one_expired(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    script_id = await make_script(client, admin, "true\n")
    async with runtime.current().db.session() as session:
        row = _every_field(script_id)
        session.add(row)
        await session.commit()  # expire_on_commit is off: the values stay loaded
        assert ExecutionOut.of(row).model_dump(mode="json") == _as_before(row)
        session.expire(row, ["exit_code", "output_bytes"])
        await session.refresh(row, ["exit_code", "output_bytes"])  # read back as a loaded row is
        assert ExecutionOut.of(row).model_dump(mode="json") == _as_before(row)
    async with runtime.current().db.session() as session:
        found = await session.get(Execution, row.id)
        assert found is not None
        assert ExecutionOut.of(found).model_dump(mode="json") == _as_before(found)
