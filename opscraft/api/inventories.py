"""`/api/v1/inventories`: shared Ansible inventories (rules: services/shared_inventories.py).

Everyone with a role reads them; operators and admins create, replace and delete them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from opscraft.api.deps import NO_BODY, CurrentActor, Session, permitted
from opscraft.api.schemas import AUTHED, CheckedByService, IdPath, Limit, Page, Skip, error_responses
from opscraft.db.models import Inventory
from opscraft.db.models.inventories import content_sha256
from opscraft.services import shared_inventories
from opscraft.services.permissions import Permission
from opscraft.services.shared_inventories import InventoryChanges, InventoryIn

router = APIRouter(tags=["inventories"])
PREFIX = "/api/v1/inventories"


class InventoryOut(BaseModel):
    """A shared Ansible inventory with its current content, version number and the live scripts using it."""

    id: int
    name: str
    description: str
    content: str = Field(description="INI or YAML inventory text")
    content_sha256: str = Field(description="Hex SHA-256 of the content, as runs record it")
    version: int = Field(description="Number of the current content's version (`/versions`), from 1")
    used_by: list[str] = Field(description="Names of the live scripts using this inventory")
    created_by: int | None
    updated_by: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, inventory: Inventory, used_by: list[str]) -> InventoryOut:
        """Build the API shape of a stored inventory, given the names of the scripts using it."""
        assert inventory.id is not None
        return cls(
            id=inventory.id,
            name=inventory.name,
            description=inventory.description,
            content=inventory.content,
            content_sha256=content_sha256(inventory.content),
            version=inventory.version,
            used_by=used_by,
            created_by=inventory.created_by,
            updated_by=inventory.updated_by,
            created_at=inventory.created_at,
            updated_at=inventory.updated_at,
        )


class InventoryVersionSummary(BaseModel):
    """One saved version of an inventory's content, without the content itself (for version lists)."""

    number: int = Field(description="From 1; a new one for each change of the content")
    content_sha256: str = Field(description="Hex SHA-256 of this content, as runs record it")
    author_id: int | None
    author_name: str | None = Field(description="Who saved it (None: the user was deleted since)")
    created_at: datetime

    @classmethod
    def of(cls, row: shared_inventories.VersionRow) -> InventoryVersionSummary:
        """Build a version summary from a stored version row and its author's name."""
        version = row.version
        return cls(
            number=version.number,
            content_sha256=version.content_sha256,
            author_id=version.author_id,
            author_name=row.author_name,
            created_at=version.created_at,
        )


class InventoryVersionOut(InventoryVersionSummary):
    """One saved version of an inventory, with its content."""

    content: str = Field(description="INI or YAML inventory text of this version")

    @classmethod
    def of(cls, row: shared_inventories.VersionRow) -> InventoryVersionOut:
        """Build the API shape of a stored version with its content."""
        return cls(**InventoryVersionSummary.of(row).model_dump(), content=row.version.content)


async def _out(session: Session, inventory: Inventory) -> InventoryOut:
    assert inventory.id is not None
    return InventoryOut.of(inventory, await shared_inventories.used_by(session, inventory.id))


@router.get(
    PREFIX,
    response_model=Page[InventoryOut],
    summary="Shared inventories, by name",
    responses=error_responses(*AUTHED),
)
async def list_inventories(
    session: Session, actor: CurrentActor, skip: Skip = 0, limit: Limit = 50
) -> Page[InventoryOut]:
    """Needs view_scripts (every role). A page (`{items, total, skip, limit}`, `limit` at most
    500) of the shared inventories by name (ignoring case), each with its content,
    `content_sha256` and `used_by` (the live scripts using it)."""
    rows, total = await shared_inventories.list_all(session, actor, skip=skip, limit=limit)
    return Page(items=[await _out(session, i) for i in rows], total=total, skip=skip, limit=limit)


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


@router.get(
    PREFIX + "/{inventory_id}/versions",
    response_model=Page[InventoryVersionSummary],
    summary="Content history of a shared inventory, newest first",
    responses=error_responses(*AUTHED, 404),
)
async def list_inventory_versions(
    inventory_id: IdPath, session: Session, actor: CurrentActor, skip: Skip = 0, limit: Limit = 50
) -> Page[InventoryVersionSummary]:
    """Needs view_scripts (every role). `{items, total, skip, limit}` without content, newest
    first: every content the inventory has had (a change of name or description adds none). A
    run's `inventory_sha256` is one of them. 404 when the inventory is unknown."""
    rows, total = await shared_inventories.list_versions(session, actor, inventory_id, skip=skip, limit=limit)
    return Page(items=[InventoryVersionSummary.of(r) for r in rows], total=total, skip=skip, limit=limit)


@router.get(
    PREFIX + "/{inventory_id}/versions/{number}",
    response_model=InventoryVersionOut,
    summary="One version of a shared inventory, with its content",
    responses=error_responses(*AUTHED, 404),
)
async def get_inventory_version(
    inventory_id: IdPath, number: IdPath, session: Session, actor: CurrentActor
) -> InventoryVersionOut:
    """Needs view_scripts (every role). 404 when the inventory or that version is unknown."""
    return InventoryVersionOut.of(await shared_inventories.get_version(session, actor, inventory_id, number))


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
    create (422, 409); 409 naming `content` when `base_content_sha256` is not the stored content's,
    or naming `name`/`description` when one sent with a new value was changed since the edit's
    `base` (nothing written; no `base`: last write wins). The next run of every script using it
    reads the new content (a run records the SHA-256 of what it read). Sending what is stored
    changes nothing and audits nothing. 404 when unknown. Audited as `inventory.update` with the
    fields changed."""
    return await _out(session, await shared_inventories.update(session, actor, inventory_id, body))


@router.delete(
    PREFIX + "/{inventory_id}",
    dependencies=[permitted(Permission.edit_scripts, shared_inventories.MANAGE), NO_BODY],
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
