"""Shared Ansible inventories: named INI or YAML text that several scripts use."""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import Column, Index, Integer, Text, text
from sqlmodel import Field, SQLModel

from opscraft.db.types import UTCDateTime, utcnow


class Inventory(SQLModel, table=True):
    """A named inventory (services/inventories.py checks its content like a script's own).

    Scripts refer to it by `scripts.inventory_id`; a run reads its content when it starts and
    records the id and the SHA-256 of that content on the execution. Every content it has had
    is kept as an `InventoryVersion`; `version` is the number of the current one."""

    __tablename__ = "inventories"
    # Names are unique ignoring case (names are ASCII: `lower` is exact).
    __table_args__ = (Index("ux_inventories_name", text("lower(name)"), unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    content: str = Field(sa_column=Column(Text, nullable=False))
    version: int = Field(default=1, sa_column=Column(Integer, nullable=False, server_default="1"))
    created_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    updated_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class InventoryVersion(SQLModel, table=True):
    """One content a shared inventory has had (numbered from 1; a change of name or description
    is no new version): what a past run read is found by its `content_sha256`, so the hosts a
    run targeted stay readable after the inventory changed. Removed with the inventory."""

    __tablename__ = "inventory_versions"
    __table_args__ = (
        Index("ux_inventory_versions_number", "inventory_id", "number", unique=True),
        Index("ix_inventory_versions_sha", "inventory_id", "content_sha256"),
    )

    id: int | None = Field(default=None, primary_key=True)
    inventory_id: int = Field(foreign_key="inventories.id", ondelete="CASCADE")
    number: int
    content: str = Field(sa_column=Column(Text, nullable=False))
    content_sha256: str = Field(max_length=64)
    author_id: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


def content_sha256(content: str) -> str:
    """Hex SHA-256 of the UTF-8 `content`: what a run records of the inventory it used."""
    return hashlib.sha256(content.encode()).hexdigest()
