"""The browser session: who is logged in, re-checked against the database on every use."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from urllib.parse import quote

from nicegui import app, context, storage, ui
from starlette.requests import Request

from opscraft import runtime
from opscraft.db.models import User
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


# The key under which a session holds its sign-in: a `BrowserSignIn` id (`_sign_in_of`).
_SIGN_IN = "sign_in"


async def _sign_in_of(user: User) -> dict[str, object]:
    """What a session remembers of a sign-in of `user`: the id of the sign-in recorded in the
    database (`auth.start_browser_sign_in`), which holds the account, when the password was typed
    and whether a sign-out ended it; nothing else, so no copy of the session storage can outlive
    a sign-out."""
    async with runtime.current().db.session() as s:
        sign_in = await auth.start_browser_sign_in(s, user)
    return {_SIGN_IN: sign_in.id}


async def log_in(user: User) -> None:
    """Sign this browser's session in as `user` (`_sign_in_of`). Only while an HTTP request is
    answered under an id `new_session_id` gave (the desktop window's sign-in); a page signs in
    with `hand_over`."""
    app.storage.user.pop(_ENDED, None)
    app.storage.user.update(await _sign_in_of(user))


# Storage keys a new session id takes over from the old one (`new_session_id`, `hand_over`):
# preferences, never anything about who is signed in.
_KEPT_ACROSS_IDS = ("dark",)


def _kept_preferences() -> dict[str, object]:
    """The `_KEPT_ACROSS_IDS` this browser's session holds, for the storage under its next id."""
    return {key: app.storage.user[key] for key in _KEPT_ACROSS_IDS if key in app.storage.user}


NO_STORE = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
"""Headers of an answer that signs a browser in: never cached, and its address (a ticket or a
token in it) never sent on as a referrer."""


async def new_session_id() -> None:
    """Give this browser a new, random session id (a fresh storage under it) in the answer to the
    HTTP request being served, before `log_in` stores a sign-in under it: an id someone else
    knew (a cookie they got from any visit and planted in this browser: session fixation, OWASP
    ASVS 3.2.1) never becomes a signed-in session they could use too. The display preference
    carries over."""
    request = storage.request_contextvar.get()
    assert request is not None, "only while an HTTP request builds a page"
    kept = _kept_preferences()
    new_id = str(uuid.uuid4())
    request.session["id"] = new_id  # SessionMiddleware sends the new cookie with this answer
    await app.storage._create_user_storage(new_id)  # what NiceGUI's middleware does for a new id
    app.storage.user.update(kept)


HAND_OVER_PATH = "/login/session"
"""Where a page's sign-in is handed to the browser (`hand_over`, `take_over`): POST only."""
HAND_OVER_SECONDS = 60.0
"""How long a hand-over ticket can be redeemed, in seconds (the page posts it at once)."""
_HAND_OVER_UNTIL = "hand_over_until"  # in a handed-over storage, until redeemed: its deadline (epoch s)

# The page posts the ticket as a form (a top-level navigation: the answer's cookie and redirect
# apply to the tab; a POST body, unlike a query, is in no access log).
_POST_JS = """((action, fields) => {
    const form = document.createElement("form");
    form.method = "post";
    form.action = action;
    for (const [name, value] of Object.entries(fields)) {
        const input = document.createElement("input");
        input.type = "hidden";
        input.name = name;
        input.value = value;
        form.appendChild(input);
    }
    document.body.appendChild(form);
    form.submit();
})"""


def _storage_id_of(ticket: str) -> str:
    """The session id a hand-over ticket leads to: an HMAC-SHA256 of the ticket under the storage
    secret (RFC 2104), as a UUID. Any web process can find it (the storage is shared through
    Redis when there are several); nobody without the secret can, from the ticket."""
    secret = (storage.Storage.secret or "").encode()
    digest = hmac.new(secret, b"opscraft sign-in hand-over\0" + ticket.encode(), hashlib.sha256).digest()
    return str(uuid.UUID(bytes=digest[:16]))


async def hand_over(user: User, target: str) -> None:
    """Sign this page's browser in as `user` and take it to `target` (a path): called from a page
    (over NiceGUI's socket, which cannot set a cookie) once the password was checked.

    The sign-in is stored under a new session id, and the browser gets that id from the answer to
    its own POST of a one-time ticket to `HAND_OVER_PATH` (`take_over`), which then redirects to
    `target`. So an id someone else knew (a cookie planted in this browser: session fixation,
    OWASP ASVS 3.2.1) never carries the sign-in, and another tab that loaded a page meanwhile
    (one of its answers set the cookie again) cannot leave this sign-in under an id the browser
    no longer holds: that tab's sign-in page sent this one to the login page again, without a
    word. The display preference carries over."""
    ticket = secrets.token_urlsafe(32)
    new_id = _storage_id_of(ticket)
    kept = _kept_preferences()
    await app.storage._create_user_storage(new_id)
    app.storage._users[new_id].update(
        {**kept, **await _sign_in_of(user), _HAND_OVER_UNTIL: time.time() + HAND_OVER_SECONDS}
    )
    fields = json.dumps({"ticket": ticket, "next": target})
    ui.run_javascript(f"{_POST_JS}({json.dumps(HAND_OVER_PATH)}, {fields})")


async def take_over(request: Request, ticket: str) -> bool:
    """Redeem a hand-over `ticket` (`hand_over`) in the HTTP request being answered: its session
    id becomes the one the answer's cookie carries. False, and nothing changed, for a ticket that
    was redeemed before, has expired (`HAND_OVER_SECONDS`; its sign-in is then forgotten) or was
    never given."""
    new_id = _storage_id_of(ticket)
    if new_id not in app.storage._users:
        await app.storage._create_user_storage(new_id)  # handed over by another web process
    handed = app.storage._users[new_id]
    until = handed.pop(_HAND_OVER_UNTIL, None)
    if not isinstance(until, (int, float)) or _SIGN_IN not in handed:
        return False
    if time.time() > until:
        handed.clear()
        return False
    request.session["id"] = new_id  # SessionMiddleware sends the new cookie with this answer
    return True


def log_out(why: str) -> None:
    """End the browser's session: forget the signed-in user, and keep `why` (a `NOTICES` key:
    "logout", "ended", "expired", "password") for the login page of every tab of this browser
    that lands there (`ended_notice`) until the next sign-in."""
    app.storage.user.clear()
    app.storage.user[_ENDED] = why


async def sign_out() -> None:
    """End this browser's sign-in in the database (`auth.logout`, audited), forget it here and go to
    the login page. Called from
    a click on the page (over NiceGUI's socket), never by loading an address: `GET /logout` only
    asks (a link or a redirect from another site would otherwise end the session: logout CSRF).

    The sign-in is forgotten here before its row is ended: the other tabs of this browser share
    the session storage, and one whose periodic check ran between the row's end and the storage's
    clearing found a sign-in that had ended and told its user "Your session has ended" (a CI run)
    instead of "You are logged out"."""
    actor = await current_actor()
    log_out("logout")
    if actor is not None:
        async with runtime.current().db.session() as s:
            await auth.logout(s, actor, None)
    ui.navigate.to(login_url(notice="logout"))


async def current_actor() -> Actor | None:
    """The logged-in user if the session's sign-in still holds (`auth.user_for_session`: not
    signed out, active user, unchanged password, signed in less than
    `OPSCRAFT_SESSION_MAX_AGE_DAYS` ago), else None; a session whose sign-in no longer holds is
    ended and remembers why for the login page's notice (`ended_notice`). A session from before
    sign-ins were recorded (it holds a `user_id`, no sign-in) has ended too."""
    sign_in = app.storage.user.get(_SIGN_IN)
    if sign_in is None:
        if "user_id" in app.storage.user:
            log_out("ended")
        return None
    async with runtime.current().db.session() as session:
        try:
            return await auth.user_for_session(session, str(sign_in), client_ip())
        except SignInOver:
            log_out("expired")
        except Unauthorized:
            log_out("ended")
    return None


def ended_notice() -> str | None:
    """The login page's notice for this browser's session that ended (`log_out`): "logout",
    "password" (changed on the Profile page), "expired" past its absolute lifetime (found by
    `current_actor`), "ended" otherwise (a password change elsewhere, a deactivation); None for a
    session never signed in.

    Kept in the session's storage rather than judged by whether a sign-in is still there: a page's
    two timers re-check together, and the second, starting after the first had forgotten the
    ended sign-in but before it had gone to the login page, said "You are logged out". Read, not
    taken: the browser's other tabs share the storage, and when it was said once, the first tab
    took it and a second one, whose check came later, said "You are logged out" for a session
    that had ended (or nothing, when it was reloaded); kept until the next sign-in, which begins
    a storage of its own (`hand_over`, `log_in`)."""
    notice = app.storage.user.get(_ENDED)
    return None if notice is None else str(notice)


# Messages the login page shows, by key (never text taken from the URL).
NOTICES = {
    "ended": "Your session has ended: log in again.",
    "expired": "Your session has reached its maximum age: log in again.",
    "password": "Password changed: log in with your new password.",
    "logout": "You are logged out.",
    "incomplete": "The sign-in did not complete: log in again.",
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
