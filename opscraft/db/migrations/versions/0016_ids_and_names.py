"""ids never reused on SQLite; unique names ignoring case for users, live scripts, inventories and
notification channels; each account's random `account_key`

SQLite: every table with a generated integer id is rebuilt with `AUTOINCREMENT` (models/__init__.py
says why), keeping its rows, indexes and foreign keys; the new `sqlite_sequence` starts at the
largest id present. `db.migrate.upgrade` runs migrations with foreign keys off on SQLite (a
rebuild drops the old table, which would otherwise cascade to the rows referring to it) and checks
them before committing. PostgreSQL's sequences never reuse a value: nothing to rebuild.

Existing duplicates are renamed first, so the unique indexes on `lower(...)` can be built, as in
0015: the oldest row keeps its name, each later one gets the first free suffix, `-2`, `-3`...
for usernames, script and inventory names (their characters allow no space), ` (2)`... for
channels (cut to fit the column). A renamed script's `search_text` follows its name.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-01 11:00:00
"""

import secrets
import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The tables with a generated integer id, as of 0015.
ID_TABLES = (
    "audit_events",
    "users",
    "api_tokens",
    "inventories",
    "secrets",
    "notification_channels",
    "scripts",
    "chain_links",
    "executions",
    "notification_rules",
    "script_versions",
    "terraform_states",
    "webhook_triggers",
    "approval_decisions",
    "chain_runs",
    "execution_logs",
    "notification_deliveries",
    "run_events",
    "schedules",
    "terraform_plans",
    "terraform_state_versions",
)
LIVE = "deleted_at IS NULL"
# new index -> (table, column, rows it covers, column length, suffix format, index it replaces)
NAMES = {
    "ux_users_username": ("users", "username", None, 64, "-{}", "ix_users_username"),
    "ux_scripts_live_name": ("scripts", "name", LIVE, 128, "-{}", "ux_scripts_live_name"),
    "ux_inventories_name": ("inventories", "name", None, 128, "-{}", "ix_inventories_name"),
    "ux_notification_channels_name": ("notification_channels", "name", None, 64, " ({})", None),
}
# notification_channels' case-sensitive `UNIQUE (name)` of 0006: PostgreSQL's name for it, and
# the name a naming convention gives the unnamed SQLite one so that batch mode can drop it.
CHANNELS_UNIQUE_PG = "notification_channels_name_key"
CHANNELS_UNIQUE_SQLITE = "uq_notification_channels_name"


def _key(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold()


def _rename_duplicates(table: str, column: str, where: str | None, length: int, suffix: str) -> None:
    bind = op.get_bind()
    condition = f" WHERE {where}" if where else ""
    rows = bind.execute(sa.text(f"SELECT id, {column} FROM {table}{condition} ORDER BY id")).all()
    taken: set[str] = set()
    duplicates = []
    for row_id, name in rows:
        if _key(name) in taken:
            duplicates.append((row_id, name))
        taken.add(_key(name))
    for row_id, name in duplicates:
        number = 2
        while (
            _key(candidate := name[: length - len(suffix.format(number))].rstrip() + suffix.format(number))
            in taken
        ):
            number += 1
        taken.add(_key(candidate))
        values = {"name": candidate, "id": row_id}
        bind.execute(sa.text(f"UPDATE {table} SET {column} = :name WHERE id = :id"), values)
        if table == "scripts":  # search_text starts with the lower-cased name and a newline
            bind.execute(
                sa.text(
                    "UPDATE scripts SET search_text = :lower || substr(search_text, :rest) WHERE id = :id"
                ),
                {"lower": candidate.lower(), "rest": len(name) + 1, "id": row_id},
            )


def _rebuild_with_autoincrement(table: str) -> None:
    """Rebuild `table` on SQLite with AUTOINCREMENT. Its indexes are saved as SQLite stores them
    (partial and expression indexes included, which reflection would lose) and made again after."""
    bind = op.get_bind()
    indexes = bind.execute(
        sa.text(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = :t AND sql IS NOT NULL"
        ),
        {"t": table},
    ).all()
    for name, _ in indexes:
        op.drop_index(name, table_name=table)
    convention = {"uq": "uq_%(table_name)s_%(column_0_name)s"}
    with op.batch_alter_table(
        table, recreate="always", table_kwargs={"sqlite_autoincrement": True}, naming_convention=convention
    ) as batch:
        if table == "notification_channels":
            batch.drop_constraint(CHANNELS_UNIQUE_SQLITE, type_="unique")
        if table == "users":
            batch.alter_column("account_key", existing_type=sa.String(16), nullable=False)
    replaced = {old for (_, _, _, _, _, old) in NAMES.values()}
    for name, sql in indexes:
        if name not in replaced:
            bind.execute(sa.text(sql))


def upgrade() -> None:
    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    if sqlite and bind.execute(sa.text("PRAGMA foreign_keys")).scalar():
        raise RuntimeError(
            "rebuilding tables needs foreign keys off: run it through opscraft.db.migrate.upgrade"
        )
    for table, column, where, length, suffix, _ in NAMES.values():
        _rename_duplicates(table, column, where, length, suffix)
    op.add_column("users", sa.Column("account_key", sa.String(16), nullable=True))
    ids = [row_id for (row_id,) in bind.execute(sa.text("SELECT id FROM users"))]
    for row_id in ids:
        bind.execute(
            sa.text("UPDATE users SET account_key = :key WHERE id = :id"),
            {"key": secrets.token_hex(8), "id": row_id},
        )
    if sqlite:
        for table in ID_TABLES:
            _rebuild_with_autoincrement(table)
    else:
        op.alter_column("users", "account_key", existing_type=sa.String(16), nullable=False)
        op.drop_constraint(CHANNELS_UNIQUE_PG, "notification_channels", type_="unique")
        for table, _, _, _, _, old in NAMES.values():
            if old:
                op.drop_index(old, table_name=table)
    for index, (table, column, where, _, _, _) in NAMES.items():
        partial = {"sqlite_where": sa.text(where), "postgresql_where": sa.text(where)} if where else {}
        op.create_index(index, table, [sa.text(f"lower({column})")], unique=True, **partial)


def downgrade() -> None:
    """The name indexes go back to comparing case; the tables keep AUTOINCREMENT (harmless)."""
    for index, (table, _, _, _, _, _) in NAMES.items():
        op.drop_index(index, table_name=table)
    op.create_index("ix_users_username", "users", ["username"], unique=True)
    op.create_index(
        "ux_scripts_live_name",
        "scripts",
        ["name"],
        unique=True,
        sqlite_where=sa.text(LIVE),
        postgresql_where=sa.text(LIVE),
    )
    op.create_index("ix_inventories_name", "inventories", ["name"], unique=True)
    with op.batch_alter_table("notification_channels") as batch:
        batch.create_unique_constraint(CHANNELS_UNIQUE_PG, ["name"])
    with op.batch_alter_table("users") as batch:
        batch.drop_column("account_key")
