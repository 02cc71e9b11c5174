"""webhook_triggers.signature_scheme: the form of a signed webhook call's proof, `opscraft`
(`X-OpsCraft-Timestamp` and `X-OpsCraft-Signature`, the only form before), `github`
(`X-Hub-Signature-256`) or `gitlab` (`X-Gitlab-Token`): services/webhooks.py. Webhooks saved
before keep OpsCraft's form.

Revision ID: 0042
Revises: 0041
Create Date: 2026-12-06 01:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0042"
down_revision: str | None = "0041"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "webhook_triggers",
        sa.Column("signature_scheme", sa.String(length=16), nullable=False, server_default="opscraft"),
    )


def downgrade() -> None:
    op.drop_column("webhook_triggers", "signature_scheme")
