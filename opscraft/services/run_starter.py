"""Starting a run for a schedule or an inbound webhook: on behalf of the trigger's owner.

ADAPTER (to be replaced by the engine seam, issue 9): until `services.executions.create`
accepts a system actor and a trigger, this checks the owner here and calls it as that user.
After the seam lands, `start_for` passes `Actor.on_behalf_of(owner, ref)` and the trigger, and
the owner check moves into `executions.create` (audited there as `execution.refused`).
"""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db.models import Execution, User
from opscraft.services import executions
from opscraft.services.actor import Actor
from opscraft.services.errors import Forbidden, Unauthorized
from opscraft.services.permissions import Permission, require


class OwnerRefused(Exception):
    """The trigger's owner may not start the run now (deactivated, deleted or no permission)."""


async def start_for(
    session: AsyncSession,
    owner_id: int | None,
    ref: str,
    trigger: str,
    script_id: int,
    parameters: dict[str, Any],
) -> Execution:
    """Start `script_id` with `parameters` for the trigger `ref` (e.g. "schedule:3") on behalf of
    `owner_id`, whose permissions are checked now. Raises OwnerRefused, or the ServiceError of
    `executions.create` (422 parameters, 409 script not active or no runner...)."""
    del trigger  # recorded by the engine seam's `executions.create(trigger=...)`
    owner = await session.get(User, owner_id) if owner_id is not None else None
    try:
        require(owner, Permission.execute_scripts)
    except Unauthorized:
        raise OwnerRefused("the owner is deactivated or deleted") from None
    except Forbidden as exc:
        raise OwnerRefused(exc.message) from None
    return await executions.create(session, Actor(owner), script_id, parameters)
