"""Settings an admin changes at run time (e.g. open registration), as key -> JSON value."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from opscraft.db.types import UTCDateTime, utcnow


class AppSetting(SQLModel, table=True):
    """One instance-wide setting changed by an admin: a JSON value under a key (services/app_settings.py has
    the keys and defaults).
    """

    __tablename__ = "app_settings"

    key: str = Field(primary_key=True, max_length=64)
    value: Any = Field(default=None, sa_column=Column(JSON, nullable=True))
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
