"""A browser's sign-in is a row in the database (`BrowserSignIn`), which its session storage names:
a sign-out ends that sign-in there and no other, a password change ends them all, a sign-in
reaches its maximum age, and old rows do not pile up. It was held in the session storage alone,
so a copy of the storage (Redis's, when it did not answer at the sign-out; another web
process's) brought a signed-out session back: tests/scale/test_sign_out_while_redis_is_away.py."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest
from sqlmodel import col, select, update

from opscraft import runtime
from opscraft.db.models import AuditEvent, BrowserSignIn, User
from opscraft.db.types import utcnow
from opscraft.services import auth, users
from opscraft.services.actor import Actor
from opscraft.services.auth import SignInOver
from opscraft.services.errors import Unauthorized
from tests.conftest import PASSWORD, LoggedIn


async def _sign_in(user_id: int) -> str:
    async with runtime.current().db.session() as session:
        user = await session.get(User, user_id)
        assert user is not None
        return (await auth.start_browser_sign_in(session, user)).id


async def _age(*sign_ins: str, lifetimes: int = 1) -> None:
    """Make `sign_ins` one second older than `lifetimes` x `OPSCRAFT_SESSION_MAX_AGE_DAYS`."""
    days = runtime.current().settings.session_max_age_days
    past = utcnow() - lifetimes * timedelta(days=days) - timedelta(seconds=1)
    async with runtime.current().db.session() as session:
        ids = col(BrowserSignIn.id).in_(sign_ins)
        await session.exec(update(BrowserSignIn).where(ids).values(signed_in_at=past))
        await session.commit()


async def _actor(sign_in: str) -> Actor:
    async with runtime.current().db.session() as session:
        return await auth.user_for_session(session, sign_in, "192.0.2.7")


async def test_a_sign_out_ends_that_browser_sign_in_and_no_other(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    here, elsewhere = await _sign_in(admin.id), await _sign_in(admin.id)
    assert here != elsewhere and len(here) == 32
    actor = await _actor(here)
    assert actor.user_id == admin.id and actor.sign_in == here and actor.client_ip == "192.0.2.7"
    async with runtime.current().db.session() as session:
        await auth.logout(session, actor, None)
    with pytest.raises(Unauthorized, match="your session has ended: log in again"):
        await _actor(here)
    assert (await _actor(elsewhere)).user_id == admin.id
    async with runtime.current().db.session() as session:
        logged = await session.exec(select(AuditEvent).where(col(AuditEvent.action) == "auth.logout"))
        assert [(e.actor_id, e.client_ip) for e in logged.all()] == [(admin.id, "192.0.2.7")]


async def test_a_password_change_ends_every_browser_sign_in(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    first, second = await _sign_in(admin.id), await _sign_in(admin.id)
    async with runtime.current().db.session() as session:
        await users.change_password(session, await _actor(first), PASSWORD, "another-long-passphrase-9")
    for sign_in in (first, second):
        with pytest.raises(Unauthorized):
            await _actor(sign_in)
    async with runtime.current().db.session() as session:
        rows = (await session.exec(select(BrowserSignIn))).all()
        assert {row.id for row in rows if row.ended_at is not None} == {first, second}


async def test_a_sign_in_ends_at_its_maximum_age_and_an_unknown_one_never_held(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    sign_in = await _sign_in(admin.id)
    await _age(sign_in)
    with pytest.raises(SignInOver):
        await _actor(sign_in)
    with pytest.raises(Unauthorized, match="your session has ended"):
        await _actor("x" * 32)


async def test_a_new_sign_in_deletes_the_users_ended_and_long_aged_ones_only(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn
) -> None:
    """Aged past twice the lifetime: deleted. Just past it: kept, so its browser still hears that
    it reached its age (not that it ended)."""
    sign_ins = [await _sign_in(admin.id) for _ in range(4)]
    ended, long_aged, aged, current = sign_ins
    others = await _sign_in(operator.id)
    async with runtime.current().db.session() as session:
        await auth.logout(session, await _actor(ended), None)
    await _age(long_aged, others, lifetimes=2)
    await _age(aged)
    newest = await _sign_in(admin.id)
    async with runtime.current().db.session() as session:
        kept = {row.id for row in (await session.exec(select(BrowserSignIn))).all()}
    assert kept == {aged, current, newest, others}
    with pytest.raises(SignInOver):
        await _actor(aged)
