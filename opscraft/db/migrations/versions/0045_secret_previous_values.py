"""secret_previous_values: the value a webhook's signing secret had before its last new value,
encrypted as every secret's value, kept until `accepted_until` so that callers still signing with
it are accepted while they are switched to the new one (services/secrets.py, *rotation window*).
Nothing to carry over: no secret had a previous value before. The downgrade drops the table (and
with it any previous value still accepted: only the current values sign from then on).

Revision ID: 0045
Revises: 0044
Create Date: 2026-12-07 09:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import opscraft.db.types

revision: str = "0045"
down_revision: str | None = "0044"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "secret_previous_values",
        sa.Column("secret_id", sa.Integer(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("salt", sa.LargeBinary(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.Column("replaced_at", opscraft.db.types.UTCDateTime(), nullable=False),
        sa.Column("accepted_until", opscraft.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["secret_id"], ["secrets.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("secret_id"),
    )
    with op.batch_alter_table("secret_previous_values", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_secret_previous_values_accepted_until"), ["accepted_until"], unique=False
        )


def downgrade() -> None:
    op.drop_table("secret_previous_values")
