"""Accounts, refresh tokens and browser sign-ins."""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum

from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from opscraft.db.types import StoredEnum, UTCDateTime, utcnow


class Role(StrEnum):
    """A user's role, from least to most allowed: viewer < operator < admin (the role table of
    docs/api.md says what each may do).
    """

    viewer = "viewer"
    operator = "operator"
    admin = "admin"


def new_account_key() -> str:
    """A new `User.account_key`: 64 random bits, as 16 hex digits."""
    return secrets.token_hex(8)


class User(SQLModel, table=True):
    """A user account; `hashed_password` is an argon2id hash (security/passwords.py), never the password."""

    __tablename__ = "users"
    # Usernames are unique ignoring case (they are ASCII: `lower` is exact); logins compare so.
    __table_args__ = (Index("ux_users_username", text("lower(username)"), unique=True),)

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64)
    email: str = Field(max_length=254, unique=True, index=True)
    full_name: str = Field(default="", max_length=200)
    hashed_password: str = Field(max_length=255)
    role: Role = Field(default=Role.viewer, max_length=16, sa_type=StoredEnum(Role))
    is_active: bool = Field(default=True)
    # Bumped on password change, deactivation and reset: every token and UI session carrying
    # an older value stops working at once.
    token_version: int = Field(default=0)
    # Random, set once when the account is created, never changed. Tokens and UI sessions carry
    # it with the id and are refused unless it matches, so one issued to a deleted account never
    # fits a later account, even one given the same id (ids are not reused: models/__init__.py).
    account_key: str = Field(default_factory=new_account_key, max_length=16)
    last_login_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class RefreshToken(SQLModel, table=True):
    """One row per issued refresh token; rotation revokes the presented one (and sets
    `rotated_at`). `family_id` (the jti of the first token of the sign-in) and `signed_in_at` (the
    password sign-in) are passed on from token to token: services/auth.py."""

    __tablename__ = "refresh_tokens"

    jti: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    family_id: str = Field(max_length=64, index=True)
    signed_in_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    rotated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class BrowserSignIn(SQLModel, table=True):
    """One row per password sign-in of a browser (the web UI, the desktop window): the browser's
    session storage holds its `id`, and the sign-in holds while the row has no `ended_at`. A
    sign-out ends it here, in the database every web process reads, so it holds whatever became
    of the session storage's copies (Redis away at the sign-out, another web process's copy):
    services/auth.py (`start_browser_sign_in`, `user_for_session`, `logout`)."""

    __tablename__ = "browser_sign_ins"

    id: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="users.id", index=True, ondelete="CASCADE")
    signed_in_at: datetime = Field(sa_type=UTCDateTime)
    # The account as it was at the sign-in: a password change moves `User.token_version` on, and a
    # deleted account's id may name a later account (`User.account_key`).
    token_version: int
    account_key: str = Field(max_length=16)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
