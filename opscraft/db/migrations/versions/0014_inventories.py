"""inventories: shared named Ansible inventories, the script's reference to one, and the
inventory and content hash each run used

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-30 16:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import opscraft.db.types

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCRIPTS_FK = "fk_scripts_inventory_id_inventories"


def upgrade() -> None:
    op.create_table(
        "inventories",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("updated_by", sa.Integer(), nullable=True),
        sa.Column("created_at", opscraft.db.types.UTCDateTime(), nullable=False),
        sa.Column("updated_at", opscraft.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], ondelete="SET NULL"),
        sa.ForeignKeyConstraint(["updated_by"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_inventories_name", "inventories", ["name"], unique=True)
    with op.batch_alter_table("scripts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("inventory_id", sa.Integer(), nullable=True))
        batch_op.create_index("ix_scripts_inventory_id", ["inventory_id"])
        batch_op.create_foreign_key(SCRIPTS_FK, "inventories", ["inventory_id"], ["id"])
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("inventory_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("inventory_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("executions", schema=None) as batch_op:
        batch_op.drop_column("inventory_sha256")
        batch_op.drop_column("inventory_id")
    with op.batch_alter_table("scripts", schema=None) as batch_op:
        batch_op.drop_constraint(SCRIPTS_FK, type_="foreignkey")
        batch_op.drop_index("ix_scripts_inventory_id")
        batch_op.drop_column("inventory_id")
    op.drop_index("ix_inventories_name", table_name="inventories")
    op.drop_table("inventories")
