"""Login, token refresh with rotation, and resolving a token or UI session to a user.

Rules:
- refresh tokens rotate: each is single use, exchanged for a new pair. The tokens rotated from one
  password sign-in are a family (`RefreshToken.family_id`). A token that was already rotated and
  is presented again is a copy in someone else's hands (or the client's own replay): either way
  the family is ended at once, every refresh token of it revoked, audited as
  `auth.refresh_reused`, and the answer is 401 (RFC 6749 10.4; OAuth 2.0 Security BCP, RFC 9700
  4.14.2). A token revoked by a logout or a password change is only refused;
- a sign-in has an absolute lifetime, `OPSCRAFT_SESSION_MAX_AGE_DAYS` (default 7, as the seed's
  refresh tokens) from the password sign-in, however active it is since: a browser session
  (`user_for_session`) and a refresh-token family (no token of it expires later) alike;
- a browser's sign-in is a row (`BrowserSignIn`) its session storage names, ended there by a
  sign-out (`logout`): the session storage's copies (another web process's, Redis's when it did
  not answer at the sign-out) never bring an ended sign-in back.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, or_
from sqlmodel import col, delete, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft import runtime
from opscraft.db.models import BrowserSignIn, RefreshToken, User
from opscraft.db.types import utcnow
from opscraft.security import ratelimit
from opscraft.security.passwords import Match, hash_password, needs_rehash, password_match
from opscraft.security.ratelimit import address_key
from opscraft.security.tokens import TokenClaims, TokenError, decode_token, is_personal_token, issue_token
from opscraft.services import api_tokens, audit, user_cache
from opscraft.services.actor import Actor
from opscraft.services.errors import Forbidden, Invalid, RateLimited, Unauthorized


@dataclass(frozen=True)
class TokenPair:
    """A JWT access token and a refresh token, as a login or refresh answers them."""

    access_token: str
    refresh_token: str
    token_type: str = "bearer"


# The per-username limit is this many times the per-(username, IP) one: loose enough that
# someone guessing a user's password from one address cannot lock the user out, tight enough
# to slow guessing spread over many addresses.
USERNAME_LIMIT_FACTOR = 10


async def check_auth_rate(client_ip: str | None, username: str | None) -> None:
    """Count an attempt on an auth endpoint; `RateLimited` (429) past a limit.

    With N = `OPSCRAFT_RATE_LIMIT_AUTH` attempts a minute: N per client IP, N per (username,
    client IP), and `USERNAME_LIMIT_FACTOR` x N per username from all addresses. The client IP
    is the one the API and UI read everywhere (behind a trusted proxy, its X-Forwarded-For),
    counted as `ratelimit.address_key` says (an IPv6 address by its /64 network).
    Keying the tight username limit on the address too keeps wrong guesses from one address
    from locking the real user, signing in from another, out of the account. The username is
    counted as `authenticate_password` reads it (trimmed, any case), so ` Admin ` is `admin`.
    """
    rt = runtime.current()
    limit = rt.settings.rate_limit_auth_per_minute
    address = address_key(client_ip)
    keys = [(f"auth:ip:{address}", limit)]
    name = (username or "").strip().lower()
    if name:
        keys += [
            (f"auth:user-ip:{name}:{address}", limit),
            (f"auth:user:{name}", limit * USERNAME_LIMIT_FACTOR),
        ]
    for key, key_limit in keys:
        quota = await ratelimit.count(rt.limiter, key, key_limit)
        if quota.exceeded:
            raise RateLimited("too many authentication attempts", retry_after=quota.reset)


class SignInOver(Unauthorized):
    """A sign-in older than its absolute lifetime (`OPSCRAFT_SESSION_MAX_AGE_DAYS`)."""


def sign_in_ends(signed_in_at: datetime) -> datetime:
    """When a sign-in made at `signed_in_at` ends, however active it is: the setting
    `session_max_age_days` later (module rules)."""
    return signed_in_at + timedelta(days=runtime.current().settings.session_max_age_days)


def check_sign_in_age(signed_in_at: datetime) -> None:
    """`SignInOver` (401) when the sign-in made at `signed_in_at` has reached `sign_in_ends`."""
    if utcnow() >= sign_in_ends(signed_in_at):
        days = runtime.current().settings.session_max_age_days
        raise SignInOver(
            f"your sign-in is over {days:g} day{'s' if days != 1 else ''} old "
            "(OPSCRAFT_SESSION_MAX_AGE_DAYS): log in again"
        )


async def issue_pair(session: AsyncSession, user: User, *, family: RefreshToken | None = None) -> TokenPair:
    """A new access and refresh token for `user`; the refresh token is stored, in `family` (the
    rotated token's row) or as the first of a new family signed in now. Neither token outlives the
    sign-in (`sign_in_ends`)."""
    settings = runtime.current().settings
    assert settings.secret_key and user.id is not None
    now = utcnow()
    signed_in_at = family.signed_in_at if family else now
    left = sign_in_ends(signed_in_at) - now
    refresh, claims = issue_token(
        settings.secret_key,
        user.id,
        "refresh",
        user.token_version,
        min(timedelta(days=settings.refresh_token_expire_days), left),
        user.account_key,
    )
    family_id = family.family_id if family else claims.jti
    access, _ = issue_token(  # bound to its sign-in, which a logout with it ends (`logout`)
        settings.secret_key,
        user.id,
        "access",
        user.token_version,
        min(timedelta(minutes=settings.access_token_expire_minutes), left),
        user.account_key,
        sign_in=family_id,
    )
    row = RefreshToken(
        jti=claims.jti,
        user_id=user.id,
        family_id=family_id,
        signed_in_at=signed_in_at,
        expires_at=claims.expires_at,
    )
    session.add(row)
    return TokenPair(access, refresh)


async def authenticate_password(
    session: AsyncSession, client_ip: str | None, username: str, password: str
) -> User:
    """Check credentials; records success and failure in the audit trail. Raises Unauthorized,
    or `RateLimited` (429) past the auth rate limits (`check_auth_rate`: every attempt counts,
    whichever door it came through: the API's login, the login page, the desktop's).

    `username` ignores case and surrounding whitespace (no username has any), the same in the
    API and the login page: a name pasted with a trailing space or newline signs in."""
    await check_auth_rate(client_ip, username)
    username = username.strip()
    by_name = select(User).where(func.lower(User.username) == username.lower())
    user = (await session.exec(by_name)).first()
    match = await asyncio.to_thread(password_match, password, user.hashed_password if user else None)
    ok = match is not None
    if not ok or user is None or not user.is_active:
        reason = "unknown user" if user is None else ("inactive" if ok else "bad password")
        audit.record(
            session,
            Actor(None, client_ip),
            "auth.login_failed",
            "user",
            user.id if user else None,
            actor_name=username[:64],
            reason=reason,
        )
        await session.commit()
        if reason == "inactive":  # only said to someone who knows the password
            raise Unauthorized("this account is deactivated: ask an administrator to reactivate it")
        raise Unauthorized("incorrect username or password")
    if match is Match.as_typed or needs_rehash(user.hashed_password):
        user.hashed_password = await asyncio.to_thread(hash_password, password)
    user.last_login_at = utcnow()
    audit.record(session, Actor(user, client_ip), "auth.login", "user", user.id)
    return user


async def login(session: AsyncSession, client_ip: str | None, username: str, password: str) -> TokenPair:
    """Log in with username and password from `client_ip` and issue a token pair (committed).

    Raises Unauthorized (401) for wrong credentials or a deactivated account, RateLimited (429) past the
    auth rate limits; attempts are audited (authenticate_password).
    """
    user = await authenticate_password(session, client_ip, username, password)
    pair = await issue_pair(session, user)
    await session.commit()
    return pair


REFRESH_REUSED = (
    "this refresh token was already exchanged for a new one: presented again, it may have been "
    "stolen, so every refresh token of this sign-in is revoked: log in again"
)


async def _end_family(session: AsyncSession, reused: RefreshToken, client_ip: str | None) -> None:
    """Revoke every refresh token of `reused`'s family and audit it (`auth.refresh_reused`), in a
    transaction of its own (module rules)."""
    ended = await session.exec(
        update(RefreshToken)
        .where(col(RefreshToken.family_id) == reused.family_id, col(RefreshToken.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    )
    audit.record(
        session,
        Actor(None, client_ip),
        "auth.refresh_reused",
        "user",
        reused.user_id,
        family_id=reused.family_id,
        refresh_tokens_revoked=int(ended.rowcount or 0),
    )
    await session.commit()


async def refresh(session: AsyncSession, token: str, client_ip: str | None = None) -> TokenPair:
    """Exchange a refresh token for a new pair of the same family; the presented token is revoked
    (rotation). `Unauthorized` (401) for a token that is invalid, expired, revoked, of a sign-in past
    `OPSCRAFT_SESSION_MAX_AGE_DAYS` (`SignInOver`) or of an account no longer valid; a token
    already rotated ends its whole family first (module rules; `client_ip` goes to the audit).
    Counts against the auth rate limit per client IP (`check_auth_rate`, `RateLimited`)."""
    await check_auth_rate(client_ip, None)
    settings = runtime.current().settings
    assert settings.secret_key
    try:
        claims = decode_token(settings.secret_key, token, "refresh")
    except TokenError as exc:
        fix = "send the refresh_token of the login response" if exc.reason == "wrong_type" else "log in again"
        raise Unauthorized(f"{exc}: {fix}") from None
    now = utcnow()
    rotated = await session.exec(
        update(RefreshToken)
        .where(col(RefreshToken.jti) == claims.jti, col(RefreshToken.revoked_at).is_(None))
        .values(revoked_at=now, rotated_at=now)
    )
    row = await session.get(RefreshToken, claims.jti)
    if rotated.rowcount != 1 or row is None:
        if row is not None and row.rotated_at is not None:
            await _end_family(session, row, client_ip)
            raise Unauthorized(REFRESH_REUSED)
        await session.rollback()
        raise Unauthorized("the refresh token has been used or revoked: log in again")
    user = await session.get(User, claims.user_id)
    if not _still_valid(user, claims.version, claims.account_key):
        await session.rollback()
        raise Unauthorized("refresh token is no longer valid: log in again")
    assert user is not None
    try:
        check_sign_in_age(row.signed_in_at)
    except SignInOver:
        await session.commit()  # the token stays revoked: it can never be exchanged
        raise
    pair = await issue_pair(session, user, family=row)
    await session.commit()
    return pair


NOT_YOUR_REFRESH_TOKEN = (
    "is not a refresh token of yours: send the refresh_token your login (or last refresh) returned"
)


async def logout(session: AsyncSession, actor: Actor, refresh_token: str | None) -> None:
    """End the caller's sign-in: revoke `refresh_token` when given (an expired one has nothing
    left to revoke); without one, every refresh token of the sign-in the access token belongs to
    (`Actor.sign_in`: its family). The access token lives on until it expires
    (`ACCESS_TOKEN_EXPIRE_MINUTES`). A logout without a body ended nothing: its refresh token
    went on refreshing for 7 days after the answer "logged out". An access token issued before
    tokens named their sign-in ends nothing that way: send its `refresh_token`.

    Nothing is ever answered "logged out" when nothing was: `Forbidden` (403) for a request made
    with a personal access token (logging out does not end it: it is revoked on the API tokens
    page or with `DELETE /api/v1/tokens/{id}`); `Invalid` (422 naming `refresh_token`) for a
    `refresh_token` that is not one of the caller's (malformed, another key's or user's, an access
    token), which would otherwise stay valid for days.

    A browser's sign-out (the actor `user_for_session` gave: `Actor.sign_in` is its
    `BrowserSignIn`) ends that sign-in in the database, and no other of the user's."""
    settings = runtime.current().settings
    if actor.token_id is not None:
        raise Forbidden(
            "an API token is not ended by logging out: revoke it on the API tokens page "
            "or with DELETE /api/v1/tokens/{id} (from a password sign-in)"
        )
    if refresh_token and settings.secret_key and actor.user_id is not None:
        claims: TokenClaims | None = None
        try:
            claims = decode_token(settings.secret_key, refresh_token, "refresh")
        except TokenError as exc:
            foreign = exc.reason != "expired"
        else:
            foreign = claims.user_id != actor.user_id
        if foreign:
            raise Invalid(
                f"refresh_token: {NOT_YOUR_REFRESH_TOKEN}",
                details=[{"field": "refresh_token", "message": NOT_YOUR_REFRESH_TOKEN}],
            )
        if claims:
            await session.exec(
                update(RefreshToken).where(col(RefreshToken.jti) == claims.jti).values(revoked_at=utcnow())
            )
    elif not refresh_token and actor.sign_in and actor.user_id is not None:
        await end_sign_ins(session, actor.user_id, actor.sign_in)
    audit.record(session, actor, "auth.logout", "user", actor.user_id)
    await session.commit()


async def end_sign_ins(session: AsyncSession, user_id: int, sign_in: str | None = None) -> None:
    """End (not committed) the sign-ins of user `user_id` still going: the one named `sign_in` (a
    refresh-token family or a `BrowserSignIn` id), or every one of them when None. Their refresh
    tokens are revoked and their browser sign-ins ended, so no copy of a token or a session
    storage carries them on."""
    now = utcnow()
    tokens = [col(RefreshToken.user_id) == user_id, col(RefreshToken.revoked_at).is_(None)]
    browsers = [col(BrowserSignIn.user_id) == user_id, col(BrowserSignIn.ended_at).is_(None)]
    if sign_in is not None:
        tokens.append(col(RefreshToken.family_id) == sign_in)
        browsers.append(col(BrowserSignIn.id) == sign_in)
    await session.exec(update(RefreshToken).where(*tokens).values(revoked_at=now))
    await session.exec(update(BrowserSignIn).where(*browsers).values(ended_at=now))


async def user_for_access_token(session: AsyncSession, token: str) -> User:
    """The user behind a JWT access token, if the token is valid and so is its user (active, same
    token version); the row may come from `user_cache` (at most `TTL_SECONDS` old, dropped
    when the user changes). Raises Unauthorized."""
    claims = _access_claims(token)
    user = await user_cache.get(session.bind, claims.user_id, lambda user_id: session.get(User, user_id))
    return _valid_user(user, claims.version, claims.account_key)


def _access_claims(token: str) -> TokenClaims:
    """The claims of a valid JWT access token (`decode_token`, memoized). Raises Unauthorized
    saying what to do (refresh an expired one, send the access token and not the refresh token)."""
    settings = runtime.current().settings
    assert settings.secret_key
    try:
        return decode_token(settings.secret_key, token, "access")
    except TokenError as exc:
        fix = {
            "expired": "get a new one (POST /api/v1/auth/refresh) or log in again",
            "wrong_type": "send the access_token of the login response",
        }.get(exc.reason, "log in again")
        raise Unauthorized(f"{exc}: {fix}") from None


async def actor_for_bearer(session: AsyncSession, token: str, client_ip: str | None) -> Actor:
    """The actor behind an `Authorization: Bearer` value: a JWT access token or a personal
    access token (`ocp_...`, services/api_tokens.py). Raises Unauthorized."""
    if is_personal_token(token):
        return await api_tokens.authenticate(session, token, client_ip)
    user = await user_for_access_token(session, token)
    return Actor(user, client_ip, sign_in=_access_claims(token).sign_in or None)


async def start_browser_sign_in(session: AsyncSession, user: User) -> BrowserSignIn:
    """Record a password sign-in of a browser as `user` (committed): the row whose `id` (a random
    32-character token) the browser's session storage keeps, with the account's `token_version`
    and `account_key` as they are now (`user_for_session` compares them). The user's sign-ins that
    ended, or were made over twice `OPSCRAFT_SESSION_MAX_AGE_DAYS` ago, are deleted on the way (a
    browser coming back within that time is still told its sign-in reached its age: `SignInOver`;
    after it, that its session ended)."""
    assert user.id is not None
    now = utcnow()
    too_old = now - 2 * timedelta(days=runtime.current().settings.session_max_age_days)
    await session.exec(
        delete(BrowserSignIn).where(
            col(BrowserSignIn.user_id) == user.id,
            or_(col(BrowserSignIn.ended_at).is_not(None), col(BrowserSignIn.signed_in_at) <= too_old),
        )
    )
    row = BrowserSignIn(
        id=secrets.token_urlsafe(24),
        user_id=user.id,
        signed_in_at=now,
        token_version=user.token_version,
        account_key=user.account_key,
    )
    session.add(row)
    await session.commit()
    return row


async def user_for_session(session: AsyncSession, sign_in_id: str, client_ip: str | None) -> Actor:
    """The actor (from `client_ip`) behind a browser session holding the sign-in `sign_in_id`
    (`start_browser_sign_in`),
    if it still holds: not ended by a sign-out (`logout`), younger than `OPSCRAFT_SESSION_MAX_AGE_DAYS`,
    and its account the same (`account_key`: a deleted account's id may name a later one), active,
    at the same token version (a password change moves it on). The actor's `sign_in` is the row's
    id (a sign-out ends it). One query. Raises `SignInOver` past that age, `Unauthorized`
    otherwise."""
    found = (
        await session.exec(
            select(BrowserSignIn, User)
            .join(User, col(User.id) == col(BrowserSignIn.user_id))
            .where(col(BrowserSignIn.id) == sign_in_id)
        )
    ).first()
    if found is None or found[0].ended_at is not None:
        raise Unauthorized("your session has ended: log in again")
    sign_in, user = found
    check_sign_in_age(sign_in.signed_in_at)
    valid = _valid_user(user, sign_in.token_version, sign_in.account_key)
    return Actor(valid, client_ip, sign_in=sign_in.id)


def _still_valid(user: User | None, version: int, account_key: str) -> bool:
    return (
        user is not None
        and user.is_active
        and user.token_version == version
        and secrets.compare_digest(user.account_key, account_key)
    )


def _valid_user(user: User | None, version: int, account_key: str) -> User:
    if not _still_valid(user, version, account_key):
        raise Unauthorized("your session has ended: log in again")
    assert user is not None
    return user
