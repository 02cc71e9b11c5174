"""Automation tables: personal API tokens, notifications (channels, rules, delivery log),
schedules and their fires, inbound webhook triggers, approvals."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Column, Index, LargeBinary, String, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from opscraft.db.types import StoredEnum, UTCDateTime, utcnow


class ApiToken(SQLModel, table=True):
    """A personal access token: only its SHA-256 is stored; `prefix` identifies it in lists."""

    __tablename__ = "api_tokens"
    # A user's tokens in use have names unique ignoring case (services/names.py).
    __table_args__ = (
        Index(
            "ux_api_tokens_user_name_key",
            "user_id",
            "name_key",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=64)
    # `names.name_key(name)`, set by services/names.py's mapper hooks, compared by the unique index
    # (no length limit: NFKC may lengthen a name).
    name_key: str = Field(default="", sa_column_kwargs={"server_default": ""})
    prefix: str = Field(max_length=16)
    token_hash: str = Field(max_length=64, unique=True, index=True)
    role: str = Field(max_length=16)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_used_ip: str | None = Field(default=None, max_length=64)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ChannelKind(StrEnum):
    """How a notification channel delivers: an HTTP webhook POST, a Slack incoming webhook, or email over
    SMTP.
    """

    webhook = "webhook"
    slack = "slack"
    email = "email"


class NotificationChannel(SQLModel, table=True):
    """Where notifications go. `config` holds no credential: those are vault secrets (`secret_id`,
    ON DELETE RESTRICT: a secret a channel sends with cannot be deleted, migration 0018), and a
    webhook channel's URL, which often carries a token, is sealed by the vault in the `url_*`
    columns with only its masked form in `config.url` (migration 0031)."""

    __tablename__ = "notification_channels"
    # Channels have names unique ignoring case (services/names.py).
    __table_args__ = (Index("ux_notification_channels_name_key", "name_key", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64)
    # `names.name_key(name)`, set by services/names.py's mapper hooks, compared by the unique index
    # (no length limit: NFKC may lengthen a name).
    name_key: str = Field(default="", sa_column_kwargs={"server_default": ""})
    kind: ChannelKind = Field(max_length=16, sa_type=StoredEnum(ChannelKind))
    config: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    secret_id: int | None = Field(default=None, foreign_key="secrets.id", ondelete="RESTRICT")
    enabled: bool = Field(default=True)
    created_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # A webhook channel's URL sealed by the vault (services/keyring.seal_channel_url); NULL for
    # the other kinds, and for a row from before 0031 until the next start seals it.
    url_ciphertext: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    url_salt: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    url_nonce: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    url_key_version: int | None = Field(default=None)


class NotificationRule(SQLModel, table=True):
    """Send run events of one script (or of every script, `script_id` NULL) to a channel."""

    __tablename__ = "notification_rules"

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="notification_channels.id", index=True, ondelete="CASCADE")
    script_id: int | None = Field(default=None, foreign_key="scripts.id", index=True, ondelete="CASCADE")
    events: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    enabled: bool = Field(default=True)
    created_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DeliveryStatus(StrEnum):
    """Lifecycle of a notification delivery: pending (waiting for its next attempt), sending (claimed by one
    process), delivered, or failed (attempts used up).
    """

    pending = "pending"
    sending = "sending"
    delivered = "delivered"
    failed = "failed"


class NotificationDelivery(SQLModel, table=True):
    """One message for one channel: the delivery log and the retry queue at once.

    `event_key` names what happened (e.g. `execution:42:failure`); the unique pair
    (channel, event_key) makes a re-delivered run event produce no second message.
    """

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("channel_id", "event_key", name="uq_notification_deliveries_channel_event"),
        Index("ix_notification_deliveries_due", "status", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    channel_id: int = Field(foreign_key="notification_channels.id", index=True, ondelete="CASCADE")
    event_key: str = Field(max_length=128)
    event: str = Field(max_length=32)
    execution_id: int | None = Field(default=None, foreign_key="executions.id", ondelete="SET NULL")
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: DeliveryStatus = Field(
        default=DeliveryStatus.pending, max_length=16, sa_type=StoredEnum(DeliveryStatus)
    )
    attempts: int = Field(default=0)
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class MissedPolicy(StrEnum):
    """What a schedule does with fire times missed while the server was down: run once for all of them, or
    skip them.
    """

    run_once = "run_once"
    skip = "skip"


class OverlapPolicy(StrEnum):
    """What a schedule does when it fires while its previous run still runs: skip this fire, queue a run, or
    allow both to run.
    """

    skip = "skip"
    queue = "queue"
    allow = "allow"


class SignatureScheme(StrEnum):
    """How a signed webhook's calls prove they come from the key's holder (services/webhooks.py):
    OpsCraft's timestamped HMAC, GitHub's `X-Hub-Signature-256` (an HMAC of the body alone), or
    GitLab's `X-Gitlab-Token` (the key itself)."""

    opscraft = "opscraft"
    github = "github"
    gitlab = "gitlab"


class Schedule(SQLModel, table=True):
    """Run a script on a 5-field cron expression in a time zone, on behalf of `owner_id`.

    `next_fire_at` (UTC) is the next fire time not yet claimed; the scheduler claims a fire by
    advancing it with a conditional update and inserting the (schedule, fire time) row.
    """

    __tablename__ = "schedules"
    __table_args__ = (
        Index("ix_schedules_due", "enabled", "next_fire_at"),
        # A script's schedules have names unique ignoring case (services/names.py).
        Index("ux_schedules_script_name_key", "script_id", "name_key", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    script_id: int = Field(foreign_key="scripts.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=64)
    # `names.name_key(name)`, set by services/names.py's mapper hooks, compared by the unique index
    # (no length limit: NFKC may lengthen a name).
    name_key: str = Field(default="", sa_column_kwargs={"server_default": ""})
    cron: str = Field(max_length=128)
    timezone: str = Field(max_length=64)
    parameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    enabled: bool = Field(default=True)
    owner_id: int | None = Field(default=None, foreign_key="users.id", index=True, ondelete="SET NULL")
    missed_policy: MissedPolicy = Field(
        default=MissedPolicy.run_once, max_length=16, sa_type=StoredEnum(MissedPolicy)
    )
    overlap_policy: OverlapPolicy = Field(
        default=OverlapPolicy.skip, max_length=16, sa_type=StoredEnum(OverlapPolicy)
    )
    # The Terraform action and workspace of the runs it starts (migration 0034): for a Terraform
    # script `plan` / `default` unless another was chosen, NULL for other types
    # (services/executions.automation_terraform).
    terraform_action: str | None = Field(default=None, max_length=16)
    terraform_workspace: str | None = Field(default=None, max_length=64)
    # The Ansible run options of the runs it starts (migration 0035): normalized as a manual
    # run's (`ansible_options.normalize`), NULL for none and for other script types
    # (services/executions.automation_run_options).
    run_options: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    next_fire_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_fire_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_execution_id: int | None = Field(default=None, foreign_key="executions.id", ondelete="SET NULL")
    last_outcome: str | None = Field(default=None, max_length=32)
    # Why the last fire started nothing (`schedule_fires.message` of that fire), None when it started
    last_message: str | None = Field(default=None, max_length=500)
    paused_reason: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ScheduleFire(SQLModel, table=True):
    """One fire time of one schedule: the primary key is the claim (at most one row, ever).

    `outcome`: started, waiting (overlap policy queue), skipped_overlap, skipped_missed,
    skipped_paused (a waiting fire of a schedule paused meanwhile), paused_owner or error.
    """

    __tablename__ = "schedule_fires"

    schedule_id: int = Field(foreign_key="schedules.id", primary_key=True, ondelete="CASCADE")
    fire_time: datetime = Field(sa_type=UTCDateTime, primary_key=True)
    claimed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    claimed_by: str = Field(max_length=128)
    outcome: str = Field(max_length=32)
    execution_id: int | None = Field(default=None, foreign_key="executions.id", ondelete="SET NULL")
    message: str | None = Field(default=None, max_length=500)


class WebhookTrigger(SQLModel, table=True):
    """An inbound webhook that starts a script: `/api/v1/hooks/{id}/{token}` (token stored hashed).

    `secret_id` (optional) is the vault secret used as the HMAC-SHA256 signing key (ON DELETE
    RESTRICT: deleting it would turn signing off, migration 0018); `mapping` maps parameter names
    to RFC 6901 JSON pointers into the request's JSON body.
    """

    __tablename__ = "webhook_triggers"
    # A script's webhooks have names unique ignoring case (services/names.py).
    __table_args__ = (Index("ux_webhook_triggers_script_name_key", "script_id", "name_key", unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    script_id: int = Field(foreign_key="scripts.id", index=True, ondelete="CASCADE")
    name: str = Field(max_length=64)
    # `names.name_key(name)`, set by services/names.py's mapper hooks, compared by the unique index
    # (no length limit: NFKC may lengthen a name).
    name_key: str = Field(default="", sa_column_kwargs={"server_default": ""})
    token_hash: str = Field(max_length=64)
    prefix: str = Field(max_length=16)
    secret_id: int | None = Field(default=None, foreign_key="secrets.id", ondelete="RESTRICT")
    # The form of a signed call's proof (`SignatureScheme`, migration 0042): plain text, read
    # through `db.stored_shapes` (text none of its values reads as `opscraft`). The database's
    # default only, so that an insert naming the columns of an earlier revision leaves it out.
    signature_scheme: str = Field(
        default=SignatureScheme.opscraft.value,
        sa_column=Column(String(16), nullable=False, server_default=SignatureScheme.opscraft.value),
    )
    mapping: dict[str, str] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    parameters: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    enabled: bool = Field(default=True)
    owner_id: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    # The Terraform action and workspace of the runs it starts (migration 0034): for a Terraform
    # script `plan` / `default` unless another was chosen, NULL for other types
    # (services/executions.automation_terraform).
    terraform_action: str | None = Field(default=None, max_length=16)
    terraform_workspace: str | None = Field(default=None, max_length=64)
    # The Ansible run options of the runs it starts (migration 0035): normalized as a manual
    # run's (`ansible_options.normalize`), NULL for none and for other script types
    # (services/executions.automation_run_options).
    run_options: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    last_called_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class WebhookSignature(SQLModel, table=True):
    """A signed call a webhook accepted (migration 0019): the primary key refuses the same
    signature a second time, so a call captured on the way cannot be replayed while its timestamp
    is still inside the signature window. `signed_at` is the call's own timestamp; rows older than
    twice the window can never match again and are removed by the webhook's next signed call."""

    __tablename__ = "webhook_signatures"

    webhook_id: int = Field(foreign_key="webhook_triggers.id", primary_key=True, ondelete="CASCADE")
    # hex HMAC-SHA256 of "<timestamp>." + body: already a digest, the key never in it
    signature: str = Field(max_length=64, primary_key=True)
    signed_at: datetime = Field(sa_type=UTCDateTime)


class ApprovalPolicy(SQLModel, table=True):
    """A script whose runs need `required` approvals before they queue (expiring after
    `expires_after_hours`)."""

    __tablename__ = "approval_policies"

    script_id: int = Field(foreign_key="scripts.id", primary_key=True, ondelete="CASCADE")
    required: int = Field(default=1)
    expires_after_hours: int = Field(default=24)
    updated_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ApprovalRequest(SQLModel, table=True):
    """A run waiting for approval: how many it needs and until when."""

    __tablename__ = "approval_requests"

    execution_id: int = Field(foreign_key="executions.id", primary_key=True, ondelete="CASCADE")
    required: int
    expires_at: datetime = Field(sa_type=UTCDateTime, index=True)
    # When it got its `outcome`: approved, rejected, expired, or cancelled (the run, while waiting).
    decided_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    outcome: str | None = Field(default=None, max_length=16)


class ApprovalDecision(SQLModel, table=True):
    """One person's approve or reject of a run, with their comment (the decision trail)."""

    __tablename__ = "approval_decisions"
    __table_args__ = (
        UniqueConstraint("execution_id", "user_id", name="uq_approval_decisions_execution_user"),
    )

    id: int | None = Field(default=None, primary_key=True)
    execution_id: int = Field(foreign_key="executions.id", index=True, ondelete="CASCADE")
    user_id: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    username: str = Field(max_length=64)
    decision: str = Field(max_length=16)
    comment: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
