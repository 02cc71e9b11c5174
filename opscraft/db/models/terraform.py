"""Terraform state kept by OpsCraft (the HTTP backend): one row per script and workspace, with
its lock, and every version of the state, encrypted like secrets."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary
from sqlmodel import Field, SQLModel

from opscraft.db.types import UTCDateTime, utcnow


class TerraformState(SQLModel, table=True):
    """The state of one script's workspace; `lock_id` set while a run (or a crashed one) holds it."""

    __tablename__ = "terraform_states"
    __table_args__ = (Index("ux_terraform_states_script_workspace", "script_id", "workspace", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    script_id: int = Field(foreign_key="scripts.id", ondelete="CASCADE")
    workspace: str = Field(max_length=64)
    current_version: int = Field(default=0)  # 0: no state yet (or deleted)
    lock_id: str | None = Field(default=None, max_length=64)
    # Terraform's lock info as sent (ID, Operation, Who, Version, Created, Path) + execution id.
    lock_info: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    locked_by_execution: int | None = Field(default=None)
    locked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class TerraformStateVersion(SQLModel, table=True):
    """One stored state (never changed); `number` counts per state from 1."""

    __tablename__ = "terraform_state_versions"
    __table_args__ = (Index("ux_terraform_state_versions_number", "state_id", "number", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    state_id: int = Field(foreign_key="terraform_states.id", ondelete="CASCADE")
    number: int
    serial: int | None = Field(default=None)  # Terraform's own serial and lineage, from the state
    lineage: str | None = Field(default=None, max_length=64)
    size_bytes: int = Field(default=0)
    sha256: str = Field(max_length=64)
    execution_id: int | None = Field(default=None)  # the run that wrote it (None: a rollback)
    created_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    note: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    salt: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    nonce: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    key_version: int = Field(default=1)


class TerraformPlan(SQLModel, table=True):
    """The saved plan of one successful `plan` run, encrypted with the vault (never changed).

    `prior_serial`/`prior_lineage` are those of the state the plan was made against (the
    `tfstate` entry of Terraform's plan file; serial 0 and lineage "" when there was none): an
    apply of the plan is refused once the state's current version differs (stale plan).
    `summary` is `{"resources": [{"address", "actions"[, "importing": true][, "previous_address"]}],
    "outputs": [{"name", "actions"}], "truncated": bool}`
    from `terraform show -json`; `apply_execution_id` is the run that applies it (one at most).
    """

    __tablename__ = "terraform_plans"
    __table_args__ = (Index("ux_terraform_plans_execution", "execution_id", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    execution_id: int = Field(foreign_key="executions.id", ondelete="CASCADE")
    script_id: int = Field(foreign_key="scripts.id", ondelete="CASCADE")
    workspace: str = Field(max_length=64)
    script_version: int  # the version the plan run ran: its apply runs the same
    prior_serial: int = Field(default=0)
    prior_lineage: str = Field(default="", max_length=64)
    to_import: int = Field(default=0)  # resources an `import` block brings in (migration 0040)
    to_add: int = Field(default=0)
    to_change: int = Field(default=0)
    to_destroy: int = Field(default=0)
    summary: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    size_bytes: int = Field(default=0)
    sha256: str = Field(max_length=64)
    apply_execution_id: int | None = Field(
        default=None, foreign_key="executions.id", ondelete="SET NULL", index=True
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    salt: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    nonce: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    key_version: int = Field(default=1)
