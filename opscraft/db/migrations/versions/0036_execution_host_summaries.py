"""execution_host_summaries: a finished Ansible run's per-host summary (ok, changed, unreachable,
failed, skipped, rescued, ignored per host), read from its PLAY RECAP by the worker and written
with its final state. A table of its own, one row per run, so listing executions never reads it;
runs from before have none.

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-04 15:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0036"
down_revision: str | None = "0035"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "execution_host_summaries",
        sa.Column("execution_id", sa.Integer(), nullable=False),
        sa.Column("hosts", sa.JSON(), nullable=False),
        sa.Column("host_count", sa.Integer(), nullable=False),
        sa.Column("totals", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["execution_id"], ["executions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("execution_id"),
    )


def downgrade() -> None:
    op.drop_table("execution_host_summaries")
