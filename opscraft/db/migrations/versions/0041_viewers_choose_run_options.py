"""scripts.viewers_choose_run_options: whether users who may not edit a script (viewers) may choose
an Ansible run's run options (`--limit`, `--tags`, `--skip-tags`, `--check`, `--diff`:
services/run_option_rights.py). Scripts saved before keep what they allowed: true.

Revision ID: 0041
Revises: 0040
Create Date: 2026-12-05 23:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0041"
down_revision: str | None = "0040"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# A plain ALTER TABLE on both databases: a batch rebuild of `scripts` on SQLite loses its unique
# index on `lower(name)` (an expression index, which the rebuild cannot reflect).


def upgrade() -> None:
    op.add_column(
        "scripts",
        sa.Column("viewers_choose_run_options", sa.Boolean(), nullable=False, server_default=sa.true()),
    )


def downgrade() -> None:
    op.drop_column("scripts", "viewers_choose_run_options")
