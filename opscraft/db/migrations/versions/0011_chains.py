"""chains: "then run" links between scripts and the record of each link's firing

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-30 14:50:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import opscraft.db.types

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chain_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("script_id", sa.Integer(), nullable=False),
        sa.Column("target_script_id", sa.Integer(), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("mapping", sa.JSON(), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("owner_id", sa.Integer(), nullable=True),
        sa.Column("created_at", opscraft.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", opscraft.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["owner_id"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["script_id"], ["scripts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["target_script_id"], ["scripts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "script_id", "target_script_id", "outcome", name="uq_chain_links_source_target_outcome"
        ),
    )
    with op.batch_alter_table("chain_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chain_links_script_id"), ["script_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_chain_links_target_script_id"), ["target_script_id"], unique=False
        )

    op.create_table(
        "chain_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("link_id", sa.Integer(), nullable=True),
        sa.Column("source_execution_id", sa.Integer(), nullable=False),
        sa.Column("target_script_id", sa.Integer(), nullable=False),
        sa.Column("execution_id", sa.Integer(), nullable=True),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("parameters", sa.JSON(), nullable=False),
        sa.Column("depth", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", opscraft.db.types.UTCDateTime(), nullable=False),
        sa.Column("started_at", opscraft.db.types.UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["execution_id"], ["executions.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["link_id"], ["chain_links.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["source_execution_id"], ["executions.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["target_script_id"], ["scripts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("link_id", "source_execution_id", name="uq_chain_runs_link_source"),
    )
    with op.batch_alter_table("chain_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_chain_runs_execution_id"), ["execution_id"], unique=True)
        batch_op.create_index(batch_op.f("ix_chain_runs_link_id"), ["link_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_chain_runs_source_execution_id"), ["source_execution_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_chain_runs_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("chain_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chain_runs_status"))
        batch_op.drop_index(batch_op.f("ix_chain_runs_source_execution_id"))
        batch_op.drop_index(batch_op.f("ix_chain_runs_link_id"))
        batch_op.drop_index(batch_op.f("ix_chain_runs_execution_id"))
    op.drop_table("chain_runs")
    with op.batch_alter_table("chain_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_chain_links_target_script_id"))
        batch_op.drop_index(batch_op.f("ix_chain_links_script_id"))
    op.drop_table("chain_links")
