"""Words for people in place of the stored values a select offers (`run_once`, `starttls`...).

Each map is value -> label, in the order the select lists them; the select still sends the
value. The meanings are docs/automation.md's (schedules, notification channels and rules), docs/scripts.md's
(parameter types) and docs/api.md's (roles).
"""

from __future__ import annotations

from opscraft.db.models import Role
from opscraft.db.models.automation import ChannelKind, MissedPolicy, OverlapPolicy, SignatureScheme
from opscraft.services.parameters import ParamType

MISSED_POLICY = {
    MissedPolicy.run_once.value: "Run once, for the latest missed time",
    MissedPolicy.skip.value: "Skip the missed runs",
}
SIGNATURE_SCHEME = {
    SignatureScheme.opscraft.value: "OpsCraft (X-OpsCraft-Timestamp and X-OpsCraft-Signature)",
    SignatureScheme.github.value: "GitHub (X-Hub-Signature-256: the secret is the webhook's Secret)",
    SignatureScheme.gitlab.value: "GitLab (X-Gitlab-Token: the secret is the webhook's Secret token)",
}
OVERLAP_POLICY = {
    OverlapPolicy.skip.value: "Skip this run",
    OverlapPolicy.queue.value: "Queue it until the previous run ends",
    OverlapPolicy.allow.value: "Start it anyway",
}
CHANNEL_KIND = {
    ChannelKind.webhook.value: "Webhook (HTTP POST of JSON)",
    ChannelKind.slack.value: "Slack",
    ChannelKind.email.value: "Email (SMTP)",
}
PARAM_TYPE = {
    ParamType.string.value: "Text",
    ParamType.integer.value: "Integer",
    ParamType.number.value: "Number",
    ParamType.boolean.value: "True/false",
    ParamType.choice.value: "Choice",
}
ROLE = {
    Role.viewer.value: "Viewer (views and runs scripts)",
    Role.operator.value: "Operator (also edits scripts and secrets)",
    Role.admin.value: "Admin (also users and settings)",
}
SMTP_SECURITY = {"none": "None (plain text)", "starttls": "STARTTLS", "ssl": "SSL/TLS"}
NOTIFY_EVENTS = {
    "failure": "Failure (failed, timed out, error)",
    "success": "Success",
    "recovery": "Recovery (success after a failure)",
    "approval_pending": "Approval pending",
}
