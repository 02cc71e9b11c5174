"""signed webhook calls are single-use: `webhook_signatures` keeps each accepted signature
(primary key webhook and signature) while its timestamp could still pass the window, so the same
signed call sent again is refused instead of starting the script again

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-01 14:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import opscraft.db.types

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_signatures",
        sa.Column("webhook_id", sa.Integer(), nullable=False),
        sa.Column("signature", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("signed_at", opscraft.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["webhook_id"], ["webhook_triggers.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("webhook_id", "signature"),
    )


def downgrade() -> None:
    op.drop_table("webhook_signatures")
