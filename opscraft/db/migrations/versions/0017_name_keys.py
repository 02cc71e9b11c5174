"""stored name keys: schedules, webhooks, API tokens in use and notification channels are unique
by `name_key` (NFKC, then Unicode case folding: services/names.py), not by `lower(name)`

The indexes of 0015/0016 compared `lower(name)`, weaker than the services' check (no NFKC, and
ASCII only on SQLite), so variants only the folding equates (full-width letters, "ß" and "SS")
saved at the same instant could both be stored. Each table gets a `name_key` column, filled
here and kept by the services' mapper hooks, and a unique index on (scope, `name_key`) replaces
the one on (scope, `lower(name)`).

Existing duplicates under the folding are renamed first, as in 0015: within each scope the
oldest row keeps its name and each later one gets the first free ` (2)`, ` (3)`... suffix (cut
to fit 64 characters). Usernames, live script and inventory names keep their `lower(...)`
indexes: they are ASCII, for which `lower` is the folding.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-01 12:00:00
"""

import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME_MAX = 64
IN_USE = "revoked_at IS NULL"
# new index -> (table, scope column or None for the whole table, rows it covers, index it replaces)
INDEXES = {
    "ux_schedules_script_name_key": ("schedules", "script_id", None, "ux_schedules_script_name"),
    "ux_webhook_triggers_script_name_key": (
        "webhook_triggers",
        "script_id",
        None,
        "ux_webhook_triggers_script_name",
    ),
    "ux_api_tokens_user_name_key": ("api_tokens", "user_id", IN_USE, "ux_api_tokens_user_name"),
    "ux_notification_channels_name_key": (
        "notification_channels",
        None,
        None,
        "ux_notification_channels_name",
    ),
}


def _key(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold()


def _rename_duplicates(table: str, scope: str | None, where: str | None) -> None:
    bind = op.get_bind()
    owner = scope or "NULL"
    condition = f" WHERE {where}" if where else ""
    rows = bind.execute(sa.text(f"SELECT id, {owner}, name FROM {table}{condition} ORDER BY id")).all()
    taken = {(row_owner, _key(name)) for _, row_owner, name in rows}
    seen: set[tuple[object, str]] = set()
    update = sa.text(f"UPDATE {table} SET name = :name WHERE id = :id")
    for row_id, row_owner, name in rows:
        if (row_owner, _key(name)) not in seen:
            seen.add((row_owner, _key(name)))
            continue
        number = 2
        while True:
            suffix = f" ({number})"
            candidate = name[: NAME_MAX - len(suffix)].rstrip() + suffix
            if (row_owner, _key(candidate)) not in taken:
                break
            number += 1
        taken.add((row_owner, _key(candidate)))
        bind.execute(update, {"name": candidate, "id": row_id})


def _fill_keys(table: str) -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.text(f"SELECT id, name FROM {table}")).all()
    if rows:
        bind.execute(
            sa.text(f"UPDATE {table} SET name_key = :key WHERE id = :id"),
            [{"key": _key(name), "id": row_id} for row_id, name in rows],
        )


def upgrade() -> None:
    for index, (table, scope, where, old) in INDEXES.items():
        _rename_duplicates(table, scope, where)
        op.add_column(table, sa.Column("name_key", sa.String(), nullable=False, server_default=""))
        _fill_keys(table)
        op.drop_index(old, table_name=table)
        partial = {"sqlite_where": sa.text(where), "postgresql_where": sa.text(where)} if where else {}
        columns = [scope, "name_key"] if scope else ["name_key"]
        op.create_index(index, table, columns, unique=True, **partial)


def downgrade() -> None:
    for index, (table, scope, where, old) in INDEXES.items():
        op.drop_index(index, table_name=table)
        # Plain ALTER (SQLite 3.35+): a batch rebuild would drop the table's AUTOINCREMENT.
        op.execute(f"ALTER TABLE {table} DROP COLUMN name_key")
        partial = {"sqlite_where": sa.text(where), "postgresql_where": sa.text(where)} if where else {}
        columns = [scope, sa.text("lower(name)")] if scope else [sa.text("lower(name)")]
        op.create_index(old, table, columns, unique=True, **partial)
