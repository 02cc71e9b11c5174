"""scripts' `search_text` folded by Unicode's simple lowercase mapping (`db.fold.lower`), as
searched terms and PostgreSQL's `lower()` are: `İ` was stored as `i` and a combining dot, and a
word-final `Σ` as `ς`, so `istanbul` missed a script described as `İstanbul`

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-03 05:10:00
"""

import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The letters whose full lowercase (`str.lower`, the old fold) is not their simple one.
_SIMPLE = str.maketrans({"\u0130": "i", "\u03a3": "\u03c3"})


def _search_text(name: str, description: str, tags: list[str]) -> str:
    # services.scripts.search_text as of this revision (migrations do not import services).
    return "\n".join([name, description, " ".join(tags)]).translate(_SIMPLE).lower()


def upgrade() -> None:
    bind = op.get_bind()
    # Every script is read (no content), only those whose fold changes are written (few or none).
    rows = bind.execute(sa.text("SELECT id, name, description, tags, search_text FROM scripts")).all()
    for row_id, name, description, tags, stored in rows:
        names = json.loads(tags) if isinstance(tags, str) else list(tags or [])
        text = _search_text(name, description or "", names)
        if text != stored:
            bind.execute(
                sa.text("UPDATE scripts SET search_text = :text WHERE id = :id"), {"text": text, "id": row_id}
            )


def downgrade() -> None:
    """Nothing to undo: the simple fold differs from the old one in two letters only, and older
    code still finds every other script."""
