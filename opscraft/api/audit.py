"""`/api/v1/audit`: the audit trail (admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel

from opscraft.api.deps import CurrentActor, Session
from opscraft.api.schemas import AUTHED, IdQuery, Limit, Page, Skip, error_responses, filter_query
from opscraft.services import audit
from opscraft.services.audit import FILTER_LENGTHS
from opscraft.services.bodies import ISO_TEXT, ISO_UNTIL
from opscraft.services.invisible import FilterText

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


class AuditEventOut(BaseModel):
    """One audit log entry: who (`actor_id`, `actor_name`; null for system actions) did `action` to which
    target, from which client IP, with action-specific `details`.
    """

    id: int
    time: datetime
    actor_id: int | None
    actor_name: str | None
    action: str
    target_type: str | None
    target_id: str | None
    client_ip: str | None
    details: dict[str, Any]

    model_config = {"from_attributes": True}


@router.get(
    "", response_model=Page[AuditEventOut], summary="Search audit events", responses=error_responses(*AUTHED)
)
async def list_events(
    session: Session,
    actor: CurrentActor,
    actor_id: IdQuery = None,
    actor_name: Annotated[FilterText | None, filter_query(FILTER_LENGTHS["actor_name"])] = None,
    action: Annotated[FilterText | None, filter_query(FILTER_LENGTHS["action"])] = None,
    target_type: Annotated[FilterText | None, filter_query(FILTER_LENGTHS["target_type"])] = None,
    target_id: Annotated[FilterText | None, filter_query(FILTER_LENGTHS["target_id"])] = None,
    since: Annotated[datetime | None, Query(description="At or after (ISO 8601)"), ISO_TEXT] = None,
    until: Annotated[
        datetime | None, Query(description="At or before (ISO 8601; a day alone: that whole day)"), ISO_UNTIL
    ] = None,
    skip: Skip = 0,
    limit: Limit = 50,
) -> Page[AuditEventOut]:
    """Admin only (view_audit). Events newest first, as `{items, total, skip, limit}`. Filters
    combine with AND: `actor_id`, `actor_name` (ignoring case), `action` (e.g. `auth.login_failed`),
    `target_type` and `target_id`, `since` and `until` (ISO 8601; no zone is UTC; a day alone is
    that whole UTC day). 422 naming the field for a `since` after `until`, a time with no UTC form,
    or a filter over its length or with a control character. Details never hold a password or a
    secret value."""
    query = audit.AuditQuery(actor_id, actor_name, action, target_type, target_id, since, until, skip, limit)
    rows, total = await audit.search(session, actor, query)
    return Page(items=[AuditEventOut.model_validate(e) for e in rows], total=total, skip=skip, limit=limit)
