"""a cancelled run names who cancelled it: `executions.cancelled_by` and `cancelled_by_name`;
before, the run said "cancelled by a user" and only the audit trail had the name. The approval
request of a run cancelled while it waited gets the outcome `cancelled` (it kept none), and
`approval_requests.decided_at` an index (the Approvals page lists the requests that ended last)

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-02 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain columns, added in place on SQLite too (no table rebuild of a long history).
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("cancelled_by", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("cancelled_by_name", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )
    with op.batch_alter_table("approval_requests") as batch:
        batch.create_index("ix_approval_requests_decided_at", ["decided_at"], unique=False)
    op.execute(
        "UPDATE approval_requests SET outcome = 'cancelled', decided_at = (SELECT finished_at FROM "
        "executions WHERE executions.id = approval_requests.execution_id) WHERE outcome IS NULL AND "
        "execution_id IN (SELECT id FROM executions WHERE status = 'cancelled')"
    )


def downgrade() -> None:
    with op.batch_alter_table("approval_requests") as batch:
        batch.drop_index("ix_approval_requests_decided_at")
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("cancelled_by_name")
        batch.drop_column("cancelled_by")
