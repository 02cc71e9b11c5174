"""Chained runs: a script's "then run" links, and the record of each link's firing."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from opscraft.db.types import UTCDateTime, utcnow


class ChainOutcome(StrEnum):
    """When a link fires: its source run ended `success`, with a failure (failed, timed_out,
    error), or either of those (`any`). Cancelled and rejected runs start nothing."""

    success = "success"
    failure = "failure"
    any = "any"


class ChainLink(SQLModel, table=True):
    """When a run of `script_id` ends with `outcome`, start `target_script_id`.

    `mapping`: target parameter name -> RFC 6901 JSON pointer into the source run's facts
    (`/parameters/NAME`, `/outputs/NAME`, `/run/id|status|exit_code`); `parameters`: fixed values
    under the mapped ones. `owner_id`: who last saved the link (its author)."""

    __tablename__ = "chain_links"
    __table_args__ = (
        UniqueConstraint(
            "script_id", "target_script_id", "outcome", name="uq_chain_links_source_target_outcome"
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    script_id: int = Field(foreign_key="scripts.id", index=True, ondelete="CASCADE")
    target_script_id: int = Field(foreign_key="scripts.id", index=True, ondelete="CASCADE")
    outcome: str = Field(max_length=16)  # a ChainOutcome (plain text: no database enum type)
    mapping: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    parameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    enabled: bool = Field(default=True)
    owner_id: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    # The Terraform action and workspace of the runs it starts (migration 0034): for a Terraform
    # target script `plan` / `default` unless another was chosen, NULL for other types
    # (services/executions.automation_terraform).
    terraform_action: str | None = Field(default=None, max_length=16)
    terraform_workspace: str | None = Field(default=None, max_length=64)
    # The Ansible run options of the runs it starts (migration 0035): normalized as a manual
    # run's (`ansible_options.normalize`), NULL for none and for other script types
    # (services/executions.automation_run_options).
    run_options: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ChainRunStatus(StrEnum):
    """Lifecycle of one firing of a chain link (the comments on the members say who writes each)."""

    pending = "pending"  # written by the run-events subscriber; the starter loop takes it
    starting = "starting"  # claimed by one process (committed together with the new run)
    started = "started"  # `execution_id` is the chained run
    refused = "refused"  # the user on whose behalf it would run may not (audited)
    error = "error"  # the parameters or the target script did not allow a run (`error` says why)


class ChainRun(SQLModel, table=True):
    """One firing of a link for one finished source run (unique: a run fires a link once).

    `parameters` are the target's parameter values computed from the source run when it ended;
    `depth` counts the links from the chain's first run (a guard against runaway chains);
    `author_id`: the link's author (`ChainLink.owner_id`) when it started the run, who chose what
    runs and so may not approve it (services/approvals.py; migration 0048)."""

    __tablename__ = "chain_runs"
    __table_args__ = (UniqueConstraint("link_id", "source_execution_id", name="uq_chain_runs_link_source"),)

    id: int | None = Field(default=None, primary_key=True)
    link_id: int | None = Field(default=None, foreign_key="chain_links.id", index=True, ondelete="SET NULL")
    source_execution_id: int = Field(foreign_key="executions.id", index=True, ondelete="CASCADE")
    target_script_id: int = Field(foreign_key="scripts.id", ondelete="CASCADE")
    execution_id: int | None = Field(
        default=None, foreign_key="executions.id", index=True, unique=True, ondelete="SET NULL"
    )
    status: str = Field(default=ChainRunStatus.pending.value, max_length=16, index=True)  # a ChainRunStatus
    parameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    depth: int = Field(default=1)
    author_id: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
