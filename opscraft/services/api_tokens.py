"""Personal access tokens for CI pipelines and scripts: create (shown once), list, revoke, use.

Rules:
- any signed-in user creates tokens for themselves, with a role no higher than their own and an
  expiry (required when the admin setting `api_tokens_require_expiry` is on);
- the token is returned once; only its SHA-256 is stored (`security.tokens`);
- a token authenticates as its owner with the lower of the token's and the owner's current role,
  and stops at once when the owner is deactivated or deleted, the token revoked or expired;
- an admin's password reset of the owner, and the owner's deactivation, revoke every token of
  theirs (`revoke_all_of`): a token minted with a password someone else knew ends with it, and
  reactivating an account does not bring its old tokens back; a role change revokes none (each
  request uses the owner's current role), nor does the owner's own password change;
- tokens cannot manage tokens (a leaked token cannot mint a longer-lived one): that needs a
  password sign-in; admins list and revoke everyone's.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db import stored_shapes
from opscraft.db.models import ApiToken, Role, User
from opscraft.db.types import utcnow
from opscraft.security.tokens import hash_personal_token, new_personal_token
from opscraft.services import app_settings, audit, conflicts, names
from opscraft.services.actor import Actor
from opscraft.services.errors import Forbidden, Invalid, NotFound, Unauthorized
from opscraft.services.invisible import canonical, name_problem
from opscraft.services.permissions import ROLE_RANK, Permission, can, lower_role

NAME_MAX = 64
MAX_LIFETIME = timedelta(days=3650)
# `last_used_at` is written at most this often per token, so a busy CI job does not write a
# row on every request.
LAST_USED_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed (never its value) with its owner's username and current role."""

    token: ApiToken
    username: str
    owner_role: Role | str

    @property
    def acts_as(self) -> Role:
        """The role a request made with the token gets now: the lower of the token's and its
        owner's current role (`authenticate`). A demoted owner's `admin` token read "admin" on
        the page and in the list, while it acted as the owner's new role."""
        return lower_role(self.token.role, self.owner_role)

    @property
    def active(self) -> bool:
        """True when the token is neither revoked nor expired now."""
        now = utcnow()
        t = self.token
        return t.revoked_at is None and (t.expires_at is None or t.expires_at > now)


def _signed_in(actor: Actor) -> User:
    user = actor.user
    if user is None or not user.is_active:
        raise Unauthorized("authentication required")
    if actor.token_id is not None:
        raise Forbidden("API tokens cannot manage API tokens: sign in with your password")
    return user


async def _still_signed_in(session: AsyncSession, user: User) -> None:
    """After the new token's row is written: `Unauthorized` (rolled back) when `user`'s sign-in
    ended meanwhile (a password reset, a deactivation: `token_version` moved on, or the account is
    gone). The owner's row is read `FOR SHARE`, so on PostgreSQL a reset still in progress (its
    `UPDATE` of the row) is waited for, while mints of one owner at once do not wait for each
    other (`FOR UPDATE` after the insert's foreign-key lock deadlocked them); SQLite has one
    writer at a time. Without this, a token minted by a request that
    signed in just before a reset was stored after the reset revoked the owner's tokens, and
    outlived it (the rule: docs/api.md, *Accounts and tokens*)."""
    stmt = select(User.token_version, col(User.is_active)).where(col(User.id) == user.id)
    current = (await session.exec(stmt.with_for_update(read=True))).first()
    if current is None or not current[1] or current[0] != user.token_version:
        await session.rollback()
        raise Unauthorized("your session ended while the token was being created: sign in again")


async def create(
    session: AsyncSession,
    actor: Actor,
    name: str,
    *,
    role: Role | str | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """A new token of the caller: (the stored row, the token value to show once).

    `role` defaults to the caller's; a higher one is a 422 (field `role`). `expires_at` must be
    in the future and within ten years; None means no expiry, refused (422, field `expires_at`)
    while the admin setting `api_tokens_require_expiry` is on.
    """
    user = _signed_in(actor)
    name = canonical(name).strip()
    if len(name) > NAME_MAX:
        raise Invalid.at("name", f"must be at most {NAME_MAX} characters, not {len(name)}")
    problem = name_problem(name)
    if problem:
        raise Invalid.at("name", problem)
    try:
        wanted = Role(role) if role is not None else Role(user.role)
    except ValueError:
        raise Invalid.at("role", "must be viewer, operator or admin") from None
    if ROLE_RANK[wanted] > ROLE_RANK[Role(user.role)]:
        raise Invalid.at("role", f"may not be higher than your own role ({user.role})")
    now = utcnow()
    if expires_at is None:
        if await app_settings.get(session, "api_tokens_require_expiry"):
            raise Invalid.at("expires_at", "an administrator requires every token to expire: set a date")
    else:
        if expires_at.tzinfo is None:
            raise Invalid.at("expires_at", "give a time zone (e.g. 2030-01-01T00:00:00Z)")
        if expires_at <= now:
            raise Invalid.at("expires_at", "must be in the future")
        if expires_at > now + MAX_LIFETIME:
            raise Invalid.at("expires_at", "must be within ten years")
    assert user.id is not None
    in_use = [col(ApiToken.user_id) == user.id, col(ApiToken.revoked_at).is_(None)]
    await names.check_free(session, ApiToken, name, in_use, names.TOKEN_TAKEN)
    value, digest, prefix = new_personal_token()
    row = ApiToken(
        user_id=user.id, name=name, prefix=prefix, token_hash=digest, role=wanted, expires_at=expires_at
    )
    session.add(row)
    await conflicts.flush(session)
    await _still_signed_in(session, user)
    audit.record(
        session,
        actor,
        "api_token.create",
        "api_token",
        row.id,
        name=name,
        role=wanted.value,
        expires_at=expires_at.isoformat() if expires_at else None,
    )
    await session.commit()
    await session.refresh(row)
    return row, value


async def list_tokens(
    session: AsyncSession, actor: Actor, *, all_users: bool = False, skip: int = 0, limit: int = 50
) -> tuple[list[TokenInfo], int]:
    """A page of the caller's tokens, or (admins, `all_users`) everyone's, newest first, revoked
    and expired included: (`limit` rows after the first `skip`, how many there are in all), as
    every list pages (docs/api.md). `Forbidden` for `all_users` without manage_users."""
    user = _signed_in(actor)
    conditions = []
    if all_users:
        if not can(user, Permission.manage_users):
            raise Forbidden(f"your role ({user.role}) may not list other users' tokens")
    else:
        conditions.append(col(ApiToken.user_id) == user.id)
    total = (await session.exec(select(func.count()).select_from(ApiToken).where(*conditions))).one()
    query = (
        select(ApiToken, User.username, User.role)
        .join(User, col(User.id) == col(ApiToken.user_id))
        .where(*conditions)
        .order_by(col(ApiToken.created_at).desc(), col(ApiToken.id).desc())
        .offset(skip)
        .limit(limit)
    )
    rows = await session.exec(query)
    # The owner's role as a `User` load reads it (a stored role none of today's: viewer).
    return [
        TokenInfo(token, username, stored_shapes.as_loaded(User, "role", role))
        for token, username, role in rows.all()
    ], int(total)


async def revoke(session: AsyncSession, actor: Actor, token_id: int) -> TokenInfo:
    """Revoke one of the caller's tokens (admins: anyone's); it stops working at once."""
    user = _signed_in(actor)
    row = await session.get(ApiToken, token_id)
    if row is None or (row.user_id != user.id and not can(user, Permission.manage_users)):
        raise NotFound.gone("API token")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        audit.record(
            session, actor, "api_token.revoke", "api_token", row.id, name=row.name, owner_id=row.user_id
        )
        await session.commit()
        await session.refresh(row)
    owner = await session.get(User, row.user_id)
    if owner is None:  # deleted meanwhile: its tokens went with it (ON DELETE CASCADE)
        raise NotFound.gone("API token")
    return TokenInfo(row, owner.username, owner.role)


async def revoke_all_of(session: AsyncSession, user_id: int) -> int:
    """Revoke every live token of user `user_id` in the caller's transaction (password reset,
    deactivation: module rules); the number revoked. The caller audits and commits."""
    result = await session.exec(
        update(ApiToken)
        .where(col(ApiToken.user_id) == user_id, col(ApiToken.revoked_at).is_(None))
        .values(revoked_at=utcnow())
    )
    return int(result.rowcount or 0)


async def authenticate(session: AsyncSession, token: str, client_ip: str | None) -> Actor:
    """The actor behind a personal access token; `Unauthorized` when it is unknown, revoked,
    expired or its owner is inactive. The actor's user carries the effective role (the lower of
    the token's and the owner's); records the last use at most once a minute."""
    found = (
        await session.exec(select(ApiToken).where(col(ApiToken.token_hash) == hash_personal_token(token)))
    ).first()
    now = utcnow()
    invalid = "API token is invalid or revoked: check it, or create a new one on the API tokens page"
    if found is None:
        raise Unauthorized(invalid)
    owner = await session.get(User, found.user_id)
    # Before the revocation: a deactivation revokes the owner's tokens too, and its holder is
    # better told why than that the token is revoked.
    if owner is None or not owner.is_active:
        raise Unauthorized("the owner of this API token is deactivated")
    if found.revoked_at is not None:
        raise Unauthorized(invalid)
    if found.expires_at is not None and found.expires_at <= now:
        raise Unauthorized("API token has expired: create a new one")
    if found.last_used_at is None or now - found.last_used_at >= LAST_USED_RESOLUTION:
        await session.exec(
            update(ApiToken)
            .where(col(ApiToken.id) == found.id)
            .values(last_used_at=now, last_used_ip=client_ip)
        )
        await session.commit()
    effective = lower_role(found.role, owner.role)
    user = owner
    if effective != owner.role:  # a detached copy: the stored account keeps its role
        user = User.model_validate(owner.model_dump())
        user.role = effective
    return Actor(user, client_ip, token_id=found.id)
