"""First-run setup, login and logout."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import Request, Response
from fastapi.responses import PlainTextResponse, RedirectResponse
from nicegui import app, ui

from opscraft import runtime
from opscraft.db.models import User
from opscraft.services import auth, email_addresses, users
from opscraft.services.actor import Actor
from opscraft.services.errors import Problems, ServiceError
from opscraft.ui import session
from opscraft.ui.layout import LANGUAGE, RESPONSE_TIMEOUT_SECONDS, run_action, theme
from opscraft.ui.widgets import (
    enter_presses,
    form,
    longest,
    note_submitted,
    one_click,
    password_hint,
    password_input,
    put_unless_typed,
    text_input,
)


async def _no_users() -> bool:
    async with runtime.current().db.session() as s:
        return await users.count_users(s) == 0


def _card(title: str, subtitle: str) -> ui.card:
    """The centred card of the pages shown before login."""
    theme()
    ui.dark_mode(False)  # the pages before login keep their light card on a light background
    ui.query("body").classes("bg-blue-grey-1")
    with ui.column().classes("absolute-center items-center gap-4 w-full max-w-md px-4"):
        with ui.row().classes("items-center gap-2"):
            ui.icon("construction", color="primary").classes("text-4xl")
            ui.label("OpsCraft").classes("text-3xl font-bold text-primary").props(
                'role="heading" aria-level="1"'
            )
        card = ui.card().classes("w-full p-6 gap-3")
        with card:
            ui.label(title).classes("text-xl font-semibold")
            ui.label(subtitle).classes("text-grey-7")
    return card


@ui.page("/setup", title="Set up · OpsCraft", language=LANGUAGE, response_timeout=RESPONSE_TIMEOUT_SECONDS)
async def setup_page() -> Response | None:
    """Page /setup: create the first administrator; once any user exists it redirects to /login (303)."""
    if not await _no_users():
        return RedirectResponse("/login", status_code=303)
    with _card("Create the first administrator", "OpsCraft has no users yet: this account manages it."):
        with form():
            username = text_input(
                "Username", "setup-username", autofocus=True, limit=longest(users.Registration, "username")
            )
            email = text_input("Email", "setup-email", limit=email_addresses.MAX_LENGTH)
            full_name = text_input(
                "Full name", "setup-fullname", limit=longest(users.Registration, "full_name")
            )
            password = password_input("Password", "setup-password")
            repeat = password_input("Repeat password", "setup-repeat")
            password_hint(users.MIN_PASSWORD)

        async def create() -> None:
            async def register() -> User:
                # Every field's problem at once, the two passwords' difference with the rest.
                problems = Problems()
                data: users.Registration | None = None
                with problems.check():
                    data = users.Registration(
                        username=username.value,
                        email=email.value.strip(),
                        full_name=full_name.value.strip(),
                        password=password.value,
                    )
                if password.value != repeat.value:
                    problems.add("repeat", "differs from the password: type the same password twice")
                problems.raise_if_any()
                assert data is not None
                async with runtime.current().db.session() as s:
                    return await users.register(s, Actor(None, session.client_ip()), data)

            fields = {
                "username": username,
                "email": email,
                "full_name": full_name,
                "password": password,
                "repeat": repeat,
            }
            user = await run_action(register, fields=fields)
            if user is not None:
                await session.hand_over(user, "/")

        create_button = ui.button("Create administrator", on_click=one_click(create)).props(
            'unelevated data-testid="setup-submit"'
        )
        enter_presses(repeat, create_button.classes("w-full"))  # once, as a click (`one_click`)
    return None


@ui.page("/login", title="Log in · OpsCraft", language=LANGUAGE, response_timeout=RESPONSE_TIMEOUT_SECONDS)
async def login_page(next: str | None = None, notice: str | None = None) -> Response | None:
    """Page /login: sign in with username and password, then go to the safe `next` path; redirects to /setup
    while there are no users and to `next` when already signed in (303). `notice` selects a message
    (session ended...).
    """
    if await _no_users():
        return RedirectResponse("/setup", status_code=303)
    target = session.safe_next(next)
    if await session.current_actor() is not None:
        return RedirectResponse(target, status_code=303)
    with _card("Log in", "Use the account an administrator gave you."):
        notice_box = ui.row().classes("w-full items-center gap-2 bg-blue-1 text-blue-10 rounded p-2")
        with notice_box:
            ui.icon("info")
            ui.label(session.NOTICES.get(notice or "", "")).props('data-testid="login-notice"')
        notice_box.set_visibility(notice in session.NOTICES)
        error_box = ui.row().classes("w-full items-center gap-2 bg-red-1 text-negative rounded p-2")
        with error_box:
            ui.icon("error")
            error = ui.label().props('data-testid="login-error"')
        error_box.set_visibility(False)
        with form():
            username = text_input("Username", "login-username", autofocus=True)
            password = password_input("Password", "login-password", autocomplete="current-password")

        async def submit() -> bool:
            """Sign in; True once signed in (the page is leaving: `one_click` keeps the button off)."""
            name = username.value or ""
            if not name.strip() or not password.value:
                error.text = "Enter your username and password."
                error_box.set_visibility(True)
                return False
            ip = session.client_ip()
            try:
                async with runtime.current().db.session() as s:
                    user = await auth.authenticate_password(s, ip, name, password.value)
                    await s.commit()
            except ServiceError as exc:
                error.text = exc.message[:1].upper() + exc.message[1:] + "."
                error_box.set_visibility(True)
                notice_box.set_visibility(False)
                await put_unless_typed({password: ""})  # a password retyped meanwhile is kept
                return False
            await session.hand_over(user, target)
            return True

        # Each press of Enter, each click, was a sign-in attempt of its own, even while the first
        # was checked: a double Enter counted twice against the rate limit (5 a minute) and
        # audited two failed logins. Enter in the password field presses the button (once).
        # Enter in the username field moves on to the password in the browser: moved by the
        # server, a password typed right after Enter on a busy server went partly into the
        # username field (shown in clear, sent and audited as the username).
        to_password = f'() => document.getElementById("{password.html_id}").focus()'
        username.on("keydown.enter", js_handler=to_password)
        login_button = ui.button("Log in", on_click=one_click(submit))
        note_submitted(login_button, [password])
        enter_presses(password, login_button.props('unelevated data-testid="login-submit"').classes("w-full"))
    return None


@ui.page("/logout", title="Log out · OpsCraft", language=LANGUAGE, response_timeout=RESPONSE_TIMEOUT_SECONDS)
async def logout_page() -> Response | None:
    """Asks, and logs out on the click (`session.sign_out`): loading this address ends nothing, so
    another site cannot end a session by sending the browser here (logout CSRF)."""
    actor = await session.current_actor()
    if actor is None or actor.user is None:
        return RedirectResponse(session.login_url(notice="logout"), status_code=303)
    with _card("Log out", f"You are logged in as {actor.user.username}."):
        with ui.row().classes("w-full gap-2"):
            ui.button("Log out", on_click=one_click(session.sign_out)).props(
                'unelevated data-testid="logout-confirm"'
            )
            ui.button("Stay logged in", on_click=lambda: ui.navigate.to("/")).props("flat")
    return None


def _cross_site(request: Request) -> bool:
    """Whether a browser sent `request` from another site: its `Origin` (RFC 6454; browsers send
    it with every POST) is not this host (the `Host` header, as the proxy passes it on: see
    docs/deployment.md), or is "null" (a sandboxed or privacy-hidden origin). A request without
    one came from no browser's page."""
    origin = request.headers.get("origin")
    return origin is not None and urlsplit(origin).netloc != request.headers.get("host", "")


@app.post(session.HAND_OVER_PATH, include_in_schema=False)
async def sign_in_hand_over(request: Request) -> Response:
    """POST /login/session (form fields `ticket`, `next`): the login and setup pages' last step
    (`session.hand_over`): the browser takes the signed-in session and goes to the safe `next`
    path (303). A ticket that is spent, expired or unknown leads to the login page saying the
    sign-in did not complete; one posted from another site is refused (403): a page there could
    otherwise sign a visitor in to the poster's own account (login CSRF)."""
    if _cross_site(request):
        return PlainTextResponse("A sign-in posted from another site is refused.", status_code=403)
    fields = await request.form(max_files=0, max_fields=2)
    target = session.safe_next(str(fields.get("next") or ""))
    if not await session.take_over(request, str(fields.get("ticket") or "")):
        target = session.login_url(target, "incomplete")
    return RedirectResponse(target, status_code=303, headers=session.NO_STORE)
