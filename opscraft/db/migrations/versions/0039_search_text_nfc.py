"""scripts' `search_text` in Unicode's NFC, and the history's host rows folded as searches are

scripts' `search_text` in Unicode's NFC, as every save since the NFC rule writes it
(`db.fold.lower`): a script saved before it kept the spelling it was typed or pasted in until its
next save, so `café` typed (U+00E9) matched it only through a second, decomposed spelling of the
term and `cafe` found a description stored as `cafe` + U+0301 (services/like.py).

`execution_hosts.host` in lower case and NFC (`ansible_recap.host_key`): `?host=DB1` missed a
run of `db1`, `café` typed one of `cafe` + U+0301. Two names of one run that fold alike become
one row, their counts added up (as the masker's `***` twice already were).

Revision ID: 0039
Revises: 0038
Create Date: 2026-12-05 01:55:00
"""

import unicodedata
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0039"
down_revision: str | None = "0038"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000


# The letters whose full lowercase (`str.lower`) is not their simple one (`db.fold.lower`).
_SIMPLE = str.maketrans({"\u0130": "i", "\u03a3": "\u03c3"})
MAX_HOST_CHARS = 255
_COUNTS = ("changed", "unreachable", "failed")


def _host_key(name: str) -> str:
    # execution.ansible_recap.host_key as of this revision (migrations do not import the code).
    return unicodedata.normalize("NFC", name.translate(_SIMPLE).lower())[:MAX_HOST_CHARS]


def upgrade() -> None:
    _search_text_in_nfc()
    _hosts_folded()


def _hosts_folded() -> None:
    """Each distinct host name (the index's first column: few next to the rows) whose key differs
    has its rows moved to the key, or added into the run's row of that key when it has one."""
    bind = op.get_bind()
    names = bind.execute(sa.text("SELECT DISTINCT host FROM execution_hosts")).scalars().all()
    for name in names:
        key = _host_key(name)
        if key == name:
            continue
        rows = bind.execute(
            sa.text("SELECT execution_id, changed, unreachable, failed FROM execution_hosts WHERE host = :h"),
            {"h": name},
        ).all()
        for execution_id, *counts in rows:
            found = {"eid": execution_id, "name": name, "key": key, **dict(zip(_COUNTS, counts, strict=True))}
            kept = bind.execute(
                sa.text(
                    "UPDATE execution_hosts SET changed = changed + :changed, unreachable = unreachable"
                    " + :unreachable, failed = failed + :failed WHERE execution_id = :eid AND host = :key"
                ),
                found,
            )
            if kept.rowcount:
                bind.execute(
                    sa.text("DELETE FROM execution_hosts WHERE execution_id = :eid AND host = :name"), found
                )
            else:
                bind.execute(
                    sa.text(
                        "UPDATE execution_hosts SET host = :key WHERE execution_id = :eid AND host = :name"
                    ),
                    found,
                )


def _search_text_in_nfc() -> None:
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
