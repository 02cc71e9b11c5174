"""All tables; importing this package registers them on `SQLModel.metadata`."""

from sqlmodel import SQLModel

from opscraft.db.models.audit import AuditEvent
from opscraft.db.models.automation import (
    ApiToken,
    ApprovalDecision,
    ApprovalPolicy,
    ApprovalRequest,
    ChannelKind,
    DeliveryStatus,
    MissedPolicy,
    NotificationChannel,
    NotificationDelivery,
    NotificationRule,
    OverlapPolicy,
    Schedule,
    ScheduleFire,
    SignatureScheme,
    WebhookSignature,
    WebhookTrigger,
)
from opscraft.db.models.chains import ChainLink, ChainOutcome, ChainRun
from opscraft.db.models.executions import (
    Execution,
    ExecutionDraft,
    ExecutionHost,
    ExecutionHostSummary,
    ExecutionLog,
    ExecutionStatus,
    ExecutionTally,
    IdempotencyKey,
    RetiredExecutions,
)
from opscraft.db.models.inventories import Inventory, InventoryVersion
from opscraft.db.models.scripts import Script, ScriptStatus, ScriptTag, ScriptType, ScriptVersion
from opscraft.db.models.secrets import ScriptSecret, Secret, SecretPreviousValue
from opscraft.db.models.settings import AppSetting
from opscraft.db.models.terraform import TerraformPlan, TerraformState, TerraformStateVersion
from opscraft.db.models.users import BrowserSignIn, RefreshToken, Role, User
from opscraft.db.models.workers import RegisteredWorker, RunEvent, RunEventDelivery
from opscraft.db.stored_shapes import OneOf, Shape, expect, expect_times

__all__ = [
    "ApiToken",
    "AppSetting",
    "ApprovalDecision",
    "ApprovalPolicy",
    "ApprovalRequest",
    "AuditEvent",
    "BrowserSignIn",
    "ChainLink",
    "ChainRun",
    "Execution",
    "ExecutionDraft",
    "ExecutionHost",
    "ExecutionHostSummary",
    "ExecutionLog",
    "ExecutionTally",
    "IdempotencyKey",
    "Inventory",
    "InventoryVersion",
    "NotificationChannel",
    "NotificationDelivery",
    "NotificationRule",
    "RefreshToken",
    "RegisteredWorker",
    "RetiredExecutions",
    "Role",
    "RunEvent",
    "RunEventDelivery",
    "Schedule",
    "ScheduleFire",
    "Script",
    "ScriptSecret",
    "ScriptTag",
    "ScriptVersion",
    "Secret",
    "SecretPreviousValue",
    "SignatureScheme",
    "TerraformPlan",
    "TerraformState",
    "TerraformStateVersion",
    "User",
    "WebhookSignature",
    "WebhookTrigger",
]


def _never_reuse_ids() -> None:
    """SQLite `AUTOINCREMENT` on every table whose primary key is a generated integer id.

    Without it SQLite gives a new row the largest id in use plus one, so deleting the newest user,
    script or secret hands its id to the next one created, and with it anything that still points
    at the number (a session, a token, audit events). With it, ids only grow (SQLite keeps the
    highest ever given in `sqlite_sequence`). PostgreSQL's sequences never reuse a value.
    Migration 0016 rebuilds the tables of an older SQLite database so."""
    for table in SQLModel.metadata.tables.values():
        if table.autoincrement_column is not None:
            table.dialect_options["sqlite"]["autoincrement"] = True


_never_reuse_ids()


def _expect_json_shapes() -> None:
    """Every JSON column whose value the code reads in one shape (db/stored_shapes.py): a row
    holding another shape (an older version's, a manual edit's) is read as the empty value, with
    its problem kept for pages, answers and the jobs that then refuse to act on it."""
    obj, obj_or_null, text_values = Shape(dict), Shape(dict, nullable=True), Shape(dict, str)
    expect(AuditEvent, details=obj)
    channel_kind = OneOf.of(ChannelKind, ChannelKind.webhook)
    expect(NotificationChannel, config=Shape(dict, shown=False), kind=channel_kind)  # a URL may hold a token
    expect(NotificationRule, events=Shape(list, str))
    expect(NotificationDelivery, payload=obj, status=OneOf.of(DeliveryStatus, DeliveryStatus.failed))
    missed, overlap = OneOf.of(MissedPolicy, MissedPolicy.skip), OneOf.of(OverlapPolicy, OverlapPolicy.skip)
    expect(Schedule, parameters=obj, run_options=obj_or_null, missed_policy=missed, overlap_policy=overlap)
    scheme = OneOf.of(SignatureScheme, SignatureScheme.opscraft)  # the form that takes the most
    expect(WebhookTrigger, mapping=text_values, parameters=obj, run_options=obj_or_null)
    expect(WebhookTrigger, signature_scheme=scheme)
    outcome = OneOf.of(ChainOutcome, ChainOutcome.success)
    expect(ChainLink, mapping=text_values, parameters=obj, run_options=obj_or_null, outcome=outcome)
    expect(ChainRun, parameters=obj)
    # A run whose status is none of today's is read as failed: it is not run, claimed or awaited.
    run_status = OneOf.of(ExecutionStatus, ExecutionStatus.failed)
    expect(Execution, parameters=obj, run_options=obj_or_null, status=run_status)
    expect(ExecutionHostSummary, hosts=Shape(list, dict), totals=Shape(dict, int))  # ansible_recap refines
    status = OneOf.of(ScriptStatus, ScriptStatus.draft)  # a draft does not run
    # No type does least: a script (version) of none of today's is read as bash, its runs refused.
    script_type = OneOf.of(ScriptType, ScriptType.bash)
    declared = Shape(list, dict)
    expect(Script, parameters=declared, tags=Shape(list, str), status=status, script_type=script_type)
    expect(User, role=OneOf.of(Role, Role.viewer))
    expect(ApiToken, role=OneOf.of(Role, Role.viewer))
    expect(ScriptVersion, parameters=declared, run_settings=obj, script_type=script_type)
    expect(TerraformState, lock_info=obj_or_null)
    expect(TerraformPlan, summary=obj)
    expect(RegisteredWorker, runners=Shape(list, str), warm_pool=obj_or_null)
    expect(RunEvent, details=obj)
    expect(RetiredExecutions, duration_buckets=Shape(list, int))
    # Every time column: one holding no time (SQLite holds any text) is read as the epoch.
    expect_times(SQLModel._sa_registry.mappers)


_expect_json_shapes()
