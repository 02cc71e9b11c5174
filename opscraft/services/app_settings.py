"""Run-time settings an admin can change (stored in `app_settings`).

`get` answers from a per-process cache of at most `CACHE_SECONDS` (issue 15: the local-runner
checks read a setting on every submission). Any ORM insert, update or delete of an `AppSetting`
empties it at flush, after the commit and after a rollback, and a value read before the latest
change is never stored, so a change made in this process is seen at once by every later read
here; another web process sees it within `CACHE_SECONDS` (the user cache's bound,
services/user_cache.py).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session, object_session
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft import runtime
from opscraft.config import DEFAULT_WARM_POOL_SIZE, MAX_WARM_POOL_SIZE
from opscraft.db.models import AppSetting, Role
from opscraft.db.types import utcnow
from opscraft.services import audit, conflicts
from opscraft.services.actor import Actor
from opscraft.services.errors import Invalid, sent_kind
from opscraft.services.permissions import Permission, require
from opscraft.services.shared_loads import SharedLoads

# key -> (type, default). Only these keys exist.
KNOWN: dict[str, tuple[type, Any]] = {
    "registration_open": (bool, False),
    "local_runner_enabled": (bool, False),
    # The lowest role that may run on the local runner (viewer, operator or admin).
    "local_runner_role": (str, "operator"),
    # Personal access tokens must have an expiry date (services/api_tokens.py).
    "api_tokens_require_expiry": (bool, False),
    # Output retention (services/retention.py): 0 keeps output for ever.
    "output_retention_days": (int, 0),
    "output_retention_gb": (float, 0.0),
    # With a retention period: also delete the execution rows (not their audit events) past it.
    "retention_delete_executions": (bool, False),
    # Warm Docker containers per isolation profile used recently (execution/warm_pool.py); each
    # worker applies it at its next heartbeat, unless OPSCRAFT_WARM_POOL_SIZE is set there.
    "warm_pool_size": (int, DEFAULT_WARM_POOL_SIZE),
}
# Numeric settings: inclusive (lowest, highest) values; 0 means "off" for each of them.
RANGES: dict[str, tuple[float, float]] = {
    "output_retention_days": (0, 36_500),
    "output_retention_gb": (0, 1_000_000),
    "warm_pool_size": (0, MAX_WARM_POOL_SIZE),
}
# Bytes in one of output_retention_gb's GB (services/retention.py caps `int(gb * GB)` bytes).
GB = 1024**3
# Settings with a fixed set of values.
CHOICES: dict[str, tuple[str, ...]] = {"local_runner_role": tuple(role.value for role in Role)}


log = logging.getLogger(__name__)

CACHE_SECONDS = 1.0
_CHANGED_KEY = "opscraft_changed_settings"
# (database engine, key) -> (expires at, value): one process may serve several databases (tests).
_cache: dict[tuple[object, str], tuple[float, Any]] = {}
_changed_at = 0.0
_loading: SharedLoads[Any] = SharedLoads()


async def get(session: AsyncSession, key: str) -> Any:
    """The setting `key` (one of `KNOWN`), its default when never set; cached (module docstring),
    concurrent misses sharing one read begun after the latest change (`services.shared_loads`)."""
    default = KNOWN[key][1]
    now = time.monotonic()
    cache_key = (session.bind, key)
    cached = _cache.get(cache_key)
    if cached is not None and cached[0] > now:
        return cached[1]

    async def read() -> Any:
        row = await session.get(AppSetting, key)
        return default if row is None or row.value is None else _stored(key, row.value)

    # Concurrent misses (a burst's submissions, each reading local_runner_role) share one read.
    value, shared = await _loading.get(cache_key, _changed_at, read)
    if not shared and _changed_at < now:
        _cache[cache_key] = (now + CACHE_SECONDS, value)
    return value


def forget() -> None:
    """Empty the cache; reads that began before now will not store their values."""
    global _changed_at
    _cache.clear()
    _changed_at = time.monotonic()


@event.listens_for(AppSetting, "after_insert")
@event.listens_for(AppSetting, "after_update")
@event.listens_for(AppSetting, "after_delete")
def _setting_changed(_mapper: Any, _connection: Any, target: AppSetting) -> None:
    forget()
    session = object_session(target)
    if session is not None:
        session.info[_CHANGED_KEY] = True


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_rollback")
def _transaction_ended(session: Session) -> None:
    if session.info.pop(_CHANGED_KEY, False):
        forget()


async def get_all(session: AsyncSession) -> dict[str, Any]:
    """Every known app setting, key -> value (stored value, else its default)."""
    return {key: await get(session, key) for key in KNOWN}


_KIND_WORDS = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}


def _number_text(value: float) -> str:
    """`16`, `1000000`, `0.5`: a bound as people write it (`:g` would print 1e+06)."""
    return str(int(value)) if float(value).is_integer() else str(value)


def problem(key: str, value: Any) -> str | None:
    """What is wrong with `value` for the known setting `key` (mistyped, out of range, not one of
    its choices), or None: the one wording of each bound, for the API's schema and the settings
    page alike."""
    kind, _ = KNOWN[key]
    number = isinstance(value, int | float) and not isinstance(value, bool)
    fits = {
        bool: isinstance(value, bool),
        int: number and isinstance(value, int),
        float: number,
        str: isinstance(value, str),
    }
    if not fits[kind]:
        return f"must be {_KIND_WORDS[kind]} (it is {sent_kind(value)})"
    if key in RANGES:
        low, high = RANGES[key]
        if not low <= value <= high:
            return f"must be between {_number_text(low)} and {_number_text(high)} (0 turns it off)"
    if key == "output_retention_gb" and value > 0 and int(value * GB) == 0:
        # A cap of no byte at all: retention would remove every finished run's output (0 is off).
        return "must be 0 (no cap) or at least one byte, 0.000000001 GB: a smaller cap keeps no output at all"
    if key in CHOICES and value not in CHOICES[key]:
        return f"must be one of: {', '.join(CHOICES[key])}"
    return None


def _checked(values: dict[str, Any]) -> dict[str, Any]:
    """`values` as their settings' types. `Invalid` naming every unknown key, or else every
    mistyped or out-of-range value (one detail per field, so a form marks each of them)."""
    unknown = sorted(key for key in values if key not in KNOWN)
    if unknown:
        raise Invalid(
            f"unknown setting(s) {', '.join(map(repr, unknown))}; known settings: {', '.join(sorted(KNOWN))}",
            details=[{"field": key, "message": "unknown setting"} for key in unknown],
        )
    problems = {key: problem(key, value) for key, value in values.items()}
    details = [{"field": key, "message": message} for key, message in problems.items() if message]
    if details:
        summary = "; ".join(f"setting {d['field']!r} {d['message']}" for d in details)
        raise Invalid(summary, details=details)
    return {key: _typed(key, value) for key, value in values.items()}


def _stored(key: str, value: Any) -> Any:
    """The stored `value` of setting `key` as its type, or its default, logged, when today's
    `problem` refuses it (an older version's or a manual edit's row: `"false"` as text read as
    true by bool(), `"abc"` a 500 of every read). A save of the setting replaces it."""
    said = _unread(key, value)
    if said is None:
        return _typed(key, value)
    log.warning("setting %s: %s", key, said)
    return KNOWN[key][1]


def _unread(key: str, value: Any) -> str | None:
    """Why the stored `value` of setting `key` is not read (`problem`) and what is read in its
    place, None when it is read: `the stored value 'true' must be true or false: False is used;
    save the setting to replace it`."""
    refused = problem(key, value)
    if refused is None:
        return None
    return f"the stored value {value!r} {refused}: {KNOWN[key][1]!r} is used; save the setting to replace it"


async def unreadable(session: AsyncSession, actor: Actor) -> dict[str, str]:
    """Setting -> what its stored row holds that today's rules refuse and what is used instead
    (as `get` logs it: an older version's or a manual edit's row), for the note next to its
    field on the settings page; {} when every stored setting reads. Admins only (Forbidden)."""
    require(actor.user, Permission.manage_settings)
    rows = await session.exec(select(AppSetting).where(col(AppSetting.key).in_(list(KNOWN))))
    found = {row.key: _unread(row.key, row.value) for row in rows.all() if row.value is not None}
    return {key: said for key, said in found.items() if said is not None}


async def _check_retention_period(session: AsyncSession, values: dict[str, Any]) -> None:
    """Refuse a save (checked `values`) that leaves `retention_delete_executions` on with no
    retention period (`output_retention_days` 0, sent or stored): retention deletes rows only past
    that period (services/retention.py; docs/executions.md), so the switch would silently delete
    nothing. `Invalid` naming the sent field of the pair (the switch when it was turned on). A
    save touching neither leaves an older version's such pair alone (it deletes nothing)."""
    pair = ("retention_delete_executions", "output_retention_days")
    if not any(key in values for key in pair):
        return
    delete_rows, days = [values[key] if key in values else await get(session, key) for key in pair]
    if not delete_rows or days > 0:
        return
    if values.get("retention_delete_executions"):
        field = "retention_delete_executions"
        message = "needs a retention period: set output_retention_days above 0 (with 0 no run is deleted)"
    else:
        field = "output_retention_days"
        message = (
            "0 keeps runs for ever, but retention_delete_executions is on and deletes runs past this period: "
            "turn retention_delete_executions off too, or keep a period above 0"
        )
    raise Invalid(f"setting {field!r} {message}", details=[{"field": field, "message": message}])


def _typed(key: str, value: Any) -> Any:
    """`value` as setting `key`'s type; a negative zero (`-0.0`, which the range allows) is zero,
    not stored and shown as `-0.0`."""
    typed = KNOWN[key][0](value)
    return 0.0 if isinstance(typed, float) and typed == 0 else typed


def _is_default(key: str, value: Any) -> bool:
    """Whether `value` (checked) is the default of setting `key`, type included (a 0 is no False)."""
    default = KNOWN[key][1]
    return type(value) is type(default) and value == default


async def update(session: AsyncSession, actor: Actor, values: dict[str, Any]) -> dict[str, Any]:
    """Change several settings at once (all or none); returns every setting. `Invalid` (422)
    names every bad value at once, or `body` when `values` is empty (nothing to change, as a
    user's or secret's update: `partial.at_least_one_field`); `Forbidden` (403) for anyone but
    an admin. A value equal to what the setting reads (its stored value, or its default when
    never set) writes and audits nothing."""
    require(actor.user, Permission.manage_settings)
    if not values:
        raise Invalid(
            "nothing to change: send at least one setting",
            details=[{"field": "body", "message": f"send at least one of {', '.join(KNOWN)}"}],
        )
    values = _checked(values)
    await _check_retention_period(session, values)
    changed: set[str] = set()
    for key, value in values.items():
        row = await session.get(AppSetting, key)
        if row is None and _is_default(key, value):
            continue  # never set and sent as the default it reads as: no change to write or audit
        if row is None:
            session.add(AppSetting(key=key, value=value))
        elif row.value != value or problem(key, row.value) is not None:  # a stored 1 is no True
            row.value = value
            row.updated_at = utcnow()
        else:
            continue
        changed.add(key)
        audit.record(session, actor, "setting.update", "setting", key, value=value)
    await conflicts.commit(session)
    if "local_runner_enabled" in changed:
        await _runners_changed()
    return await get_all(session)


async def _runners_changed() -> None:
    """The local runner was turned on or off: the execution client has this process's worker,
    if any, offer what it now can at once and reads the offered runners again, so a run sent
    right after finds the local runner (or is refused without it); workers of other processes
    follow at their next heartbeat (`OPSCRAFT_WORKER_HEARTBEAT_SECONDS`): they read the setting
    there (`ExecutionClient.runners_changed`)."""
    try:
        client = runtime.current().executions
    except RuntimeError:  # no runtime (a service called on its own): nothing offers anything
        return
    if client is not None:
        await client.runners_changed()
