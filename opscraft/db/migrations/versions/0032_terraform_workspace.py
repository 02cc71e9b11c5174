"""a Terraform run names the workspace whose state it uses (`executions.terraform_workspace`):
OpsCraft's state backend keeps a state per script and workspace, but every run used `default`,
so one configuration could not keep separate dev / staging / prod states. Terraform runs from
before used `default` and say so; other runs have none.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-03 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0032"
down_revision: str | None = "0031"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.add_column(sa.Column("terraform_workspace", sa.String(length=64), nullable=True))
    op.execute("UPDATE executions SET terraform_workspace = 'default' WHERE script_type = 'terraform'")


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("terraform_workspace")
