"""The browser session: who is logged in, re-checked against the database on every use."""

from __future__ import annotations

import uuid
from datetime import datetime
from urllib.parse import quote

from nicegui import app, context, storage, ui

from opscraft import runtime
from opscraft.db.models import User
from opscraft.db.types import utcnow
from opscraft.services import auth
from opscraft.services.actor import Actor
from opscraft.services.auth import SignInOver
from opscraft.services.errors import Unauthorized


def client_ip() -> str | None:
    """The TCP peer address of the page's request, or None outside a page context."""
    try:
        request = context.client.request
    except (AttributeError, RuntimeError):
        return None
    return request.client.host if request and request.client else None


# The key under which a session that ended says why, for the login page (`ended_notice`).
_ENDED = "ended_because"


def log_in(user: User) -> None:
    """Remember `user` in this browser's session: the account (id and `account_key`, so the
    session never passes to a later account given the same id), its token version and when the
    password was typed (the session ends `OPSCRAFT_SESSION_MAX_AGE_DAYS` later, however active)."""
    app.storage.user.pop(_ENDED, None)
    app.storage.user.update(
        {
            "user_id": user.id,
            "account_key": user.account_key,
            "token_version": user.token_version,
            "signed_in_at": utcnow().isoformat(),
        }
    )


# Storage keys a new session id takes over from the old one (`new_session_id`): preferences, never
# anything about who is signed in.
_KEPT_ACROSS_IDS = ("dark",)


async def new_session_id() -> None:
    """Give this browser a new, random session id (a fresh storage under it) in the answer to the
    HTTP request being served, before a password is typed on the page it builds: a sign-in is
    then stored under an id only this browser holds. Without it, an id someone else knew (a
    cookie they got from any visit and planted in this browser: session fixation, OWASP ASVS
    3.2.1) became a signed-in session they could use too. NiceGUI's socket, which carries the
    sign-in, cannot set a cookie, hence the change before. The display preference carries over."""
    request = storage.request_contextvar.get()
    assert request is not None, "only while an HTTP request builds a page"
    kept = {key: app.storage.user[key] for key in _KEPT_ACROSS_IDS if key in app.storage.user}
    new_id = str(uuid.uuid4())
    request.session["id"] = new_id  # SessionMiddleware sends the new cookie with this answer
    await app.storage._create_user_storage(new_id)  # what NiceGUI's middleware does for a new id
    app.storage.user.update(kept)


def log_out() -> None:
    """End the browser's session: forget the signed-in user."""
    app.storage.user.clear()


async def sign_out() -> None:
    """End this browser's sign-in (audited as `auth.logout`) and go to the login page. Called from
    a click on the page (over NiceGUI's socket), never by loading an address: `GET /logout` only
    asks (a link or a redirect from another site would otherwise end the session: logout CSRF)."""
    actor = await current_actor()
    if actor is not None:
        async with runtime.current().db.session() as s:
            await auth.logout(s, actor, None)
    log_out()
    ui.navigate.to(login_url(notice="logout"))


def _signed_in_at() -> datetime | None:
    try:
        return datetime.fromisoformat(str(app.storage.user["signed_in_at"]))
    except (KeyError, ValueError):
        return None


async def current_actor() -> Actor | None:
    """The logged-in user if the session is still valid (active user, unchanged password, signed
    in less than `OPSCRAFT_SESSION_MAX_AGE_DAYS` ago), else None; a session that reached that age
    is ended and remembers so for the login page's notice (`ended_notice`)."""
    user_id = app.storage.user.get("user_id")
    if user_id is None:
        return None
    async with runtime.current().db.session() as session:
        try:
            user = await auth.user_for_session(
                session,
                int(user_id),
                int(app.storage.user.get("token_version", -1)),
                str(app.storage.user.get("account_key", "")),
                _signed_in_at(),
            )
        except SignInOver:
            log_out()
            app.storage.user[_ENDED] = "expired"
            return None
        except Unauthorized:
            log_out()
            app.storage.user[_ENDED] = "ended"
            return None
    return Actor(user, client_ip())


def ended_notice() -> str | None:
    """The login page's notice for a session that `current_actor` found ended, once: "expired"
    past its absolute lifetime, "ended" otherwise (a password change elsewhere, a deactivation);
    None when no check ended it (a logout, in this tab or another, forgot the sign-in).

    Kept in the session's storage rather than judged by whether a sign-in is still there: a page's
    two timers re-check together, and the second, starting after the first had forgotten the
    ended sign-in but before it had gone to the login page, said "You are logged out"."""
    notice = app.storage.user.pop(_ENDED, None)
    return None if notice is None else str(notice)


# Messages the login page shows, by key (never text taken from the URL).
NOTICES = {
    "ended": "Your session has ended: log in again.",
    "expired": "Your session has reached its maximum age: log in again.",
    "password": "Password changed: log in with your new password.",
    "logout": "You are logged out.",
}


def login_url(next_path: str | None = None, notice: str | None = None) -> str:
    """The /login address, with `next` (omitted for /) and `notice` percent-encoded."""
    params = {"next": next_path if next_path not in (None, "/") else None, "notice": notice}
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items() if v)
    return f"/login?{query}" if query else "/login"


def safe_next(value: str | None) -> str:
    """Only a path on this site: never `//host`, `/\\host`, `http://...` or hidden control characters."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    if any(ch == "\\" or ord(ch) < 0x21 or ord(ch) == 0x7F for ch in value):
        return "/"  # browsers drop tabs/newlines, so "/\t/evil.example" would become "//evil.example"
    return value
