"""Scripts and their immutable version history."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, Text, text
from sqlmodel import Field, SQLModel

from opscraft.db.types import StoredEnum, UTCDateTime, utcnow


class ScriptType(StrEnum):
    """The language of a script, which decides the runner command and the Docker image."""

    bash = "bash"
    python = "python"
    ansible = "ansible"
    terraform = "terraform"


class ScriptStatus(StrEnum):
    """A script's lifecycle: draft and deprecated scripts cannot be run, only active ones."""

    draft = "draft"
    active = "active"
    deprecated = "deprecated"


LIVE = text("deleted_at IS NULL")
COVERED = ("search_text", "script_type", "status", "deleted_at")


class Script(SQLModel, table=True):
    """A script; soft-deleted rows keep their name so past executions stay readable.

    Names are unique among live scripts only, ignoring case (a partial unique index on
    `lower(name)`), so a deleted script's name can be reused.
    """

    __tablename__ = "scripts"
    __table_args__ = (
        # Live scripts' names are unique ignoring case (names are ASCII: `lower` is exact).
        Index(
            "ux_scripts_live_name", text("lower(name)"), unique=True, sqlite_where=LIVE, postgresql_where=LIVE
        ),
        # Listing and search (see services.scripts.list_scripts). SQLite: covering indexes, so
        # counting and paging scan the index, never the rows with their content. PostgreSQL:
        # a trigram index (pg_trgm) for `LIKE '%word%'` (search_text may exceed a btree entry).
        *(
            Index(f"ix_scripts_live_{key}", key, *COVERED, sqlite_where=LIVE).ddl_if(dialect="sqlite")
            for key in ("name", "updated_at")
        ),
        Index("ix_scripts_live_updated", "updated_at", postgresql_where=LIVE).ddl_if(dialect="postgresql"),
        Index(
            "ix_scripts_search_trgm",
            "search_text",
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
            postgresql_where=LIVE,
        ).ddl_if(dialect="postgresql"),
    )

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    script_type: ScriptType = Field(max_length=16, sa_type=StoredEnum(ScriptType))
    # Normalized typed form: [{"name", "type", "required", "default", "description", "options"}]
    parameters: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    version: str = Field(default="1.0.0", max_length=32)
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    status: ScriptStatus = Field(default=ScriptStatus.draft, max_length=16, sa_type=StoredEnum(ScriptStatus))
    # Lower-cased name, description and tags: what `search` matches, in one column.
    search_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    timeout_seconds: int = Field(default=3600)
    memory_mb: int = Field(default=512)
    cpus: float = Field(default=0.5)
    network_enabled: bool = Field(default=False)
    max_concurrent: int | None = Field(default=None)
    # Whether users who may not edit the script (viewers) may choose an Ansible run's run options
    # (services/run_option_rights.py); editors always may.
    viewers_choose_run_options: bool = Field(default=True)
    # Ansible only: the inventory (INI or YAML text) and the SSH credential (user name, and the
    # name of an attached `file` secret holding the private key). None: localhost.
    inventory: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    ssh_user: str | None = Field(default=None, max_length=64)
    ssh_key_secret: str | None = Field(default=None, max_length=128)
    # Ansible only: a shared inventory (`inventories.id`) instead of the script's own text.
    inventory_id: int | None = Field(default=None, foreign_key="inventories.id", index=True)
    current_version: int = Field(default=1)
    created_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    updated_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Soft delete: past executions keep pointing at a readable script row.
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Last, so scans of the other columns never read (SQLite overflow) pages of a large script.
    content: str = Field(sa_column=Column(Text, nullable=False))


class ScriptTag(SQLModel, table=True):
    """Tags of live scripts, one row each, so filtering by tag is an indexed lookup."""

    __tablename__ = "script_tags"

    script_id: int = Field(foreign_key="scripts.id", primary_key=True, ondelete="CASCADE")
    tag: str = Field(max_length=50, primary_key=True, index=True)


class ScriptVersion(SQLModel, table=True):
    """One saved version of a script: its content, parameter declarations and run settings as they were;
    `number` counts from 1 per script.
    """

    __tablename__ = "script_versions"
    __table_args__ = (Index("ix_script_versions_script_number", "script_id", "number", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    script_id: int = Field(foreign_key="scripts.id", ondelete="CASCADE")
    number: int
    script_type: ScriptType = Field(max_length=16, sa_type=StoredEnum(ScriptType))
    content: str = Field(sa_column=Column(Text, nullable=False))
    parameters: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    run_settings: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    version_label: str = Field(default="1.0.0", max_length=32)
    change_note: str = Field(default="", max_length=500)
    author_id: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
