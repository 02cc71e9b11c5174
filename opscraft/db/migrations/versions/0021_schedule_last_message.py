"""a schedule keeps why its last fire started nothing: `schedules.last_message` (the message of
that fire in `schedule_fires`), shown next to its last outcome; before, an `error` fire (a
parameter the script no longer accepts, an archived script) said only "error" in the API and UI

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-02 09:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("schedules") as batch:
        batch.add_column(
            sa.Column("last_message", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("schedules") as batch:
        batch.drop_column("last_message")
