"""The desktop launch's account: the local administrator the native window is signed in as."""

from __future__ import annotations

import secrets

from sqlalchemy import func
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db.models import Role, User
from opscraft.services import audit, users
from opscraft.services.actor import Actor
from opscraft.services.errors import Forbidden

#: The account `opscraft desktop` signs its window in as (audit events name it).
LOCAL_ADMIN = "desktop"


async def local_admin(session: AsyncSession) -> User:
    """The desktop's local administrator, created on first launch.

    Created with a random password that is never shown or stored anywhere but as its argon2
    hash, so the account is reachable only through the desktop launch's one-time sign-in (or a
    password an admin later sets). Raises Forbidden when an administrator disabled or demoted it:
    the launch then refuses instead of restoring it.
    """
    found = (await session.exec(select(User).where(func.lower(User.username) == LOCAL_ADMIN.lower()))).first()
    if found is None:
        data = users.UserCreate(
            username=LOCAL_ADMIN,
            email=f"{LOCAL_ADMIN}@localhost.localdomain",
            full_name="Desktop (local administrator)",
            password=secrets.token_urlsafe(32),
            role=Role.admin,
        )
        return await users.bootstrap(session, data, actor_name="desktop")
    if not found.is_active or found.role != Role.admin:
        raise Forbidden(
            f"the desktop account {LOCAL_ADMIN!r} is disabled or no longer an administrator: "
            "an administrator must restore it, or sign in with your own account through `opscraft serve`"
        )
    return found


async def sign_in(session: AsyncSession, client_ip: str | None) -> User:
    """The local administrator for a window that presented the launch's one-time secret; records
    `auth.login` with `method="desktop"`. Raises Forbidden as `local_admin` does."""
    user = await local_admin(session)
    audit.record(session, Actor(user, client_ip), "auth.login", "user", user.id, method="desktop")
    await session.commit()
    return user
