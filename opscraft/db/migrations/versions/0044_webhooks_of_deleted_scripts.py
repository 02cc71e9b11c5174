"""Delete the webhooks of deleted scripts (with their kept signatures): deleting a script now
deletes its webhooks (services/scripts.delete). Those left from before could start nothing,
nothing listed them, and a signed one kept its secret from being deleted. Nothing to restore
on downgrade.

Revision ID: 0044
Revises: 0043
Create Date: 2026-12-06 02:05:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0044"
down_revision: str | None = "0043"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite runs migrations with foreign keys off: the signatures' ON DELETE CASCADE is not relied on.
_OF_DELETED = (
    "SELECT w.id FROM webhook_triggers w JOIN scripts s ON s.id = w.script_id WHERE s.deleted_at IS NOT NULL"
)


def upgrade() -> None:
    op.execute(f"DELETE FROM webhook_signatures WHERE webhook_id IN ({_OF_DELETED})")
    op.execute(f"DELETE FROM webhook_triggers WHERE id IN ({_OF_DELETED})")


def downgrade() -> None:
    """Nothing: the deleted webhooks are gone for good (their audit events stay)."""
