"""idempotency_keys: the `Idempotency-Key` of each request that started a run, per user, with the
run it started (services/idempotency.py), swept once expired. Nothing to carry over. The
downgrade drops the table (a retry then starts a second run, as before).

Revision ID: 0047
Revises: 0046
Create Date: 2026-12-08 01:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import opscraft.db.types

revision: str = "0047"
down_revision: str | None = "0046"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "idempotency_keys",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("execution_id", sa.Integer(), nullable=True),
        sa.Column("created_at", opscraft.db.types.UTCDateTime(), nullable=False),
        sa.Column("expires_at", opscraft.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["execution_id"], ["executions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("user_id", "key"),
    )
    with op.batch_alter_table("idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_idempotency_keys_expires_at"), ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_table("idempotency_keys")
