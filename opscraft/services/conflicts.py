"""Unique constraints as `Conflict` (409) naming the field, on create and on update, even when two
requests race past the services' own "is it taken?" checks and the database has the last word.

Every unique index and primary key of `db.models` is found from the metadata, by the column list
SQLite reports (`UNIQUE constraint failed: users.email`) or by the constraint name PostgreSQL
reports (`ix_users_email`, `app_settings_pkey`). A foreign key violation (a row referred to was
deleted at the same moment) is a `Conflict` too, naming the field whose row is gone: the one of the
rows being written that refers to a row no longer there. Messages never quote the submitted value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from typing import Any

from sqlalchemy import Column, Index, PrimaryKeyConstraint, UniqueConstraint
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError
from sqlmodel import SQLModel, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.services import names
from opscraft.services.errors import Conflict

GONE_MEANWHILE = "another request deleted what this one changes at the same moment: reload and try again"

# "table.column[,column]" -> (request field, what to tell the user); a constraint not listed here
# names its last column and says the value is taken.
MESSAGES: dict[str, tuple[str, str]] = {
    "users.username": ("username", "a user with this username already exists (usernames ignore case)"),
    "users.email": ("email", "a user with this email already exists"),
    "scripts.name": ("name", "a live script with this name already exists: choose another name"),
    "secrets.name": (
        "name",
        "a secret with this name already exists: choose another name or update it",
    ),
    "script_versions.script_id,number": (
        "base_version",
        "the script was changed at the same time: reload it and apply your change again",
    ),
    "script_secrets.script_id,secret_id": ("secret_id", "this secret is already attached to this script"),
    "inventories.name": ("name", "an inventory with this name already exists: choose another name"),
    # Two saves of new content at once: both read version n (SQLite has no row lock to make the
    # second wait), and the second to write version n + 1 is told (the field of a stale
    # `base_content_sha256` too), not a 409 on `number`, which no request sends.
    "inventory_versions.inventory_id,number": (
        "content",
        "the inventory was changed at the same time: reload it and apply your change again",
    ),
    "app_settings.key": ("body", "the setting was changed at the same time: reload and try again"),
    # Indexes on (scope, name_key): services/names.py.
    "schedules.script_id,name_key": ("name", names.SCHEDULE_TAKEN),
    "webhook_triggers.script_id,name_key": ("name", names.WEBHOOK_TAKEN),
    "api_tokens.user_id,name_key": ("name", names.TOKEN_TAKEN),
    "notification_channels.name_key": ("name", names.CHANNEL_TAKEN),
}
FOREIGN_KEY_MESSAGE = "something this refers to was deleted at the same time: reload and try again"
# Referred table -> what to tell the user when the row a field refers to was deleted meanwhile; a
# table not listed gets FOREIGN_KEY_MESSAGE.
GONE_MESSAGES: dict[str, str] = {
    "secrets": "the vault secret was deleted at the same time: choose another one",
}
SQLSTATE_UNIQUE = "23505"
SQLSTATE_FOREIGN_KEY = "23503"


@cache
def _constraints() -> dict[str, tuple[str, tuple[str, ...]]]:
    """Constraint or index name (as PostgreSQL reports it) -> (table, columns), for unique ones."""
    found: dict[str, tuple[str, tuple[str, ...]]] = {}
    for table in SQLModel.metadata.tables.values():
        for index in table.indexes:
            if isinstance(index, Index) and index.unique and index.name:
                found[str(index.name)] = (table.name, index_columns(index))
        for constraint in table.constraints:
            columns = tuple(c.name for c in constraint.columns)
            if isinstance(constraint, PrimaryKeyConstraint):
                found[f"{table.name}_pkey"] = (table.name, columns)
            elif isinstance(constraint, UniqueConstraint) and constraint.name:
                found[str(constraint.name)] = (table.name, columns)
    return found


def index_columns(index: Index) -> tuple[str, ...]:
    """The columns of an index in order; an expression on one column (`lower(name)`) counts as it."""
    columns = []
    for expression in index.expressions:
        if isinstance(expression, Column):
            columns.append(expression.name)
        else:
            found = re.search(r"\((\w+)\)", str(expression))
            columns.append(found.group(1) if found else str(expression))
    return tuple(columns)


def _unique_key(exc: IntegrityError) -> str | None:
    """ "table.col[,col]" of the unique constraint `exc` violated, or None when it was another kind."""
    cause = exc.orig.__cause__ if exc.orig is not None else None
    name = getattr(cause, "constraint_name", None)
    if getattr(cause, "sqlstate", None) == SQLSTATE_UNIQUE and name in _constraints():
        table, columns = _constraints()[name]
        return f"{table}.{','.join(columns)}"
    text = str(exc.orig)
    index = re.fullmatch(r"UNIQUE constraint failed: index '(\w+)'", text)
    if index and index.group(1) in _constraints():  # SQLite, an index on an expression
        table, columns = _constraints()[index.group(1)]
        return f"{table}.{','.join(columns)}"
    if text.startswith("UNIQUE constraint failed: "):  # SQLite: "t.a, t.b"
        qualified = [part.strip() for part in text.removeprefix("UNIQUE constraint failed: ").split(",")]
        table = qualified[0].split(".", 1)[0]
        return f"{table}.{','.join(part.split('.', 1)[-1] for part in qualified)}"
    return None


def _is_foreign_key(exc: IntegrityError) -> bool:
    cause = exc.orig.__cause__ if exc.orig is not None else None
    return getattr(cause, "sqlstate", None) == SQLSTATE_FOREIGN_KEY or "FOREIGN KEY constraint failed" in str(
        exc.orig
    )


def conflict_for(exc: IntegrityError, messages: Mapping[str, str] | None = None) -> Conflict | None:
    """The `Conflict` for a unique or foreign key violation (`details` names the field), else None.

    `messages` overrides the message of `MESSAGES` for one call ("table.column" -> message).
    """
    key = _unique_key(exc)
    if key is not None:
        column = key.rsplit(",", 1)[-1].rsplit(".", 1)[-1]
        field, message = MESSAGES.get(key, (column, f"{column}: this value is already taken"))
        message = (messages or {}).get(key, message)
        return Conflict(message, details=[{"field": field, "message": message}])
    if _is_foreign_key(exc):
        return Conflict(FOREIGN_KEY_MESSAGE)
    return None


Reference = tuple[Column[Any], Column[Any], object]  # (referring column, referred column, value)


def _references(session: AsyncSession) -> list[Reference]:
    """(referring column, referred column, value) of each foreign key set on the rows the session
    is about to write (new or changed): taken before the flush, as a failed flush forgets them."""
    found: list[Reference] = []
    for row in (*session.new, *session.dirty):
        state = sa_inspect(row)
        for table in state.mapper.tables:
            for key in table.foreign_keys:
                value = state.dict.get(state.mapper.get_property_by_column(key.parent).key)
                if value is not None:
                    found.append((key.parent, key.column, value))
    return found


async def _gone(session: AsyncSession, references: list[Reference]) -> Conflict | None:
    """The `Conflict` naming the first field of `references` whose row no longer exists, if any."""
    for parent, column, value in references:
        if (await session.exec(select(column).where(column == value))).first() is None:
            message = GONE_MESSAGES.get(column.table.name, FOREIGN_KEY_MESSAGE)
            return Conflict(f"{parent.name}: {message}", details=[{"field": parent.name, "message": message}])
    return None


async def flush(session: AsyncSession, messages: Mapping[str, str] | None = None) -> None:
    """`session.flush()`; a violated unique or foreign key, or a row deleted meanwhile, rolls back
    and raises `Conflict`."""
    references = _references(session)
    try:
        await session.flush()
    except IntegrityError as exc:
        await _raise_conflict(session, exc, messages, references)
    except StaleDataError:
        await _raise_gone_meanwhile(session)


async def commit(session: AsyncSession, messages: Mapping[str, str] | None = None) -> None:
    """`session.commit()`; a violated unique or foreign key, or a row deleted meanwhile, rolls back
    and raises `Conflict`."""
    references = _references(session)
    try:
        await session.commit()
    except IntegrityError as exc:
        await _raise_conflict(session, exc, messages, references)
    except StaleDataError:
        await _raise_gone_meanwhile(session)


async def _raise_gone_meanwhile(session: AsyncSession) -> None:
    """Roll back and raise `Conflict` (`GONE_MEANWHILE`) for a `StaleDataError`: an UPDATE or
    DELETE matched no row, as another request deleted it after this one read it. Raised as a
    service error, the web UI says so next to the action as the API's 409 does (the API also
    answers any `StaleDataError` raised outside these two calls with the same 409)."""
    await session.rollback()
    raise Conflict(GONE_MEANWHILE)


async def _raise_conflict(
    session: AsyncSession,
    exc: IntegrityError,
    messages: Mapping[str, str] | None,
    references: list[Reference],
) -> None:
    await session.rollback()
    conflict = conflict_for(exc, messages)
    if conflict is None:
        raise exc
    gone = await _gone(session, references) if _is_foreign_key(exc) else None
    raise (gone or conflict) from None
