"""schedules, webhooks and chain links carry the Ansible run options of the runs they start
(`run_options` on `schedules`, `webhook_triggers` and `chain_links`: `limit`, `tags`,
`skip_tags`, `check`, `diff`, as a manual run's): their runs targeted every host with no tags
and no check mode. Rows from before have none (NULL), what they started.

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-04 13:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0035"
down_revision: str | None = "0034"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("schedules", "webhook_triggers", "chain_links")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("run_options", sa.JSON(), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("run_options")
