"""a run started by Run again names the run it repeats: `executions.rerun_of` (no foreign key:
history outlives the runs retention deletes); before, nothing told a rerun from a fresh run

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-03 05:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # A plain column, added in place on SQLite too (no table rebuild of a long history).
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("rerun_of", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("rerun_of")
