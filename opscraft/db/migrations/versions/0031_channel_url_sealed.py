"""a webhook notification channel's URL is kept encrypted with the vault, like secrets
(`url_ciphertext`, `url_salt`, `url_nonce`, `url_key_version`), and `config.url` holds only its
masked form (`https://hooks.example/…`): such URLs often carry a token in their path or query
(Slack-like hooks), and were stored, and shown back to admins, as plain text.

A migration cannot encrypt (the master key is not the database's): the URLs of rows from before
are sealed, and their `config.url` masked, by the first start after it, as soon as the vault is
open (`services.notifications.seal_plain_urls`); until then they are sent as they are.

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-03 12:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0031"
down_revision: str | None = "0030"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("notification_channels") as batch:
        batch.add_column(sa.Column("url_ciphertext", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("url_salt", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("url_nonce", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("url_key_version", sa.Integer(), nullable=True))


def downgrade() -> None:
    # Sealed URLs cannot be opened here: a channel keeps only its masked URL (save it again)
    with op.batch_alter_table("notification_channels") as batch:
        batch.drop_column("url_key_version")
        batch.drop_column("url_nonce")
        batch.drop_column("url_salt")
        batch.drop_column("url_ciphertext")
