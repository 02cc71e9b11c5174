"""All tables; importing this package registers them on `SQLModel.metadata`."""

from sqlmodel import SQLModel

from opscraft.db.models.audit import AuditEvent
from opscraft.db.models.automation import (
    ApiToken,
    ApprovalDecision,
    ApprovalPolicy,
    ApprovalRequest,
    NotificationChannel,
    NotificationDelivery,
    NotificationRule,
    Schedule,
    ScheduleFire,
    WebhookSignature,
    WebhookTrigger,
)
from opscraft.db.models.chains import ChainLink, ChainRun
from opscraft.db.models.executions import (
    Execution,
    ExecutionDraft,
    ExecutionHostSummary,
    ExecutionLog,
    ExecutionTally,
    RetiredExecutions,
)
from opscraft.db.models.inventories import Inventory, InventoryVersion
from opscraft.db.models.scripts import Script, ScriptTag, ScriptVersion
from opscraft.db.models.secrets import ScriptSecret, Secret
from opscraft.db.models.settings import AppSetting
from opscraft.db.models.terraform import TerraformPlan, TerraformState, TerraformStateVersion
from opscraft.db.models.users import RefreshToken, Role, User
from opscraft.db.models.workers import RegisteredWorker, RunEvent, RunEventDelivery

__all__ = [
    "ApiToken",
    "AppSetting",
    "ApprovalDecision",
    "ApprovalPolicy",
    "ApprovalRequest",
    "AuditEvent",
    "ChainLink",
    "ChainRun",
    "Execution",
    "ExecutionDraft",
    "ExecutionHostSummary",
    "ExecutionLog",
    "ExecutionTally",
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
