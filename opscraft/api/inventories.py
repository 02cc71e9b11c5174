"""`/api/v1/inventories`: shared Ansible inventories (rules: services/shared_inventories.py).

Everyone with a role reads them; operators and admins create, replace and delete them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from opscraft.api.deps import CurrentActor, Session, permitted
from opscraft.api.schemas import AUTHED, CheckedByService, IdPath, error_responses
from opscraft.db.models import Inventory
from opscraft.db.models.inventories import content_sha256
from opscraft.services import shared_inventories
from opscraft.services.permissions import Permission
from opscraft.services.shared_inventories import InventoryChanges, InventoryIn

router = APIRouter(tags=["inventories"])
PREFIX = "/api/v1/inventories"


class InventoryOut(BaseModel):
    id: int
    name: str
    description: str
    content: str = Field(description="INI or YAML inventory text")
    content_sha256: str = Field(description="Hex SHA-256 of the content, as runs record it")
    used_by: list[str] = Field(description="Names of the live scripts using this inventory")
    created_by: int | None
    updated_by: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, inventory: Inventory, used_by: list[str]) -> InventoryOut:
        assert inventory.id is not None
        return cls(
            id=inventory.id,
            name=inventory.name,
            description=inventory.description,
            content=inventory.content,
            content_sha256=content_sha256(inventory.content),
            used_by=used_by,
            created_by=inventory.created_by,
            updated_by=inventory.updated_by,
            created_at=inventory.created_at,
            updated_at=inventory.updated_at,
        )


async def _out(session: Session, inventory: Inventory) -> InventoryOut:
    assert inventory.id is not None
    return InventoryOut.of(inventory, await shared_inventories.used_by(session, inventory.id))


@router.get(
    PREFIX,
    response_model=list[InventoryOut],
    summary="Shared inventories, by name",
    responses=error_responses(*AUTHED),
)
async def list_inventories(session: Session, actor: CurrentActor) -> list[InventoryOut]:
    """Needs view_scripts (every role). Every shared inventory by name (ignoring case), with its
    content, `content_sha256` and `used_by` (the live scripts using it). Not paged."""
    return [await _out(session, i) for i in await shared_inventories.list_all(session, actor)]


@router.post(
    PREFIX,
    dependencies=[permitted(Permission.edit_scripts, shared_inventories.MANAGE)],
    response_model=InventoryOut,
    status_code=201,
    summary="Create a shared inventory (content checked with ansible-inventory --list)",
    responses=error_responses(*AUTHED, 409),
)
async def create_inventory(
    body: Annotated[InventoryIn, CheckedByService], session: Session, actor: CurrentActor
) -> InventoryOut:
    """Operator or admin (edit_scripts). INI or YAML `content`, parsed with `ansible-inventory
    --list`: 422 naming `content` with Ansible's reason and the line or group at fault, or another
    field. 409 naming `name` when taken (ignoring case, also when requests race). Audited as
    `inventory.create`."""
    return await _out(session, await shared_inventories.create(session, actor, body))


@router.get(
    PREFIX + "/{inventory_id}",
    response_model=InventoryOut,
    summary="A shared inventory",
    responses=error_responses(*AUTHED, 404),
)
async def get_inventory(inventory_id: IdPath, session: Session, actor: CurrentActor) -> InventoryOut:
    """Needs view_scripts (every role). 404 when no inventory has this id."""
    return await _out(session, await shared_inventories.get(session, actor, inventory_id))


@router.put(
    PREFIX + "/{inventory_id}",
    dependencies=[permitted(Permission.edit_scripts, shared_inventories.MANAGE)],
    response_model=InventoryOut,
    summary="Change a shared inventory (fields left out keep their values; its scripts' next runs use it)",
    responses=error_responses(*AUTHED, 404, 409),
)
async def update_inventory(
    inventory_id: IdPath,
    body: Annotated[InventoryChanges, CheckedByService],
    session: Session,
    actor: CurrentActor,
) -> InventoryOut:
    """Operator or admin (edit_scripts). Fields left out keep their stored values; errors as for
    create (422, 409). The next run of every script using it reads the new content (a run records
    the SHA-256 of what it read). Sending what is stored changes nothing and audits nothing. 404
    when unknown. Audited as `inventory.update` with the fields changed."""
    return await _out(session, await shared_inventories.update(session, actor, inventory_id, body))


@router.delete(
    PREFIX + "/{inventory_id}",
    dependencies=[permitted(Permission.edit_scripts, shared_inventories.MANAGE)],
    status_code=204,
    summary="Delete a shared inventory (409 naming the scripts while any uses it)",
    responses=error_responses(*AUTHED, 404, 409),
)
async def delete_inventory(inventory_id: IdPath, session: Session, actor: CurrentActor) -> Response:
    """Operator or admin (edit_scripts). 409 naming the scripts while live scripts use it (also
    as `errors[0].scripts`): choose another inventory for them first. 404 when unknown. Audited
    as `inventory.delete`."""
    await shared_inventories.delete(session, actor, inventory_id)
    return Response(status_code=204)
