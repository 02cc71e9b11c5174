"""A short-lived, per-process cache of the user row behind an access token (issue 15).

Every authenticated API request and WebSocket checked its access token against the `users` row
(active, same token version), one ORM round trip each, a large part of a run's server CPU. The
row is now kept here for `TTL_SECONDS`; the checks themselves still run on every request
(`services.auth.user_for_session`), on the cached values.

Invalidation: any ORM update or delete of a `User` (role, deactivation, password change, token
version bump) drops its entry at flush and again after the commit, and an entry read before the
latest change of its user is never stored, so a change is seen at once by every later request
of this process. Another web process sees it within `TTL_SECONDS` (there is no cross-process
signal; the same bound as its own cache's age).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, object_session

from opscraft.db import stored_shapes
from opscraft.db.models import User
from opscraft.db.rows import new_row
from opscraft.services.shared_loads import SharedLoads

TTL_SECONDS = 1.0
MAX_ENTRIES = 10_000
_CHANGED_KEY = "opscraft_changed_users"

# Keyed by (database engine, user id): one process may serve several databases (the tests do).
# Each entry: when it goes stale, the row's values, what it held that could not be read.
_entries: dict[tuple[object, int], tuple[float, dict[str, Any], dict[str, Any]]] = {}
_changed_at: dict[int, float] = {}
_loading: SharedLoads[tuple[User | None, tuple[dict[str, Any], dict[str, Any]] | None]] = SharedLoads()


def forget(user_id: int) -> None:
    """Drop `user_id`'s entries; reads that began before now will not store theirs."""
    for key in [key for key in _entries if key[1] == user_id]:
        del _entries[key]
    _changed_at[user_id] = time.monotonic()


def clear() -> None:
    """Drop every entry (tests, and a new database behind the same process)."""
    _entries.clear()
    _changed_at.clear()
    _loading.clear()


async def get(database: object, user_id: int, load: Callable[[int], Awaitable[User | None]]) -> User | None:
    """The user `user_id`: from the cache when fresh, as a detached copy (never attached to a
    session: services reload a user they change), else the row `load(user_id)` returns, which
    is then cached. None when no such user exists (not cached). `database` identifies the
    database (its engine). A copy says what the row held that could not be read as the row
    does (a stored role none of today's, read as viewer: db/stored_shapes.py).

    Concurrent misses share one load: a caller that finds a load of the same user on the same
    loop, begun after that user's latest change, waits for it and gets a copy of its row
    (without it, a burst of requests on 32 connections loaded the user 32 times each time the
    entry went stale: a tenth of the event loop's time in a 1,000-run burst, issue 15;
    `services.shared_loads`). A load that fails leaves each waiter to load for itself."""
    now = time.monotonic()
    key = (database, user_id)
    cached = _entries.get(key)
    if cached is not None and cached[0] > now:
        return _copy(cached[1], cached[2])

    async def load_row() -> tuple[User | None, tuple[dict[str, Any], dict[str, Any]] | None]:
        user = await load(user_id)
        return user, None if user is None else (user.model_dump(), stored_shapes.unread(user))

    (user, values), shared = await _loading.get(key, _changed_at.get(user_id, -1.0), load_row)
    if values is None:
        return None
    if shared:
        return _copy(*values)
    if _changed_at.get(user_id, 0.0) < now:
        if len(_entries) >= MAX_ENTRIES:
            _entries.clear()
        _entries[key] = (now + TTL_SECONDS, *values)
    return user


def _copy(values: dict[str, Any], unread: dict[str, Any]) -> User:
    copy = new_row(User, **values)  # a copy of a row read from the database: valid
    stored_shapes.mark_unread(copy, unread)
    return copy


@event.listens_for(User, "after_update")
@event.listens_for(User, "after_delete")
def _user_changed(_mapper: Any, _connection: Any, target: User) -> None:
    if target.id is None:
        return
    forget(target.id)
    session = object_session(target)
    if session is not None:
        session.info.setdefault(_CHANGED_KEY, set()).add(target.id)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    for user_id in session.info.pop(_CHANGED_KEY, ()):
        forget(user_id)


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(_CHANGED_KEY, None)
