"""`executions.triggering_users`: the options of the history's "Triggered by" filter."""

from __future__ import annotations

import pytest

from opscraft import runtime
from opscraft.db.models import Execution, Role, Script, User
from opscraft.db.models.scripts import ScriptType
from opscraft.services import executions, users
from opscraft.services.actor import Actor
from opscraft.services.errors import Unauthorized
from opscraft.services.users import UserCreate
from tests.conftest import PASSWORD


async def _user(name: str, role: Role = Role.viewer) -> User:
    async with runtime.current().db.session() as session:
        return await users.bootstrap(
            session, UserCreate(username=name, email=f"{name}@example.com", password=PASSWORD, role=role)
        )


async def test_each_user_who_started_a_run_once_sorted_by_name(rt: runtime.Runtime) -> None:
    zoe, adam, idle = await _user("zoe"), await _user("Adam"), await _user("idle")
    async with rt.db.session() as session:
        script = Script(name="s", script_type=ScriptType.bash, content="true")
        session.add(script)
        await session.flush()
        assert script.id is not None
        for user in (zoe, adam, zoe, None):
            session.add(
                Execution(
                    script_id=script.id,
                    script_version=1,
                    script_name="s",
                    script_type="bash",
                    triggered_by=user.id if user else None,
                    triggered_by_name=user.username if user else None,
                )
            )
        await session.commit()
        found = await executions.triggering_users(session, Actor(idle))
        assert found == [(adam.id, "Adam"), (zoe.id, "zoe")]
        with pytest.raises(Unauthorized):
            await executions.triggering_users(session, Actor(None))
