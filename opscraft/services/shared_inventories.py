"""Shared Ansible inventories: named INI or YAML text that several scripts use (`inventory_id`).

Content is checked exactly as a script's own inventory is (`inventories.validate`: data only,
parsed by `ansible-inventory --list`). Everyone with a role reads them; operators and admins
create, change and delete them (`edit_scripts`), each change audited. A run reads the content
when it starts (execution/store.py) and records the inventory's id and the SHA-256 of what it used.
Every content an inventory has had is kept, numbered (`InventoryVersion`): the version a past run
read is found by that SHA-256 (`run_version`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import Field, field_validator
from sqlalchemy import func
from sqlalchemy.orm import defer
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db.models import Inventory, InventoryVersion, Script, User
from opscraft.db.models.inventories import content_sha256
from opscraft.db.turns import take_write_turn
from opscraft.db.types import MAX_ID, utcnow
from opscraft.execution import yaml_keys
from opscraft.services import audit, conflicts, inventories, names, paging
from opscraft.services.actor import Actor
from opscraft.services.ahead import Ahead
from opscraft.services.bodies import Body
from opscraft.services.errors import Conflict, NotFound, Problems, ServiceError
from opscraft.services.partial import CHANGES, changed_meanwhile, over_stored, three_way
from opscraft.services.permissions import Permission, require
from opscraft.services.scripts import MAX_DESCRIPTION, NAME_RE, parse
from opscraft.services.storable import Text

# What a refusal names (services/permissions.require; the routes' early check says the same).
MANAGE = "manage shared inventories"

In = TypeVar("In", bound="InventoryIn")

#: How many hex digits of a content's SHA-256 the pages show (the Inventories page and a run's).
SHA_SHOWN = 12

NAME_TAKEN = "an inventory with this name already exists: choose another name"


class InventoryIn(Body):
    """Create or replace a shared inventory (PUT sends every field)."""

    model_config = {"extra": "forbid"}

    name: str = Field(examples=["web-servers"], json_schema_extra={"pattern": NAME_RE.pattern})
    description: Text = Field(default="", max_length=MAX_DESCRIPTION)
    content: Text = Field(
        description="INI or YAML inventory (data only: no plugin, no script), at most 64 KiB",
        examples=["[web]\nweb1 ansible_host=192.0.2.10\n\n[web:vars]\nhttp_port=8080\n"],
    )

    @field_validator("content")
    @classmethod
    def _content(cls, value: str) -> str:
        return inventories.without_bom(value)

    @field_validator("name", mode="before")
    @classmethod
    def _trimmed(cls, value: Any) -> Any:
        return names.trimmed(value)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.fullmatch(value):
            raise ValueError(
                "must be 1-128 characters: ASCII letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        return value


class InventoryBase(Body):
    """What the name and description held when an edit started (`InventoryChanges.base`), as
    `GET` returned them; the content has `base_content_sha256`."""

    model_config = {"extra": "forbid"}

    name: Text = ""
    description: Text = ""


class InventoryChanges(InventoryIn):
    """`InventoryIn` as a `PUT` body, every field optional (`partial.CHANGES`), and the content the
    edit started from (`base_content_sha256`), so that two people editing the same inventory do
    not silently undo each other's hosts (the last save of the whole text used to win)."""

    model_config = CHANGES

    base_content_sha256: str | None = Field(
        default=None,
        pattern="^[0-9a-f]{64}$",
        description="The `content_sha256` of the content the edit started from: a new `content` is "
        "refused (409, field `content`) when the stored content has changed since. Left out: no check.",
    )
    base: InventoryBase | None = Field(
        default=None,
        description="What `name` and `description` held when the edit started: one sent with a new "
        "value whose stored value is neither this nor the new one was changed meanwhile (409 naming "
        "it, nothing saved); one sent equal to its base keeps the stored value. Left out: last write wins.",
        examples=[{"name": "web-servers", "description": ""}],
    )


async def list_all(
    session: AsyncSession, actor: Actor, *, skip: int = 0, limit: int = paging.DEFAULT_PAGE
) -> tuple[list[Inventory], int]:
    """A page (`paging.page`) of the shared inventories, by name ignoring case (ties by id), and
    how many there are."""
    require(actor.user, Permission.view_scripts)
    query = select(Inventory).order_by(*names.name_order(Inventory.name), col(Inventory.id))
    return await paging.page(session, query, skip, limit)


async def get(session: AsyncSession, actor: Actor, inventory_id: int) -> Inventory:
    """One shared inventory; `NotFound` (404) when there is none with this id (also one no row
    can have, outside 1..MAX_ID: the database's integer would refuse it, a 500)."""
    require(actor.user, Permission.view_scripts)
    inventory = await session.get(Inventory, inventory_id) if 1 <= inventory_id <= MAX_ID else None
    if inventory is None:
        raise NotFound.gone("inventory")
    return inventory


async def name_of(session: AsyncSession, actor: Actor, inventory_id: int) -> str | None:
    """The name of the shared inventory `inventory_id` (a run's, which may outlive it); None when it
    was deleted."""
    require(actor.user, Permission.view_scripts)
    return (await session.exec(select(Inventory.name).where(col(Inventory.id) == inventory_id))).first()


async def used_by(session: AsyncSession, inventory_id: int) -> list[str]:
    """Names of the live scripts that use the inventory, sorted."""
    rows = await session.exec(
        select(Script.name)
        .where(col(Script.inventory_id) == inventory_id, col(Script.deleted_at).is_(None))
        .order_by(*names.name_order(Script.name))
    )
    return list(rows.all())


async def reaches_network(session: AsyncSession, actor: Actor, script: Script) -> bool:
    """Whether the script's runs reach hosts over the network (`inventories.reaches_network` of
    its own inventory text, or of its shared inventory's content); False without an inventory,
    since the playbook then runs against localhost inside the run."""
    require(actor.user, Permission.view_scripts)
    text = script.inventory
    if script.inventory_id is not None:  # a shared one deleted meanwhile: the run says so itself
        shared = await session.get(Inventory, script.inventory_id)
        text = shared.content if shared is not None else None
    return await inventories.reaches_network(text) if text else False


async def _check_name_free(session: AsyncSession, name: str, except_id: int | None = None) -> None:
    """`Conflict` (409, field `name`) when another inventory has this name, ignoring case (names
    are ASCII: SQL's and Python's lower case agree)."""
    stmt = select(Inventory.id).where(func.lower(col(Inventory.name)) == name.lower())
    if except_id is not None:
        stmt = stmt.where(col(Inventory.id) != except_id)
    if (await session.exec(stmt)).first() is not None:
        raise Conflict(NAME_TAKEN, details=[{"field": "name", "message": "another inventory has this name"}])


def _read(data: object, model: type[In]) -> tuple[In | None, object, Problems]:
    """`data` as `model` (None when it refuses it), the content it sends (also when other fields
    are refused) and the problems found."""
    problems = Problems()
    body: In | None = None
    with problems.check():
        body = parse(model, data)
    content = body.content if body else None
    if body is None and isinstance(data, Mapping) and "content" not in problems.fields():
        content = data.get("content")
    return body, content, problems


async def _checked(
    data: InventoryIn | Mapping[str, Any],
    ahead: Ahead,
    stored: str | None = None,
    model: type[In] = InventoryIn,
) -> In:
    """The body as `model`, its content checked by Ansible unless it is the `stored` one (the
    answer `ahead` kept when it checked the same text: `services.ahead`). The content is checked
    even when the body refuses other fields, so one `Invalid` (422) names every problem."""
    body, content, problems = _read(data, model)
    if isinstance(content, str) and content != stored:
        with problems.check():
            await ahead.answer(inventories.validate, content, "content")
    problems.raise_if_any()
    assert body is not None  # else raised above
    return body


async def create(session: AsyncSession, actor: Actor, data: InventoryIn | Mapping[str, Any]) -> Inventory:
    """A new shared inventory. `Invalid` (422) naming the field (content: Ansible's reason);
    `Conflict` (409, field `name`) when the name is taken, also when two creates race."""
    require(actor.user, Permission.edit_scripts, MANAGE)
    body = await _checked(data, Ahead())
    await _check_name_free(session, body.name)
    inventory = Inventory(**body.model_dump(), created_by=actor.user_id, updated_by=actor.user_id)
    session.add(inventory)
    await conflicts.flush(session)
    _add_version(session, actor, inventory)
    audit.record(session, actor, "inventory.create", "inventory", inventory.id, name=inventory.name)
    await conflicts.commit(session)
    return inventory


async def _check_ahead(
    session: AsyncSession, actor: Actor, inventory_id: int, data: InventoryIn | Mapping[str, Any]
) -> Ahead:
    """`ansible-inventory`'s check of an edit's new content, run before the write turn
    (`services.ahead`): under it, on SQLite, every other writer (runs storing output,
    submissions) waited for its seconds (2-10 s under load). `NotFound` (404) for an unknown id."""
    ahead = Ahead()
    stored = await get(session, actor, inventory_id)
    try:
        _, content, _ = _read(over_stored(InventoryChanges, data, stored), InventoryChanges)
    except ServiceError:  # said under the turn, where it is decided
        return ahead
    if isinstance(content, str) and content != stored.content:
        await ahead.run(inventories.validate, content, "content")
    return ahead


async def update(
    session: AsyncSession, actor: Actor, inventory_id: int, data: InventoryIn | Mapping[str, Any]
) -> Inventory:
    """Change name, description and/or content (a field `data` leaves out keeps its stored
    value: `partial.over_stored`); the next run of every script using it reads the new content.
    Errors as in `create`; `NotFound` (404) for an unknown id; `Conflict` (409, field `content`)
    for a new content whose `base_content_sha256` is not the stored content's (`_check_base`), or
    for a name or description changed since the edit's `base` (`partial.three_way`)."""
    require(actor.user, Permission.edit_scripts, MANAGE)
    ahead = await _check_ahead(session, actor, inventory_id, data)
    inventory = await _locked(session, actor, inventory_id)
    changes = over_stored(InventoryChanges, data, inventory)
    body = await _checked(changes, ahead, inventory.content, InventoryChanges)
    values = body.model_dump(exclude={"base_content_sha256", "base"})
    if body.base is not None:
        values = three_way(
            inventory, values, body.base.model_dump(exclude_unset=True), "the inventory", actor.user.id
        )
    changed = sorted(k for k, v in values.items() if getattr(inventory, k) != v)
    if not changed:
        return inventory
    if "content" in changed:
        _check_base(inventory, body.base_content_sha256, actor.user.id if actor.user else None)
    if "name" in changed:
        await _check_name_free(session, body.name, inventory_id)
    before = inventory.name
    for key in changed:
        setattr(inventory, key, values[key])
    inventory.updated_by = actor.user_id
    inventory.updated_at = utcnow()
    if "content" in changed:
        inventory.version += 1
        _add_version(session, actor, inventory)
    await conflicts.flush(session)
    details: dict[str, Any] = {"fields": changed, "name": inventory.name}
    if "name" in changed:  # the audit names it as it was too: runs and people knew that name
        details["previous_name"] = before
    if "content" in changed:
        details["content_sha256"] = content_sha256(inventory.content)
        details["version"] = inventory.version
    audit.record(session, actor, "inventory.update", "inventory", inventory_id, **details)
    await conflicts.commit(session)
    return inventory


def _add_version(session: AsyncSession, actor: Actor, inventory: Inventory) -> None:
    """Keep the inventory's current content as its version `inventory.version` (same time as
    its `updated_at`)."""
    assert inventory.id is not None
    session.add(
        InventoryVersion(
            inventory_id=inventory.id,
            number=inventory.version,
            content=inventory.content,
            content_sha256=content_sha256(inventory.content),
            author_id=actor.user_id,
            created_at=inventory.updated_at,
        )
    )


@dataclass(frozen=True)
class VersionRow:
    """A version of a shared inventory and its author's username (None: deleted since)."""

    version: InventoryVersion
    author_name: str | None


async def list_versions(
    session: AsyncSession, actor: Actor, inventory_id: int, *, skip: int = 0, limit: int = 50
) -> tuple[list[VersionRow], int]:
    """Versions of the inventory, newest first, without their content, and how many there are;
    `NotFound` (404) for an unknown inventory."""
    await get(session, actor, inventory_id)
    where = col(InventoryVersion.inventory_id) == inventory_id
    total = (await session.exec(select(func.count()).select_from(InventoryVersion).where(where))).one()
    rows = await session.exec(
        select(InventoryVersion, User.username)
        .outerjoin(User, col(User.id) == col(InventoryVersion.author_id))
        .options(defer(InventoryVersion.content))  # type: ignore[arg-type]
        .where(where)
        .order_by(col(InventoryVersion.number).desc())
        .offset(skip)
        .limit(limit)
    )
    return [VersionRow(version, name) for version, name in rows.all()], int(total)


def stored_problem(content: str) -> str | None:
    """What the runs of every script using a shared inventory of this `content` are refused for
    before any task (`yaml_keys.inventory_refusal`: a key written twice, stored before saves
    refused that), for the Inventories page beside the text; None when nothing."""
    return yaml_keys.inventory_refusal(content, shared=True)


async def get_version(session: AsyncSession, actor: Actor, inventory_id: int, number: int) -> VersionRow:
    """Version `number` of the inventory with its content; `NotFound` (404) when the inventory
    or that version is unknown."""
    await get(session, actor, inventory_id)
    row = None
    if 1 <= number <= MAX_ID:  # as in `get`
        row = (
            await session.exec(
                select(InventoryVersion, User.username)
                .outerjoin(User, col(User.id) == col(InventoryVersion.author_id))
                .where(col(InventoryVersion.inventory_id) == inventory_id)
                .where(col(InventoryVersion.number) == number)
            )
        ).first()
    if row is None:
        numbers = select(
            func.min(InventoryVersion.number), func.max(InventoryVersion.number), func.count()
        ).where(col(InventoryVersion.inventory_id) == inventory_id)
        raise NotFound.no_version("inventory", number, *(await session.exec(numbers)).one())
    return VersionRow(*row)


async def run_version(session: AsyncSession, actor: Actor, inventory_id: int, sha256: str) -> int | None:
    """The number of the version of the inventory whose content a run read (its recorded
    `inventory_sha256`), the latest when a content came back; None when the inventory was
    deleted since (its versions with it)."""
    require(actor.user, Permission.view_scripts)
    return (
        await session.exec(
            select(func.max(InventoryVersion.number)).where(
                col(InventoryVersion.inventory_id) == inventory_id,
                col(InventoryVersion.content_sha256) == sha256,
            )
        )
    ).first()


def _check_base(inventory: Inventory, base: str | None, editor: int | None) -> None:
    """`Conflict` (409, field `content`) when an edit by the user `editor` (id) that started from
    the content with SHA-256 `base` would replace a content saved since (by another person, tab
    or API client: which, `partial.changed_meanwhile` says): its save would drop what they
    added. None: the client did not say where it started, no check."""
    if base is not None and base != content_sha256(inventory.content):
        message = (
            f"was {changed_meanwhile(inventory, editor)}: open the inventory again to see its "
            "content and apply your change to it"
        )
        raise Conflict(f"content: {message}", details=[{"field": "content", "message": message}])


async def delete(session: AsyncSession, actor: Actor, inventory_id: int) -> None:
    """Delete an inventory no live script uses; `Conflict` (409) naming the scripts otherwise.

    The row is locked first (PostgreSQL), as a script save that selects it does, so a script
    cannot start using it while it is deleted."""
    require(actor.user, Permission.edit_scripts, MANAGE)
    inventory = await _locked(session, actor, inventory_id)
    users = await used_by(session, inventory_id)
    if users:
        shown = ", ".join(users[:10]) + (f" and {len(users) - 10} more" if len(users) > 10 else "")
        raise Conflict(
            f"inventory {inventory.name} is used by script(s) {shown}: choose another inventory for "
            "them first",
            details=[{"field": "inventory_id", "message": "in use", "scripts": users}],
        )
    # Deleted scripts keep their rows: let go of their reference so the row can go.
    deleted = await session.exec(select(Script).where(col(Script.inventory_id) == inventory_id))
    for script in deleted.all():
        script.inventory_id = None
    await conflicts.flush(session)
    audit.record(session, actor, "inventory.delete", "inventory", inventory_id, name=inventory.name)
    await session.delete(inventory)
    await conflicts.commit(session)


async def _locked(session: AsyncSession, actor: Actor, inventory_id: int) -> Inventory:
    """The inventory, held until the transaction ends (`FOR UPDATE` on PostgreSQL, the write turn
    on SQLite: `db.turns`), so edits at once get consecutive versions on both databases."""
    await get(session, actor, inventory_id)
    await take_write_turn(session, Inventory, col(Inventory.id) == inventory_id)
    inventory = (
        await session.exec(select(Inventory).where(col(Inventory.id) == inventory_id).with_for_update())
    ).one()
    await session.refresh(inventory)
    return inventory
