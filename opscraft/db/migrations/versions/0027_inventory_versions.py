"""shared inventories keep every content they have had: `inventory_versions` and
`inventories.version`; each existing inventory gets its current content as version 1

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-03 08:00:00
"""

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import opscraft.db.types

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    versions = op.create_table(
        "inventory_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("inventory_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("content_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("author_id", sa.Integer(), nullable=True),
        sa.Column("created_at", opscraft.db.types.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["inventory_id"], ["inventories.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["author_id"], ["users.id"], ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,  # as every table with an id since 0016: ids are never reused
    )
    op.create_index(
        "ux_inventory_versions_number", "inventory_versions", ["inventory_id", "number"], unique=True
    )
    op.create_index("ix_inventory_versions_sha", "inventory_versions", ["inventory_id", "content_sha256"])
    # A plain column with a default, added in place on SQLite too.
    with op.batch_alter_table("inventories") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))
    inventories = sa.table(
        "inventories",
        sa.column("id", sa.Integer()),
        sa.column("content", sa.Text()),
        sa.column("updated_by", sa.Integer()),
        sa.column("updated_at", opscraft.db.types.UTCDateTime()),
    )
    rows = op.get_bind().execute(sa.select(inventories)).mappings().all()
    if rows:  # the SHA-256 as runs recorded it (`content_sha256`: of the UTF-8 text)
        op.bulk_insert(
            versions,
            [
                {
                    "inventory_id": row["id"],
                    "number": 1,
                    "content": row["content"],
                    "content_sha256": hashlib.sha256(row["content"].encode()).hexdigest(),
                    "author_id": row["updated_by"],
                    "created_at": row["updated_at"],
                }
                for row in rows
            ],
        )


def downgrade() -> None:
    with op.batch_alter_table("inventories") as batch:
        batch.drop_column("version")
    op.drop_index("ix_inventory_versions_sha", table_name="inventory_versions")
    op.drop_index("ux_inventory_versions_number", table_name="inventory_versions")
    op.drop_table("inventory_versions")
