"""a secret that signs a webhook or is a notification channel's credential cannot be deleted:
`webhook_triggers.secret_id` and `notification_channels.secret_id` become ON DELETE RESTRICT
(were SET NULL, which let a delete racing the create of such a use turn signing off silently)

SQLite: both tables are rebuilt in batch mode (SQLite cannot alter a foreign key), keeping their
rows, AUTOINCREMENT (0016) and indexes, saved as SQLite stores them (expression indexes included,
which reflection would lose) and made again after, as 0016 does. PostgreSQL: each constraint is
dropped and added again under its name.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-01 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("webhook_triggers", "notification_channels")
# The name a naming convention gives SQLite's unnamed foreign key, so that batch mode can drop it.
SQLITE_CONVENTION = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def _rebuild_sqlite(table: str, ondelete: str) -> None:
    bind = op.get_bind()
    indexes = bind.execute(
        sa.text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t AND sql IS NOT NULL"
        ),
        {"t": table},
    ).all()
    for name, _ in indexes:
        op.drop_index(name, table_name=table)
    with op.batch_alter_table(
        table,
        recreate="always",
        table_kwargs={"sqlite_autoincrement": True},
        naming_convention=SQLITE_CONVENTION,
    ) as batch:
        name = f"fk_{table}_secret_id_secrets"
        batch.drop_constraint(name, type_="foreignkey")
        batch.create_foreign_key(name, "secrets", ["secret_id"], ["id"], ondelete=ondelete)
    for _, sql in indexes:
        bind.execute(sa.text(sql))


def _set_ondelete(ondelete: str) -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    if sqlite and bind.execute(sa.text("PRAGMA foreign_keys")).scalar():
        raise RuntimeError(
            "rebuilding tables needs foreign keys off: run it through opscraft.db.migrate.upgrade"
        )
    for table in TABLES:
        if sqlite:
            _rebuild_sqlite(table, ondelete)
        else:
            name = f"{table}_secret_id_fkey"  # PostgreSQL's name for the unnamed key of 0006
            op.drop_constraint(name, table, type_="foreignkey")
            op.create_foreign_key(name, table, "secrets", ["secret_id"], ["id"], ondelete=ondelete)


def upgrade() -> None:
    _set_ondelete("RESTRICT")


def downgrade() -> None:
    """Back to ON DELETE SET NULL (on SQLite with foreign keys off, as for the upgrade)."""
    _set_ondelete("SET NULL")
