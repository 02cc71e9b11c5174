"""the metrics' counters keep the runs retention deletes: `retired_executions` (per final status
and script type: runs, output bytes, run time histogram); before, `/metrics` counters summed the
remaining rows only and went down when retention deleted some

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-02 12:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "retired_executions",
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("script_type", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("output_bytes", sa.BigInteger(), nullable=False),
        sa.Column("duration_count", sa.Integer(), nullable=False),
        sa.Column("duration_sum", sa.Float(), nullable=False),
        sa.Column("duration_buckets", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("status", "script_type"),
    )


def downgrade() -> None:
    op.drop_table("retired_executions")
