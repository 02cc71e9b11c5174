"""a secret attached to a script is never deleted without the script being told: the
`script_secrets.secret_id` key becomes ON DELETE RESTRICT (was CASCADE, which let a non-forced
secret delete racing an attach remove the new attachment silently, after both answered success)

A forced delete detaches the secret from its scripts itself (services/secrets.py), in the same
transaction, before the database could refuse it. SQLite: the table is rebuilt in batch mode (it
cannot alter a foreign key), keeping its rows and its index (saved as SQLite stores it and made
again after, as 0018 does); PostgreSQL: the constraint is dropped and added again under its name.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-01 14:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "script_secrets"
# The name a naming convention gives SQLite's unnamed foreign key, so that batch mode can drop it.
SQLITE_CONVENTION = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def _set_ondelete(ondelete: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        name = f"{TABLE}_secret_id_fkey"  # PostgreSQL's name for the unnamed key of 0004
        op.drop_constraint(name, TABLE, type_="foreignkey")
        op.create_foreign_key(name, TABLE, "secrets", ["secret_id"], ["id"], ondelete=ondelete)
        return
    if bind.execute(sa.text("PRAGMA foreign_keys")).scalar():
        raise RuntimeError(
            "rebuilding tables needs foreign keys off: run it through opscraft.db.migrate.upgrade"
        )
    indexes = bind.execute(
        sa.text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t AND sql IS NOT NULL"
        ),
        {"t": TABLE},
    ).all()
    for name, _ in indexes:
        op.drop_index(name, table_name=TABLE)
    with op.batch_alter_table(TABLE, recreate="always", naming_convention=SQLITE_CONVENTION) as batch:
        name = f"fk_{TABLE}_secret_id_secrets"
        batch.drop_constraint(name, type_="foreignkey")
        batch.create_foreign_key(name, "secrets", ["secret_id"], ["id"], ondelete=ondelete)
    for _, sql in indexes:
        bind.execute(sa.text(sql))


def upgrade() -> None:
    _set_ondelete("RESTRICT")


def downgrade() -> None:
    """Back to ON DELETE CASCADE (on SQLite with foreign keys off, as for the upgrade)."""
    _set_ondelete("CASCADE")
