"""All tables; importing this package registers them on `SQLModel.metadata`."""

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
    WebhookTrigger,
)
from opscraft.db.models.chains import ChainLink, ChainRun
from opscraft.db.models.executions import Execution, ExecutionDraft, ExecutionLog, ExecutionTally
from opscraft.db.models.inventories import Inventory
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
    "ExecutionLog",
    "ExecutionTally",
    "Inventory",
    "NotificationChannel",
    "NotificationDelivery",
    "NotificationRule",
    "RefreshToken",
    "RegisteredWorker",
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
    "WebhookTrigger",
]
