"""a refresh token names its family (the chain of rotations from one password sign-in,
`family_id`: the first token's jti), when that sign-in was (`signed_in_at`), and whether it was
rotated (`rotated_at`): a rotated token presented again is a stolen copy, which ends its whole
family (RFC 6749 10.4), and no family outlives `OPSCRAFT_SESSION_MAX_AGE_DAYS`. Rows from before
are each their own family, signed in when they were issued.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-03 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import opscraft.db.types

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.add_column(sa.Column("family_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch.add_column(sa.Column("signed_in_at", opscraft.db.types.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("rotated_at", opscraft.db.types.UTCDateTime(), nullable=True))
    op.execute("UPDATE refresh_tokens SET family_id = jti, signed_in_at = created_at")
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.alter_column(
            "family_id", existing_type=sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False
        )
        batch.alter_column("signed_in_at", existing_type=opscraft.db.types.UTCDateTime(), nullable=False)
        batch.create_index("ix_refresh_tokens_family_id", ["family_id"])


def downgrade() -> None:
    with op.batch_alter_table("refresh_tokens") as batch:
        batch.drop_index("ix_refresh_tokens_family_id")
        batch.drop_column("rotated_at")
        batch.drop_column("signed_in_at")
        batch.drop_column("family_id")
