"""Executions and their stored output."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, Text, text
from sqlmodel import Field, SQLModel

from opscraft.db import clock
from opscraft.db.types import StoredEnum, UTCDateTime, utcnow

BYTE_COUNT = BigInteger().with_variant(Integer(), "sqlite")
#: The rows of output retention's work list (`ix_executions_output_kept`): output stored and not
#: removed. The `0` is a literal: a planner uses a partial index only for a query whose own
#: condition says as much (services/retention.py repeats this text), never a bound parameter.
OUTPUT_KEPT = "output_removed_at IS NULL AND output_stored_bytes > 0"
"""A count of bytes: 64 bits (a run's output passes 2 GiB in a minute of `yes`; PostgreSQL's
INTEGER refused it, and the run's final state with it). SQLite's INTEGER is 64 bits already."""


class ExecutionStatus(StrEnum):
    """A run's status: queued and running, or one of the final ones (success, failed, cancelled, timed_out,
    error, rejected); awaiting_approval before a required approval.
    """

    queued = "queued"
    running = "running"
    success = "success"
    failed = "failed"
    cancelled = "cancelled"
    timed_out = "timed_out"
    error = "error"
    # A run of a script that requires approval waits here (services/approvals.py); a rejected or
    # expired one ends `rejected`.
    awaiting_approval = "awaiting_approval"
    rejected = "rejected"


# A cancelled run's `error_message` is this and the canceller's username (`cancelled_by_name`).
CANCELLED_BY = "cancelled by "


class Trigger(StrEnum):
    """How a run started: a person in the UI or over the API, or a system actor on a user's behalf."""

    ui = "ui"
    api = "api"
    api_token = "api_token"
    schedule = "schedule"
    webhook = "webhook"
    retry = "retry"
    chain = "chain"  # a "then run" link of another run (trigger_ref "execution:<id>")


FINAL_STATUSES = frozenset(
    {
        ExecutionStatus.success,
        ExecutionStatus.failed,
        ExecutionStatus.cancelled,
        ExecutionStatus.timed_out,
        ExecutionStatus.error,
        ExecutionStatus.rejected,
    }
)


class Execution(SQLModel, table=True):
    """One run of a script version: what ran (a copy of the script's name, type and version), with which
    parameters and options, who or what started it, where it ran, how it ended and its output figures.
    Output chunks are stored separately.
    """

    __tablename__ = "executions"
    __table_args__ = (
        Index("ix_executions_script_queued", "script_id", "queued_at"),
        Index("ix_executions_status_queued", "status", "queued_at"),
        # History filters and the dashboard at a million rows (docs/benchmarks.md shows the plans).
        Index("ix_executions_user_queued", "triggered_by", "queued_at"),
        Index("ix_executions_script_status_queued", "script_id", "status", "queued_at"),
        Index("ix_executions_trigger_queued", "trigger", "queued_at"),
        Index("ix_executions_finished_status", "finished_at", "status"),
        # Output retention's work list: finished runs whose output is still stored, oldest first
        # (a run that stored none is never on it: nothing of it is removed, migration 0043).
        Index(
            "ix_executions_output_kept",
            "finished_at",
            sqlite_where=text(OUTPUT_KEPT),
            postgresql_where=text(OUTPUT_KEPT),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    script_id: int = Field(foreign_key="scripts.id")
    script_version: int
    script_name: str = Field(max_length=128)
    script_type: str = Field(max_length=16)
    status: ExecutionStatus = Field(
        default=ExecutionStatus.queued, max_length=16, sa_type=StoredEnum(ExecutionStatus)
    )
    parameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    terraform_action: str | None = Field(default=None, max_length=16)
    # The workspace whose state a Terraform run uses (`default` unless chosen); None for others.
    terraform_workspace: str | None = Field(default=None, max_length=64)
    # Ansible run options ({"limit", "tags", "skip_tags", "check", "diff"}), validated at start.
    run_options: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    # The shared inventory the run used (no foreign key: history outlives it) and the SHA-256
    # (hex) of its content as read when the run started.
    inventory_id: int | None = Field(default=None)
    inventory_sha256: str | None = Field(default=None, max_length=64)
    # Indexed by ix_executions_user_queued (its first column).
    triggered_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    # The username at the time of the run: history stays readable after the user is deleted.
    triggered_by_name: str | None = Field(default=None, max_length=64)
    # How the run started; `trigger_ref` names the system actor (e.g. "schedule:3") that started
    # it on behalf of `triggered_by`, None when that user started it themselves.
    trigger: str = Field(default=Trigger.api.value, max_length=16)
    trigger_ref: str | None = Field(default=None, max_length=128)
    runner: str | None = Field(default=None, max_length=16)
    # The run this one repeats (Run again: `services.runs.rerun`); no foreign key: history
    # outlives the runs retention deletes.
    rerun_of: int | None = Field(default=None)
    # A test run of unsaved editor content (services/draft_runs.py): the content that ran is in
    # `ExecutionDraft`; `script_version` is the saved version the edit started from.
    draft: bool = Field(default=False)
    # The worker (`workers.id`) that claimed the run; None while queued.
    worker_id: str | None = Field(default=None, max_length=64, index=True)
    image: str | None = Field(default=None, max_length=255)
    exit_code: int | None = None
    error_message: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    # What the script wrote, in bytes, stored or not (past `OPSCRAFT_MAX_OUTPUT_BYTES` it is
    # counted, not stored).
    output_bytes: int = Field(default=0, sa_column=Column(BYTE_COUNT, nullable=False))
    output_truncated: bool = Field(default=False)
    # What its stored output takes, in bytes of UTF-8 (set with the final state; 0 once retention
    # removed it): what output retention's size cap counts (services/retention.py).
    output_stored_bytes: int = Field(default=0, sa_column=Column(BYTE_COUNT, nullable=False))
    # When output retention (services/retention.py) deleted the stored output; None while kept.
    output_removed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    cancel_requested: bool = Field(default=False)
    # Who asked to cancel the run (set with `cancel_requested`; a run that ended by itself as the
    # cancel arrived keeps its own status): their id (no foreign key: ids are never reused, and
    # the history outlives the account) and their username at the time.
    cancelled_by: int | None = Field(default=None)
    cancelled_by_name: str | None = Field(default=None, max_length=64)
    # The database's clock (`db.clock`), as `started_at`/`finished_at` (written by the worker):
    # a web process whose clock was off stamped runs queued after they had started.
    queued_at: datetime = Field(default_factory=clock.now, sa_type=UTCDateTime, index=True)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ExecutionDraft(SQLModel, table=True):
    """The exact content a test run (`Execution.draft`) ran, normalised as a save would store it;
    kept apart so listing executions never reads it."""

    __tablename__ = "execution_drafts"

    execution_id: int = Field(foreign_key="executions.id", primary_key=True, ondelete="CASCADE")
    content: str = Field(sa_column=Column(Text, nullable=False))


def _content_chars(context: Any) -> int:
    """`ExecutionLog.chars` of a row being inserted: its content's length in characters."""
    return len(context.get_current_parameters()["content"])


class ExecutionLog(SQLModel, table=True):
    """A batch of consecutive output from one stream; `seq` orders batches within an execution."""

    __tablename__ = "execution_logs"
    __table_args__ = (
        Index("ix_execution_logs_exec_seq", "execution_id", "seq", unique=True),
        # Covers the size part of a page of output (`execution.log_pages`): the page's bound is
        # found from this index alone, without reading the contents it skips.
        Index("ix_execution_logs_page", "execution_id", "seq", "chars", "stream"),
    )

    id: int | None = Field(default=None, primary_key=True)
    execution_id: int = Field(foreign_key="executions.id", ondelete="CASCADE")
    seq: int
    stream: str = Field(max_length=8)
    content: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # `content`'s length in characters (Python's `len`, SQL's `char_length`), set on every insert
    # through SQLAlchemy (ORM or Core) from the content; a raw SQL writer must set it (the server
    # default 0 is for the rows migration 0033 back-filled).
    chars: int = Field(
        sa_column=Column(Integer, nullable=False, default=_content_chars, server_default=text("0"))
    )


class ExecutionTally(SQLModel, table=True):
    """How many finished runs with `id <= upto_id` ended in each status: the dashboard adds the
    runs after `upto_id` to it instead of counting a million rows (services/history_counts.py)."""

    __tablename__ = "execution_tallies"

    status: str = Field(primary_key=True, max_length=32)
    count: int
    upto_id: int
    computed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class RetiredExecutions(SQLModel, table=True):
    """What the runs deleted by retention (services/retention.py) had added to the counters of
    `/metrics`, per final status and script type: the counters are sums over `executions`, and
    without this part they went down when rows were deleted, which Prometheus reads as a reset
    (`rate()` and `increase()` then count the whole remaining total again)."""

    __tablename__ = "retired_executions"

    status: str = Field(primary_key=True, max_length=32)
    script_type: str = Field(primary_key=True, max_length=16)
    count: int = Field(default=0)
    output_bytes: int = Field(default=0, sa_column=Column(BigInteger, nullable=False))
    # Of the runs that had started: how many, their run time in seconds, and how many ran at most
    # each bound of `services.metrics.DURATION_BUCKETS` (cumulative, as the histogram's buckets).
    duration_count: int = Field(default=0)
    duration_sum: float = Field(default=0.0)
    duration_buckets: list[int] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class ExecutionHostSummary(SQLModel, table=True):
    """A finished Ansible run's per-host summary, read from its PLAY RECAP by the worker
    (`execution.ansible_recap.summary`) and written with its final state; kept apart so listing
    executions never reads it. Runs of other types, and Ansible runs that ended before this
    table existed, have none."""

    __tablename__ = "execution_host_summaries"

    execution_id: int = Field(foreign_key="executions.id", primary_key=True, ondelete="CASCADE")
    # [{"host", "ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored"}], at
    # most `ansible_recap.MAX_HOSTS`: failed and unreachable hosts first, then in recap order.
    hosts: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # How many hosts the recap had (more than `hosts` lists when it was capped).
    host_count: int = Field(default=0)
    # Each count summed over every host of the recap.
    totals: dict[str, int] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Why there is no recap (the run was stopped before it, or it could not be trusted); None when read.
    note: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class ExecutionHost(SQLModel, table=True):
    """One host of a finished Ansible run's per-host summary, as a row the history can filter
    on (`GET /api/v1/executions?host=...&host_status=...`): the hosts its
    `ExecutionHostSummary` lists (at most `ansible_recap.MAX_HOSTS`), written with it, with the
    run's `queued_at` copied so that a host's runs are read newest first from one index."""

    __tablename__ = "execution_hosts"
    __table_args__ = (
        # A host's runs newest first (the history's order and its cursor's bound: history_cursor),
        # covering the counts `host_status` reads: a status's page and count read this index alone.
        Index(
            "ix_execution_hosts_host_queued",
            *("host", "queued_at", "execution_id", "failed", "unreachable", "changed"),
        ),
    )

    execution_id: int = Field(foreign_key="executions.id", primary_key=True, ondelete="CASCADE")
    # The name as the summary stores it (cut to `ansible_recap.MAX_HOST_CHARS`).
    host: str = Field(primary_key=True, max_length=255)
    queued_at: datetime = Field(sa_type=UTCDateTime)
    # The host's counts of the PLAY RECAP that the filter's statuses read (`host_status`).
    changed: int = Field(default=0)
    unreachable: int = Field(default=0)
    failed: int = Field(default=0)


class IdempotencyKey(SQLModel, table=True):
    """A request that started a run under an `Idempotency-Key` header (services/idempotency.py):
    per user, the key names one request (its `fingerprint`: method, path and body) and, once the
    run is written, the run it started (`execution_id`), which a retry with the same key gets
    back instead of a second run. A row without `execution_id` is a request still starting its
    run. Swept once `expires_at` has passed (`retention.run_upkeep`); deleted with its run or its
    user."""

    __tablename__ = "idempotency_keys"

    user_id: int = Field(foreign_key="users.id", primary_key=True, ondelete="CASCADE")
    key: str = Field(primary_key=True, max_length=255)
    # hex SHA-256 of the request's method, path and canonical JSON body
    fingerprint: str = Field(max_length=64)
    execution_id: int | None = Field(default=None, foreign_key="executions.id", ondelete="CASCADE")
    created_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
