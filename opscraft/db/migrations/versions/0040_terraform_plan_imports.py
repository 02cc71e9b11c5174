"""terraform_plans.to_import: the resources a saved plan's `import` blocks bring into the state,
counted as Terraform's own "Plan: 1 to import, 0 to add, 0 to change, 0 to destroy." line counts
them (services/terraform_plans.py). A plan whose only change was an import was summarized as
"Plan: 0 to add, 0 to change, 0 to destroy." with no resource listed, though its apply writes the
imported resource into the state. Plans saved before have 0 (their imports were not counted).

Revision ID: 0040
Revises: 0039
Create Date: 2026-12-05 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0040"
down_revision: str | None = "0039"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("terraform_plans") as batch:
        batch.add_column(sa.Column("to_import", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("terraform_plans") as batch:
        batch.drop_column("to_import")
