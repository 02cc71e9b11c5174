"""chain_runs.author_id: the "then run" link's author when the link started its run, who chose
the run's target and values and so may reject it but never approve it (services/approvals.py,
four eyes). A firing from before that started a run takes its link's author now (the only one
known; NULL when the link is gone). The downgrade drops the column: such runs are then again
approvable by the link's author.

Revision ID: 0048
Revises: 0047
Create Date: 2026-12-08 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0048"
down_revision: str | None = "0047"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AUTHOR_FK = "fk_chain_runs_author_id_users"
SQLITE_KEEPS_IDS = {"sqlite_autoincrement": True}
"""SQLite's batch mode rebuilds the table: AUTOINCREMENT kept, as every table with an id since 0016
(ids are never reused; tests/test_ids_not_reused.py)."""


def upgrade() -> None:
    with op.batch_alter_table("chain_runs", table_kwargs=SQLITE_KEEPS_IDS) as batch_op:
        batch_op.add_column(sa.Column("author_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(AUTHOR_FK, "users", ["author_id"], ["id"], ondelete="SET NULL")
    op.execute(
        "UPDATE chain_runs SET author_id = (SELECT owner_id FROM chain_links WHERE chain_links.id = "
        "chain_runs.link_id) WHERE execution_id IS NOT NULL"
    )


def downgrade() -> None:
    with op.batch_alter_table("chain_runs", table_kwargs=SQLITE_KEEPS_IDS) as batch_op:
        batch_op.drop_constraint(AUTHOR_FK, type_="foreignkey")
        batch_op.drop_column("author_id")
