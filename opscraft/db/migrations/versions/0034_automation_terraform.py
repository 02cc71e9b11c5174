"""schedules, webhooks and chain links name the Terraform action and workspace of the runs they
start (`terraform_action`, `terraform_workspace` on `schedules`, `webhook_triggers` and
`chain_links`): they could only plan in the workspace `default`. Rows from before, of a Terraform
script (a link: of a Terraform target), say `plan` and `default`, what they started; the others
have none, as a run of another script type has none.

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-03 18:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0034"
down_revision: str | None = "0033"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Each table and the column naming the script its runs are of.
TABLES = (("schedules", "script_id"), ("webhook_triggers", "script_id"), ("chain_links", "target_script_id"))


def upgrade() -> None:
    for table, script in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("terraform_action", sa.String(length=16), nullable=True))
            batch.add_column(sa.Column("terraform_workspace", sa.String(length=64), nullable=True))
        op.execute(
            f"UPDATE {table} SET terraform_action = 'plan', terraform_workspace = 'default' "
            f"WHERE {script} IN (SELECT id FROM scripts WHERE script_type = 'terraform')"
        )


def downgrade() -> None:
    for table, _ in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("terraform_workspace")
            batch.drop_column("terraform_action")
