"""Recording and querying the audit trail. Events join the caller's transaction."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert
from sqlmodel import col, or_, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db.models import AuditEvent
from opscraft.db.rows import new_row
from opscraft.db.types import utcnow, within
from opscraft.services import instants, like
from opscraft.services.actor import Actor
from opscraft.services.invisible import check_filters
from opscraft.services.permissions import Permission, require


def record(
    session: AsyncSession,
    actor: Actor,
    action: str,
    target_type: str | None = None,
    target_id: object | None = None,
    *,
    actor_name: str | None = None,
    **details: Any,
) -> AuditEvent:
    """Add an audit event to the session; it is committed with the change it describes.

    A system actor's name is kept in the details (`system_actor`) next to the user it acts for."""
    event = build(actor, action, target_type, target_id, actor_name=actor_name, **details)
    session.add(event)
    return event


def build(
    actor: Actor,
    action: str,
    target_type: str | None = None,
    target_id: object | None = None,
    *,
    actor_name: str | None = None,
    **details: Any,
) -> AuditEvent:
    """The audit event `record` would add, not yet added anywhere (e.g. a group commit's row)."""
    values = columns(actor, action, target_type, target_id, actor_name=actor_name, **details)
    return new_row(AuditEvent, **values)


def columns(
    actor: Actor,
    action: str,
    target_type: str | None = None,
    target_id: object | None = None,
    *,
    actor_name: str | None = None,
    **details: Any,
) -> dict[str, Any]:
    """Every column of the audit event `record` would add but its id (`time` now, UTC), as a
    plain dict for `record_all` or `rows.new_row`. `actor_name` is used when the actor has no
    name; the values are what the service already checked (lengths: the model's). An action
    requested with a personal access token names it (`api_token_id`): otherwise what a leaked
    token did read as its owner's own doing, and which of the owner's tokens did it was lost."""
    if actor.system is not None:
        details = {**details, "system_actor": actor.system}
    if actor.token_id is not None:
        details = {**details, "api_token_id": actor.token_id}
    return {
        "time": utcnow(),
        "actor_id": actor.user_id,
        "actor_name": actor.name or actor_name,
        "action": action,
        "target_type": target_type,
        "target_id": None if target_id is None else str(target_id),
        "client_ip": actor.client_ip,
        "details": details,
    }


_INSERT = insert(AuditEvent)


async def record_all(session: AsyncSession, events: list[dict[str, Any]]) -> None:
    """Insert `events` (from `columns`) in the caller's transaction as one statement (an
    executemany: their ids are not read back), e.g. one per finished run of a batch."""
    if events:
        await (await session.connection()).execute(_INSERT, events)


# Characters of each free-text filter of `AuditQuery` (the columns' own lengths).
FILTER_LENGTHS = {"actor_name": 64, "action": 64, "target_type": 32, "target_id": 64}


@dataclass(frozen=True)
class AuditQuery:
    """Filters (combined with AND; `since` and `until` inclusive) and paging of an audit log listing."""

    actor_id: int | None = None
    actor_name: str | None = None
    action: str | None = None
    target_type: str | None = None
    target_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    skip: int = 0
    limit: int = 50


async def search(session: AsyncSession, actor: Actor, query: AuditQuery) -> tuple[list[AuditEvent], int]:
    """A page of events matching `query`, newest first, and the total. Raises `Invalid` naming
    a text filter that is too long or holds a control character (`FILTER_LENGTHS`), or when
    `since` is later than `until`."""
    require(actor.user, Permission.view_audit)
    check_filters(**{field: (getattr(query, field), n) for field, n in FILTER_LENGTHS.items()})
    since, until = instants.time_range(query.since, query.until)
    query = replace(query, since=since, until=until)
    return await _search(session, query)


async def facets(session: AsyncSession, actor: Actor) -> tuple[list[str], list[str]]:
    """The distinct actions and target types recorded so far (for filter choices)."""
    require(actor.user, Permission.view_audit)
    actions = await session.exec(select(AuditEvent.action).distinct().order_by(col(AuditEvent.action)))
    targets = await session.exec(
        select(AuditEvent.target_type)
        .where(col(AuditEvent.target_type).is_not(None))
        .distinct()
        .order_by(col(AuditEvent.target_type))
    )
    return list(actions.all()), [t for t in targets.all() if t]


async def _search(session: AsyncSession, query: AuditQuery) -> tuple[list[AuditEvent], int]:
    conditions = []
    if query.actor_id is not None:
        conditions.append(col(AuditEvent.actor_id) == query.actor_id)
    if query.actor_name:
        # Usernames ignore case (sign-in, uniqueness), so the actor filter does too; the exact
        # form also matches where the database's lower() folds ASCII only (SQLite) and a failed
        # sign-in recorded a non-ASCII name as typed, in either spelling of its accented letters
        # (composed or decomposed: `like.spellings`), as every search compares them.
        name = col(AuditEvent.actor_name)
        typed = like.spellings(query.actor_name)
        conditions.append(or_(name.in_(typed), func.lower(name).in_([t.lower() for t in typed])))
    if query.action:
        conditions.append(col(AuditEvent.action) == query.action)
    if query.target_type:
        conditions.append(col(AuditEvent.target_type) == query.target_type)
    if query.target_id:
        conditions.append(col(AuditEvent.target_id) == query.target_id)
    conditions += within(col(AuditEvent.time), query.since, query.until)
    total = (await session.exec(select(func.count()).select_from(AuditEvent).where(*conditions))).one()
    rows = await session.exec(
        select(AuditEvent)
        .where(*conditions)
        .order_by(col(AuditEvent.time).desc(), col(AuditEvent.id).desc())
        .offset(query.skip)
        .limit(query.limit)
    )
    return list(rows.all()), int(total)


async def for_target(
    session: AsyncSession, target_type: str, target_id: object, *, skip: int = 0, limit: int = 50
) -> tuple[list[AuditEvent], int]:
    """Events about one object; the caller has already checked the permission to see it."""
    return await _search(
        session, AuditQuery(target_type=target_type, target_id=str(target_id), skip=skip, limit=limit)
    )
