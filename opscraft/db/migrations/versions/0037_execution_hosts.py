"""execution_hosts: each host of a finished Ansible run's per-host summary as a row, with the
run's `queued_at`, so the history finds a host's runs (`GET /api/v1/executions?host=db1&
host_status=failed`) newest first from the index `(host, queued_at, execution_id, failed,
unreachable, changed)` (covering what `host_status` reads) instead of reading every run's JSON
summary.

Rows from before are back-filled from `execution_host_summaries` (only Ansible runs since 0036
have one): each listed host once (a name the masker made `***` may be listed twice: its counts
are added up), an item that is not a host's name and counts (a row edited by hand) left out.

Revision ID: 0037
Revises: 0036
Create Date: 2026-12-04 19:10:00
"""

import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

import opscraft.db.types

revision: str = "0037"
down_revision: str | None = "0036"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTS = ("changed", "unreachable", "failed")


def _count(value: Any) -> int:
    return value if type(value) is int and value >= 0 else 0


def upgrade() -> None:
    op.create_table(
        "execution_hosts",
        sa.Column("execution_id", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("queued_at", opscraft.db.types.UTCDateTime(), nullable=False),
        sa.Column("changed", sa.Integer(), nullable=False),
        sa.Column("unreachable", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["execution_id"], ["executions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("execution_id", "host"),
    )
    op.create_index(
        "ix_execution_hosts_host_queued",
        "execution_hosts",
        ["host", "queued_at", "execution_id", "failed", "unreachable", "changed"],
    )
    bind = op.get_bind()
    found = bind.execute(
        sa.text(
            "SELECT s.execution_id, s.hosts, e.queued_at FROM execution_host_summaries s "
            "JOIN executions e ON e.id = s.execution_id"
        )
    )
    rows: dict[tuple[int, str], dict[str, Any]] = {}
    for execution_id, hosts, queued_at in found:
        listed = json.loads(hosts) if isinstance(hosts, str) else hosts
        for item in listed if isinstance(listed, list) else []:
            if not isinstance(item, dict) or not isinstance(item.get("host"), str):
                continue
            name = item["host"][:255]
            row = rows.setdefault(
                (execution_id, name),
                {"eid": execution_id, "host": name, "queued_at": queued_at, **dict.fromkeys(_COUNTS, 0)},
            )
            for key in _COUNTS:
                row[key] += _count(item.get(key))
    if rows:
        bind.execute(
            sa.text(
                "INSERT INTO execution_hosts (execution_id, host, queued_at, changed, unreachable, failed) "
                "VALUES (:eid, :host, :queued_at, :changed, :unreachable, :failed)"
            ),
            list(rows.values()),
        )


def downgrade() -> None:
    op.drop_index("ix_execution_hosts_host_queued", table_name="execution_hosts")
    op.drop_table("execution_hosts")
