"""Names people tell objects apart by are unique in their scope, ignoring case.

The rule, for the objects named with free text (`invisible.Label`):

- a schedule's name, among the schedules of its script;
- a webhook's name, among the webhooks of its script;
- an API token's name, among its owner's tokens not revoked (a revoked token's name is free
  again; an expired one is still listed, and must be revoked to reuse its name);
- a notification channel's name, among all channels (they are shared by the whole server).

Usernames, live scripts' names and shared inventories' names are unique ignoring case too, in
the whole server; they are ASCII (their services refuse any other character), and for ASCII
`name_key` is `lower`, so their services check with `lower` and unique indexes on `lower(...)`
(migration 0016) enforce exactly this rule.

Secret names are not: they are environment variable names, which are case-sensitive (`KEY` and
`key` are two variables), so two secrets may differ only in case; the exact name is unique (a
unique index). A script's tags are compared with `name_key` when it is saved; concurrent saves of
one script are serialized by its version number (a unique index), so tags need no index of
their own.

A free-text name is stored in NFC (`invisible.canonical`, the first validator of
`invisible.Label`, and of a token's name and a script's tags in their services), so its length
is counted as stored and one name typed with a composed or a decomposed accent is one spelling.

Two names are the same when their NFKC forms fold to the same case (`name_key`: "Nightly",
"NIGHTLY" and the same in full-width letters U+FF2E... are one name; so are "straße" and
"STRASSE"). A clash is a `Conflict` (409) naming the field `name`. The free-text named tables
store each row's `name_key` in a column of that name, set by the mapper hooks below on every
insert and update through the ORM (registered when this module is imported, as every service
writing those tables does), and the database has the last word under a race: a
unique index on (scope, `name_key`) (migration 0017, which also fills the column and renames the
rows that only this folding equates), whose violation `conflicts` turns into the same 409.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from typing import Any

from sqlalchemy import event, func
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db.models import ApiToken, NotificationChannel, Schedule, WebhookTrigger
from opscraft.services.errors import Conflict

SCHEDULE_TAKEN = "this script already has a schedule with this name (names ignore case): choose another name"
WEBHOOK_TAKEN = "this script already has a webhook with this name (names ignore case): choose another name"
TOKEN_TAKEN = (
    "you already have a token with this name (names ignore case): choose another name, "
    "or revoke the old token first"
)
CHANNEL_TAKEN = "a channel with this name already exists (names ignore case): choose another name"


def trimmed(value: Any) -> Any:
    """Text without the spaces and tabs around it, anything else as given: the `mode="before"`
    validator of every identifier-like field (a user's, script's, secret's and shared inventory's
    name, a parameter's name, a script's version label, SSH user and key secret, an Ansible limit
    and tag), so ` deploy ` is `deploy` in the API as in the browser's forms, whose one-line
    fields are trimmed (the API refused it, naming no blank). A line break, which no one-line
    field holds, is still refused (`deploy\n`: the `$` of a `re.match` let it through once), and
    so is a blank inside."""
    return value.strip(" \t") if isinstance(value, str) else value


def name_key(name: str) -> str:
    """The form two names are compared in: NFKC, then Unicode case folding."""
    return unicodedata.normalize("NFKC", name).casefold()


def name_order(column: Any, *, descending: bool = False) -> list[ColumnElement[Any]]:
    """ORDER BY terms listing rows by a name as people read it, ignoring case: `lower(column)`,
    then `column` itself (`KEY` before `key`, two secrets). A plain ORDER BY on the name put
    every capital first (`Zed` before `alice`: SQLite and PostgreSQL's C collation compare code
    points). For the ASCII names (usernames, scripts, inventories, secrets) `lower` is what their
    unique indexes hold; the free-text names of `KEYED` rows are ordered by their `name_key`."""
    terms = [func.lower(column), col(column)]
    return [term.desc() for term in terms] if descending else terms


def _store_key(_mapper: object, _connection: object, row: Any) -> None:
    """Mapper hook: `row.name_key` follows `row.name` on every insert and update."""
    row.name_key = name_key(row.name)


KEYED = (ApiToken, NotificationChannel, Schedule, WebhookTrigger)
for _model in KEYED:
    event.listen(_model, "before_insert", _store_key)
    event.listen(_model, "before_update", _store_key)


async def check_free(
    session: AsyncSession,
    model: Any,
    name: str,
    scope: Sequence[ColumnElement[bool]],
    message: str,
    *,
    except_id: int | None = None,
) -> None:
    """`Conflict` (409, field `name`, `message`) when a row of `model` (one of `KEYED`) matching
    `scope` other than `except_id` has the same name as `name` (equal `name_key` columns, what
    the unique index compares)."""
    with session.no_autoflush:  # the row being saved may already carry the new name
        stmt = select(col(model.id)).where(*scope, col(model.name_key) == name_key(name))
        if except_id is not None:
            stmt = stmt.where(col(model.id) != except_id)
        taken = (await session.exec(stmt)).first() is not None
    if taken:
        raise Conflict(message, details=[{"field": "name", "message": message}])
