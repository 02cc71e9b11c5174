"""retention: when output retention removed a run's output, the dashboard's status tallies, and
the indexes that keep the history's filters and the dashboard fast at a million runs

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import opscraft.db.types

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEPT = sa.text("output_removed_at IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("output_removed_at", opscraft.db.types.UTCDateTime(), nullable=True))
    op.create_index("ix_executions_user_queued", "executions", ["triggered_by", "queued_at"])
    # The user filter's index starts with triggered_by: it serves the foreign key's lookups too.
    op.drop_index("ix_executions_triggered_by", table_name="executions")
    op.create_index("ix_executions_script_status_queued", "executions", ["script_id", "status", "queued_at"])
    op.create_index("ix_executions_trigger_queued", "executions", ["trigger", "queued_at"])
    op.create_index("ix_executions_finished_status", "executions", ["finished_at", "status"])
    op.create_index(
        "ix_executions_output_kept",
        "executions",
        ["finished_at"],
        sqlite_where=KEPT,
        postgresql_where=KEPT,
    )
    op.create_table(
        "execution_tallies",
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("upto_id", sa.Integer(), nullable=False),
        sa.Column("computed_at", opscraft.db.types.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("status"),
    )


def downgrade() -> None:
    op.drop_table("execution_tallies")
    for name in (
        "ix_executions_output_kept",
        "ix_executions_finished_status",
        "ix_executions_trigger_queued",
        "ix_executions_script_status_queued",
        "ix_executions_user_queued",
    ):
        op.drop_index(name, table_name="executions")
    op.create_index("ix_executions_triggered_by", "executions", ["triggered_by"])
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_column("output_removed_at")
