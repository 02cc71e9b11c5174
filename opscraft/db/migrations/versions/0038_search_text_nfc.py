"""scripts' `search_text` in Unicode's NFC, as every save since the NFC rule writes it
(`db.fold.lower`): a script saved before it kept the spelling it was typed or pasted in until its
next save, so `café` typed (U+00E9) matched it only through a second, decomposed spelling of the
term and `cafe` found a description stored as `cafe` + U+0301 (services/like.py)

Revision ID: 0038
Revises: 0037
Create Date: 2026-12-05 01:55:00
"""

import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0038"
down_revision: str | None = "0037"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000


def upgrade() -> None:
    """Each script's `search_text` read in id order, a batch at a time (no content); only those
    not in NFC written (few or none). The stored text is normalized as it is, not rebuilt from
    the name, description and tags: a row whose tags cannot be read keeps what it was found by."""
    bind = op.get_bind()
    after = 0
    while True:
        rows = bind.execute(
            sa.text("SELECT id, search_text FROM scripts WHERE id > :after ORDER BY id LIMIT :n"),
            {"after": after, "n": BATCH},
        ).all()
        if not rows:
            return
        for row_id, stored in rows:
            if isinstance(stored, str) and not unicodedata.is_normalized("NFC", stored):
                bind.execute(
                    sa.text("UPDATE scripts SET search_text = :text WHERE id = :id"),
                    {"text": unicodedata.normalize("NFC", stored), "id": row_id},
                )
        after = rows[-1][0]


def downgrade() -> None:
    """Nothing to undo: the NFC spelling is what every later save writes, and older code finds it."""
