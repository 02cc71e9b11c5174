"""terraform plans: the saved (encrypted) plan of each plan run, its summary, and its apply run

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import opscraft.db.types

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "terraform_plans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("execution_id", sa.Integer(), nullable=False),
        sa.Column("script_id", sa.Integer(), nullable=False),
        sa.Column("workspace", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("script_version", sa.Integer(), nullable=False),
        sa.Column("prior_serial", sa.Integer(), nullable=False),
        sa.Column("prior_lineage", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("to_add", sa.Integer(), nullable=False),
        sa.Column("to_change", sa.Integer(), nullable=False),
        sa.Column("to_destroy", sa.Integer(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("apply_execution_id", sa.Integer(), nullable=True),
        sa.Column("created_at", opscraft.db.types.UTCDateTime(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("salt", sa.LargeBinary(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["execution_id"], ["executions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["script_id"], ["scripts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["apply_execution_id"], ["executions.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ux_terraform_plans_execution", "terraform_plans", ["execution_id"], unique=True)
    op.create_index(
        op.f("ix_terraform_plans_apply_execution_id"), "terraform_plans", ["apply_execution_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_terraform_plans_apply_execution_id"), table_name="terraform_plans")
    op.drop_index("ux_terraform_plans_execution", table_name="terraform_plans")
    op.drop_table("terraform_plans")
