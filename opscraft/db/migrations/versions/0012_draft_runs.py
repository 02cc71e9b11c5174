"""draft runs: test runs of unsaved editor content, marked on the execution, their content kept

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-30 14:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("draft", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        "execution_drafts",
        sa.Column("execution_id", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["execution_id"], ["executions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("execution_id"),
    )


def downgrade() -> None:
    op.drop_table("execution_drafts")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_column("draft")
