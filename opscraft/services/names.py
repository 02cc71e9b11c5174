"""Names people tell objects apart by are unique in their scope, ignoring case.

The rule, for the objects named with free text (`invisible.Label`):

- a schedule's name, among the schedules of its script;
- a webhook's name, among the webhooks of its script;
- an API token's name, among its owner's tokens not revoked (a revoked token's name is free
  again; an expired one is still listed, and must be revoked to reuse its name);
- a notification channel's name, among all channels (they are shared by the whole server).

Usernames, live scripts' names and shared inventories' names are unique ignoring case too, in
the whole server; they are ASCII, so SQL's `lower` compares them exactly as Python does (their
services check with `lower`; unique indexes on `lower(...)`, migration 0016).

Secret names are not: they are environment variable names, which are case-sensitive (`KEY` and
`key` are two variables), so two secrets may differ only in case; the exact name is unique (a
unique index). A script's tags are compared with `name_key` when it is saved; concurrent saves of
one script are serialized by its version number (a unique index), so tags need no index of
their own.

Two names are the same when their NFKC forms fold to the same case (`name_key`: "Nightly",
"NIGHTLY" and the same in full-width letters U+FF2E... are one name), as script and inventory names, whose
ASCII names are compared with SQL's `lower`. A clash is a `Conflict` (409) naming the field
`name`. The database has the last word under a race: a unique index on (scope, `lower(name)`)
(migration 0015; 0016 for the channels), whose violation `conflicts` turns into the same 409.
SQL's `lower` is weaker than `name_key` (ASCII only on SQLite, no NFKC anywhere): two non-ASCII
variants of one name saved at the same instant can both be stored; one at a time, the second is
refused.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.services.errors import Conflict

SCHEDULE_TAKEN = "this script already has a schedule with this name (names ignore case): choose another name"
WEBHOOK_TAKEN = "this script already has a webhook with this name (names ignore case): choose another name"
TOKEN_TAKEN = (
    "you already have a token with this name (names ignore case): choose another name, "
    "or revoke the old token first"
)
CHANNEL_TAKEN = "a channel with this name already exists (names ignore case): choose another name"


def name_key(name: str) -> str:
    """The form two names are compared in: NFKC, then Unicode case folding."""
    return unicodedata.normalize("NFKC", name).casefold()


async def check_free(
    session: AsyncSession,
    model: Any,
    name: str,
    scope: Sequence[ColumnElement[bool]],
    message: str,
    *,
    except_id: int | None = None,
) -> None:
    """`Conflict` (409, field `name`, `message`) when a row of `model` matching `scope` other than
    `except_id` has the same name as `name` (`name_key`). Scopes are small (a script's schedules,
    a user's tokens), so the names are compared here, in Python's full Unicode case folding."""
    with session.no_autoflush:  # the row being saved may already carry the new name
        rows = await session.exec(select(col(model.id), col(model.name)).where(*scope))
    key = name_key(name)
    if any(row_id != except_id and name_key(other) == key for row_id, other in rows.all()):
        raise Conflict(message, details=[{"field": "name", "message": message}])
