"""each stored chunk of output knows its length (`execution_logs.chars`, in characters), with an
index covering `(execution_id, seq, chars, stream)`: a page of stored output (the event stream's
catch-up, `GET /executions/{id}/logs`, the download) ends at `execution.log_pages.PAGE_CHARS`
characters as well as at its number of chunks, and that bound is found from the index without
reading the contents it leaves out (a page of 1000 chunks was up to 128 M characters).

Rows from before are back-filled with their content's length in characters (SQL's `length`,
Python's `len`): this reads every stored chunk once, at the first start after the upgrade (on
PostgreSQL it rewrites the table). SQLite's `length` of a text stops at its first NUL, which
output stored on SQLite before NULs became U+FFFD (2026-11-30) may hold: those chunks, found by
their bytes, are counted in Python.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-03 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0033"
down_revision: str | None = "0032"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "execution_logs", sa.Column("chars", sa.Integer(), nullable=False, server_default=sa.text("0"))
    )
    # `length` of a text is its number of characters on both databases (Python's `len`).
    op.execute("UPDATE execution_logs SET chars = length(content)")
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        with_nul = sa.text(
            "SELECT id, content FROM execution_logs WHERE instr(CAST(content AS BLOB), x'00') > 0"
        )
        counted = [{"id": row_id, "chars": len(content)} for row_id, content in bind.execute(with_nul)]
        if counted:
            bind.execute(sa.text("UPDATE execution_logs SET chars = :chars WHERE id = :id"), counted)
    op.create_index("ix_execution_logs_page", "execution_logs", ["execution_id", "seq", "chars", "stream"])


def downgrade() -> None:
    op.drop_index("ix_execution_logs_page", table_name="execution_logs")
    with op.batch_alter_table("execution_logs") as batch:
        batch.drop_column("chars")
