"""`Idempotency-Key` on the requests that start a run (`POST /api/v1/executions`, its `/stream`
variant, `POST /api/v1/executions/{id}/rerun`): a client that sends its request again, after a
timeout that left it not knowing whether the first one arrived, gets the run the first one
started instead of a second run.

The rules follow the IETF draft "The Idempotency-Key HTTP Header Field"
(draft-ietf-httpapi-idempotency-key-header-06) and Stripe's API, which it describes:

- the key is the client's (a UUID, say): 1 to `MAX_KEY_CHARS` visible ASCII characters, sent as
  it is (`Idempotency-Key: 8e03978e-40d5`) or as the draft's structured-field string (`"..."`);
  anything else is a 400 naming the header;
- keys are per user (two users' equal keys never meet) and held `WINDOW` from the first use, in
  the database, so every web process sees them; expired ones are swept by the history upkeep
  (`retention.run_upkeep` calls `sweep`);
- the same key with the same request (method, path and body: `fingerprint`) answers the run the
  first one started; with another request it is a 422 saying so (the draft's status for a key
  reused with another payload);
- of two such requests at once, one starts the run; the other waits up to `WAIT_SECONDS` for it
  and answers the same run, or, if the first is still starting it, 409 (the draft's status for a
  request still being processed);
- only a started run is remembered: a request refused (403, 409, 422...) leaves no key, so the
  same request may be sent again once what refused it changed. A process that died between
  writing the run and recording it leaves the key unfinished: after `LEASE` a retry starts
  anew (one duplicate at most, and only then).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from opscraft.db.engine import Database
from opscraft.db.models import IdempotencyKey
from opscraft.db.types import LT, compared, utcnow
from opscraft.services.errors import Conflict, Invalid, ServiceError

HEADER = "Idempotency-Key"
MAX_KEY_CHARS = 255  # Stripe's limit; a UUID has 36
WINDOW = timedelta(hours=24)  # as Stripe keeps keys
WAIT_SECONDS = 10.0  # how long a retry waits for the same request still starting its run
POLL_SECONDS = 0.05
LEASE = timedelta(minutes=2)  # an unfinished key older than this belongs to a request that died

KEY_RULE = f"must be 1 to {MAX_KEY_CHARS} visible ASCII characters (a UUID, say), bare or as a quoted string"


class BadKey(ServiceError):
    """An `Idempotency-Key` header that is no key (400, naming the header)."""

    status_code = 400

    def __init__(self, message: str) -> None:
        super().__init__(f"{HEADER}: {message}", details=[{"field": HEADER, "message": message}])


def read_key(value: str | None) -> str | None:
    """The key an `Idempotency-Key` header value holds (None without the header): the value as it
    is, or the string inside a structured-field string (`"abc"`, RFC 8941 section 3.3.3, with
    its `\\"` and `\\\\` escapes). `BadKey` (400) when it is empty, longer than `MAX_KEY_CHARS`,
    or holds anything but visible ASCII (a space inside is allowed, none at either end)."""
    if value is None:
        return None
    key = value.strip(" \t")
    if len(key) >= 2 and key.startswith('"') and key.endswith('"'):
        key = _unquoted(key[1:-1])
    if not key:
        raise BadKey(f"{KEY_RULE}: it is empty")
    if len(key) > MAX_KEY_CHARS:
        raise BadKey(f"{KEY_RULE}: it has {len(key)} characters")
    if not all(" " <= char <= "~" for char in key) or key != key.strip(" "):
        raise BadKey(f"{KEY_RULE}: it holds another character")
    return key


def _unquoted(inner: str) -> str:
    """The text of a structured-field string between its quotes (RFC 8941 section 3.3.3: `\\"`
    and `\\\\` the only escapes, no bare `"`); `BadKey` otherwise."""
    chars: list[str] = []
    escaped = False
    for char in inner:
        if escaped:
            if char not in '"\\':
                raise BadKey(f'{KEY_RULE}: a quoted key escapes only \\" and \\\\')
            chars.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            raise BadKey(f'{KEY_RULE}: a quoted key writes a quote as \\"')
        else:
            chars.append(char)
    if escaped:
        raise BadKey(f"{KEY_RULE}: a quoted key ends with a lone backslash")
    return "".join(chars)


def fingerprint(method: str, path: str, body: Any) -> str:
    """Hex SHA-256 of the request as a key binds it: `method`, `path` and `body` (a JSON-like
    value: the route's parsed body, so the same values sent in another order or spacing are the
    same request)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(f"{method} {path}\n{canonical}".encode()).hexdigest()


@dataclass(frozen=True)
class Outcome:
    """What a keyed request did: `execution_id`, the run; `replayed`, True when an earlier request
    with the key started it (the answer repeats that one's)."""

    execution_id: int
    replayed: bool


async def once(
    db: Database, user_id: int, key: str, request: str, start: Callable[[], Awaitable[int]]
) -> Outcome:
    """Run `start` (which starts a run and returns its id) unless user `user_id` sent `key`
    before within `WINDOW`: then that request's run, without starting one. `request` is the
    request's `fingerprint`. Raises `Invalid` (422) when the key was used for another request,
    `Conflict` (409) when a request with it is still starting its run after `WAIT_SECONDS`;
    whatever `start` raises, leaving no key (the request may be sent again)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while True:
        found = await _claim(db, user_id, key, request)
        if found is None:
            break
        if found.execution_id is not None:
            return Outcome(found.execution_id, replayed=True)
        if time.monotonic() >= deadline:
            raise Conflict(
                f"{HEADER}: a request with this key is still starting its run: send it again in a "
                "few seconds to get that run"
            )
        await asyncio.sleep(POLL_SECONDS)
    try:
        execution_id = await start()
    except BaseException:
        async with db.session() as session:
            await session.exec(
                delete(IdempotencyKey).where(*_row(user_id, key), col(IdempotencyKey.fingerprint) == request)
            )
            await session.commit()
        raise
    async with db.session() as session:
        await session.exec(
            update(IdempotencyKey).where(*_row(user_id, key)).values(execution_id=execution_id)
        )
        await session.commit()
    return Outcome(execution_id, replayed=False)


def _row(user_id: int, key: str) -> tuple[Any, ...]:
    return col(IdempotencyKey.user_id) == user_id, col(IdempotencyKey.key) == key


async def _claim(db: Database, user_id: int, key: str, request: str) -> IdempotencyKey | None:
    """None when this request now holds `key` (a new row, or one expired or left by a request
    that died, `LEASE`); else the row of the request that holds it (`execution_id` None while it
    starts its run). `Invalid` when that row is another request's."""
    now = utcnow()
    async with db.session() as session:
        session.add(
            IdempotencyKey(
                user_id=user_id, key=key, fingerprint=request, created_at=now, expires_at=now + WINDOW
            )
        )
        try:
            await session.commit()
            return None
        except IntegrityError:
            await session.rollback()
        held = (await session.exec(select(IdempotencyKey).where(*_row(user_id, key)))).first()
        if held is None:  # swept or released meanwhile: claim again
            return await _claim(db, user_id, key, request)
        stale = held.expires_at <= now or (held.execution_id is None and held.created_at < now - LEASE)
        if stale:
            # Taken over only if nobody took it first (same `created_at`).
            taken = await session.exec(
                update(IdempotencyKey)
                .where(*_row(user_id, key), col(IdempotencyKey.created_at) == held.created_at)
                .values(fingerprint=request, execution_id=None, created_at=now, expires_at=now + WINDOW)
            )
            await session.commit()
            return None if taken.rowcount == 1 else await _claim(db, user_id, key, request)
        if held.fingerprint != request:
            raise Invalid.at(
                HEADER,
                "this key was sent before with another request (method, address or body): use a new "
                "key for a new request",
            )
        return held


async def sweep(db: Database) -> int:
    """Delete every key past its `expires_at` (the history upkeep's round: `retention.run_upkeep`);
    returns how many."""
    async with db.session() as session:
        gone = await session.exec(
            delete(IdempotencyKey).where(compared(col(IdempotencyKey.expires_at), LT, utcnow()))
        )
        await session.commit()
        return int(gone.rowcount or 0)
