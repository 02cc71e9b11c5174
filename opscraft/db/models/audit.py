"""The append-only audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from opscraft.db.types import UTCDateTime, utcnow


class AuditEvent(SQLModel, table=True):
    """One audit trail row: who did what to which target from where. No foreign keys: the trail outlives
    deleted users and targets, so `actor_name` keeps the name; `details` is action-specific JSON and
    never holds a secret value.
    """

    __tablename__ = "audit_events"

    id: int | None = Field(default=None, primary_key=True)
    time: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    # No foreign key: the trail outlives deleted users, so the name is kept beside the id.
    actor_id: int | None = Field(default=None, index=True)
    actor_name: str | None = Field(default=None, max_length=64)
    action: str = Field(max_length=64, index=True)
    target_type: str | None = Field(default=None, max_length=32)
    target_id: str | None = Field(default=None, max_length=64)
    client_ip: str | None = Field(default=None, max_length=64)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
