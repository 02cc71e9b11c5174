"""browser_sign_ins: one row per password sign-in of a browser, which its session storage names and
a sign-out ends in the database (services/auth.py). Nothing to carry over: a browser session
from before names no sign-in and ends at its next request ("log in again"). The downgrade drops
the table (browser sessions then hold on their session storage alone, as before).

Revision ID: 0046
Revises: 0045
Create Date: 2026-12-07 18:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import opscraft.db.types

revision: str = "0046"
down_revision: str | None = "0045"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "browser_sign_ins",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("signed_in_at", opscraft.db.types.UTCDateTime(), nullable=False),
        sa.Column("token_version", sa.Integer(), nullable=False),
        sa.Column("account_key", sa.String(length=16), nullable=False),
        sa.Column("ended_at", opscraft.db.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("browser_sign_ins", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_browser_sign_ins_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_table("browser_sign_ins")
