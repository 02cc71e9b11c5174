"""a run's byte counts are 64-bit, and its stored output has a size of its own:
`executions.output_bytes` BIGINT on PostgreSQL (an INTEGER refused a run that wrote over 2 GiB,
and with it the run's final state: the run stayed `running`), and `output_stored_bytes` (what
the stored output takes: output retention's size cap counted what the scripts wrote, so one run
that wrote 100 GB, of which 50 MiB were stored, had the output of every older run removed).
Rows from before: their stored chunks' size for truncated runs, else what they wrote.
SQLite's INTEGER is 64-bit already. On PostgreSQL the type change rewrites the table (seconds at
a million runs, at start).

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0030"
down_revision: str | None = "0029"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == "postgresql"
    if postgresql:
        op.alter_column("executions", "output_bytes", type_=sa.BigInteger(), existing_nullable=False)
    with op.batch_alter_table("executions") as batch:
        batch.add_column(
            sa.Column(
                "output_stored_bytes",
                sa.BigInteger() if postgresql else sa.Integer(),
                nullable=False,
                server_default="0",
            )
        )
    octets = "octet_length(content)" if postgresql else "length(CAST(content AS BLOB))"
    op.execute(
        "UPDATE executions SET output_stored_bytes = output_bytes "
        "WHERE output_removed_at IS NULL AND NOT output_truncated"
    )
    op.execute(
        f"UPDATE executions SET output_stored_bytes = (SELECT coalesce(sum({octets}), 0) "
        "FROM execution_logs WHERE execution_logs.execution_id = executions.id) "
        "WHERE output_removed_at IS NULL AND output_truncated"
    )


def downgrade() -> None:
    with op.batch_alter_table("executions") as batch:
        batch.drop_column("output_stored_bytes")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("UPDATE executions SET output_bytes = 2147483647 WHERE output_bytes > 2147483647")
        op.alter_column("executions", "output_bytes", type_=sa.Integer(), existing_nullable=False)
