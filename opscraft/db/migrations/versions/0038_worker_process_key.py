"""workers.process_key: the boot id and PID namespace of a worker's process (`execution.liveness`),
so another OpsCraft process on the same machine and namespace can tell its pid is gone and end a
run cancelled on that dead worker at once instead of after OPSCRAFT_WORKER_LOST_SECONDS.
Rows from before have none (never proved gone: their cancels wait as before).

Revision ID: 0038
Revises: 0037
Create Date: 2026-12-05 01:20:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0038"
down_revision: str | None = "0037"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.add_column(sa.Column("process_key", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("workers") as batch:
        batch.drop_column("process_key")
