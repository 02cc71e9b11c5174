"""A cancel that arrives as its run ends (read as running, finished before it is marked) is a 409
saying how the run ended, with no `execution.cancel` audited: it used to answer 200 with the
finished run and audit a cancel that changed nothing (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from opscraft import runtime
from opscraft.db.models import AuditEvent, Execution, Role, Script
from opscraft.db.models.executions import ExecutionStatus
from opscraft.db.models.scripts import ScriptType
from opscraft.services import executions, users
from opscraft.services.actor import Actor
from opscraft.services.errors import Conflict
from opscraft.services.users import UserCreate
from tests.conftest import PASSWORD


async def test_a_run_that_ends_as_the_cancel_arrives_is_a_conflict(rt: runtime.Runtime) -> None:
    async with rt.db.session() as session:
        admin = await users.bootstrap(
            session, UserCreate(username="ann", email="ann@example.com", password=PASSWORD, role=Role.admin)
        )
        script = Script(name="s", script_type=ScriptType.bash, content="true")
        session.add(script)
        await session.flush()
        assert script.id is not None
        run = Execution(
            script_id=script.id, script_version=1, script_name="s", script_type="bash", status="running"
        )
        session.add(run)
        await session.commit()
        assert run.id is not None
        await executions.get(session, Actor(admin), run.id)  # the cancel's session has read it running
        async with rt.db.session() as worker:  # the run ends before the cancel marks it
            await worker.exec(
                update(Execution).where(col(Execution.id) == run.id).values(status=ExecutionStatus.success)
            )
            await worker.commit()
        with pytest.raises(Conflict, match=r"already finished \(success\)"):
            await executions.cancel(session, Actor(admin), run.id)
    async with rt.db.session() as session:
        stored = await session.get(Execution, run.id)
        assert stored is not None and stored.status == "success" and stored.cancel_requested is False
        audited = await session.exec(select(AuditEvent).where(col(AuditEvent.action) == "execution.cancel"))
        assert audited.all() == []
