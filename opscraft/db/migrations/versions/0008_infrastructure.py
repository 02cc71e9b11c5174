"""infrastructure: file secrets, Ansible inventory and SSH credential per script, run options

Revision ID: 0008
Revises: 0005
Create Date: 2026-11-30 12:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0008"
down_revision: str | None = "0005"
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


def downgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_column("run_options")
    with op.batch_alter_table("scripts", schema=None) as batch_op:
        batch_op.drop_column("ssh_key_secret")
        batch_op.drop_column("ssh_user")
        batch_op.drop_column("inventory")
    with op.batch_alter_table("secrets", schema=None) as batch_op:
        batch_op.drop_column("kind")
