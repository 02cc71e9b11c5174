"""The browser session: who is logged in, re-checked against the database on every use."""

from __future__ import annotations

from urllib.parse import quote

from nicegui import app, context

from opscraft import runtime
from opscraft.db.models import User
from opscraft.services import auth
from opscraft.services.actor import Actor
from opscraft.services.errors import Unauthorized


def client_ip() -> str | None:
    try:
        request = context.client.request
    except (AttributeError, RuntimeError):
        return None
    return request.client.host if request and request.client else None


def log_in(user: User) -> None:
    """Remember `user` in this browser's session: the account (id and `account_key`, so the
    session never passes to a later account given the same id) and its token version."""
    app.storage.user.update(
        {"user_id": user.id, "account_key": user.account_key, "token_version": user.token_version}
    )


def log_out() -> None:
    app.storage.user.clear()


async def current_actor() -> Actor | None:
    """The logged-in user if the session is still valid (active user, unchanged password), else None."""
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
            )
        except Unauthorized:
            log_out()
            return None
    return Actor(user, client_ip())


# Messages the login page shows, by key (never text taken from the URL).
NOTICES = {
    "ended": "Your session has ended: log in again.",
    "password": "Password changed: log in with your new password.",
    "logout": "You are logged out.",
}


def login_url(next_path: str | None = None, notice: str | None = None) -> str:
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
