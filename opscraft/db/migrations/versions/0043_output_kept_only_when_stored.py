"""ix_executions_output_kept only on runs that stored output: retention marked a run that stored
none as "output removed by retention" (its page, `/logs` and `output.log` said so) while
nothing of it was removed. Such a run is no longer on the work list, and a run that wrote
nothing (`output_bytes` 0) marked before is unmarked: no output of it was ever removed.

Revision ID: 0043
Revises: 0042
Create Date: 2026-12-06 02:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0043"
down_revision: str | None = "0042"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

KEPT = sa.text("output_removed_at IS NULL AND output_stored_bytes > 0")
KEPT_BEFORE = sa.text("output_removed_at IS NULL")


def _index(where: sa.TextClause) -> None:
    op.drop_index("ix_executions_output_kept", table_name="executions")
    op.create_index(
        "ix_executions_output_kept", "executions", ["finished_at"], sqlite_where=where, postgresql_where=where
    )


def upgrade() -> None:
    op.execute(
        "UPDATE executions SET output_removed_at = NULL "
        "WHERE output_removed_at IS NOT NULL AND output_bytes = 0"
    )
    _index(KEPT)


def downgrade() -> None:
    _index(KEPT_BEFORE)
