"""a worker declared lost is told from one that stopped cleanly: `workers.lost`; both had only
`stopped_at`, so the Workers panel and `GET /api/v1/workers` showed a killed worker as "stopped"

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-02 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("lost", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("lost")
