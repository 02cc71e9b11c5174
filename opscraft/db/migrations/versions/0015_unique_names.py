"""unique names: a script's schedules and webhooks, a user's API tokens in use (ignoring case)

Existing duplicates are kept and renamed first, so the unique indexes can be built: within each
scope, the oldest row keeps its name and each later one gets the first free ` (2)`, ` (3)`...
suffix (cut to fit 64 characters). Names are compared as services/names.py compares them (NFKC,
case folded), which is at least as strict as the indexes' `lower(name)`.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-01 02:30:00
"""

import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME_MAX = 64
# index name -> (table, scope column, rows it covers)
INDEXES = {
    "ux_schedules_script_name": ("schedules", "script_id", None),
    "ux_webhook_triggers_script_name": ("webhook_triggers", "script_id", None),
    "ux_api_tokens_user_name": ("api_tokens", "user_id", "revoked_at IS NULL"),
}


def _key(name: str) -> str:
    return unicodedata.normalize("NFKC", name).casefold()


def _rename_duplicates(table: str, scope: str, where: str | None) -> None:
    bind = op.get_bind()
    condition = f" WHERE {where}" if where else ""
    rows = bind.execute(sa.text(f"SELECT id, {scope}, name FROM {table}{condition} ORDER BY id")).all()
    taken: set[tuple[object, str]] = set()
    duplicates = []
    for row_id, owner, name in rows:
        if (owner, _key(name)) in taken:
            duplicates.append((row_id, owner, name))
        else:
            taken.add((owner, _key(name)))
    update = sa.text(f"UPDATE {table} SET name = :name WHERE id = :id")
    for row_id, owner, name in duplicates:
        number = 2
        while True:
            suffix = f" ({number})"
            candidate = name[: NAME_MAX - len(suffix)].rstrip() + suffix
            if (owner, _key(candidate)) not in taken:
                break
            number += 1
        taken.add((owner, _key(candidate)))
        bind.execute(update, {"name": candidate, "id": row_id})


def upgrade() -> None:
    for index, (table, scope, where) in INDEXES.items():
        _rename_duplicates(table, scope, where)
        partial = {"sqlite_where": sa.text(where), "postgresql_where": sa.text(where)} if where else {}
        op.create_index(index, table, [scope, sa.text("lower(name)")], unique=True, **partial)


def downgrade() -> None:
    for index, (table, _, _) in INDEXES.items():
        op.drop_index(index, table_name=table)
