"""infrastructure: file secrets, Ansible inventory and SSH credential per script, run options,
Terraform state (per script and workspace, locked) and its encrypted versions

Revision ID: 0008
Revises: 0005
Create Date: 2026-11-30 12:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import opscraft.db.types

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("secrets", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "kind", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False, server_default="env"
            )
        )
    with op.batch_alter_table("scripts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("inventory", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("ssh_user", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("ssh_key_secret", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=True)
        )
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("run_options", sa.JSON(), nullable=True))
    op.create_table(
        "terraform_states",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("script_id", sa.Integer(), nullable=False),
        sa.Column("workspace", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("current_version", sa.Integer(), nullable=False),
        sa.Column("lock_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("lock_info", sa.JSON(), nullable=True),
        sa.Column("locked_by_execution", sa.Integer(), nullable=True),
        sa.Column("locked_at", opscraft.db.types.UTCDateTime(), nullable=True),
        sa.Column("created_at", opscraft.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", opscraft.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["script_id"], ["scripts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ux_terraform_states_script_workspace", "terraform_states", ["script_id", "workspace"], unique=True
    )
    op.create_table(
        "terraform_state_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("serial", sa.Integer(), nullable=True),
        sa.Column("lineage", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("execution_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("note", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("created_at", opscraft.db.types.UTCDateTime(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("salt", sa.LargeBinary(), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("key_version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["state_id"], ["terraform_states.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ux_terraform_state_versions_number", "terraform_state_versions", ["state_id", "number"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ux_terraform_state_versions_number", table_name="terraform_state_versions")
    op.drop_table("terraform_state_versions")
    op.drop_index("ux_terraform_states_script_workspace", table_name="terraform_states")
    op.drop_table("terraform_states")
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_column("run_options")
    with op.batch_alter_table("scripts", schema=None) as batch_op:
        batch_op.drop_column("ssh_key_secret")
        batch_op.drop_column("ssh_user")
        batch_op.drop_column("inventory")
    with op.batch_alter_table("secrets", schema=None) as batch_op:
        batch_op.drop_column("kind")
