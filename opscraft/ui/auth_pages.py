"""First-run setup, login and logout."""

from __future__ import annotations

from nicegui import ui
from pydantic import ValidationError

from opscraft import runtime
from opscraft.services import auth, users
from opscraft.services.actor import Actor
from opscraft.services.errors import ServiceError
from opscraft.ui import session
from opscraft.ui.layout import notify_error


async def _no_users() -> bool:
    async with runtime.current().db.session() as s:
        return await users.count_users(s) == 0


def _card(title: str) -> ui.card:
    with ui.column().classes("absolute-center items-center gap-4"):
        ui.label("OpsCraft").classes("text-3xl font-bold text-primary")
        card = ui.card().classes("w-96 p-6")
        with card:
            ui.label(title).classes("text-xl font-semibold")
    return card


@ui.page("/setup", title="Set up · OpsCraft")
async def setup_page() -> None:
    if not await _no_users():
        ui.navigate.to("/login")
        return
    with _card("Create the first administrator"):
        username = ui.input("Username").props('autofocus data-testid="setup-username"').classes("w-full")
        email = ui.input("Email").props('data-testid="setup-email"').classes("w-full")
        full_name = ui.input("Full name").props('data-testid="setup-fullname"').classes("w-full")
        password = (
            ui.input("Password", password=True, password_toggle_button=True)
            .props('data-testid="setup-password"')
            .classes("w-full")
        )
        ui.label("At least 8 characters, not your username.").classes("text-caption text-grey")

        async def create() -> None:
            try:
                data = users.UserCreate(
                    username=username.value.strip(),
                    email=email.value.strip(),
                    full_name=full_name.value.strip(),
                    password=password.value,
                )
            except ValidationError as exc:
                err = exc.errors()[0]
                notify_error(f"{err['loc'][0]}: {err['msg']}")
                return
            actor = Actor(None, session.client_ip())
            async with runtime.current().db.session() as s:
                try:
                    user = await users.register(s, actor, data)
                except ServiceError as exc:
                    notify_error(exc.message)
                    return
            session.log_in(user)
            ui.navigate.to("/")

        ui.button("Create administrator", on_click=create).props('data-testid="setup-submit"').classes(
            "w-full"
        )


@ui.page("/login", title="Log in · OpsCraft")
async def login_page(next: str | None = None) -> None:
    if await _no_users():
        ui.navigate.to("/setup")
        return
    target = session.safe_next(next)
    if await session.current_actor() is not None:
        ui.navigate.to(target)
        return
    with _card("Log in"):
        username = ui.input("Username").props('autofocus data-testid="login-username"').classes("w-full")
        password = (
            ui.input("Password", password=True, password_toggle_button=True)
            .props('data-testid="login-password"')
            .classes("w-full")
        )

        async def submit() -> None:
            ip = session.client_ip()
            try:
                await auth.check_auth_rate(ip, username.value)
                async with runtime.current().db.session() as s:
                    user = await auth.authenticate_password(s, ip, username.value.strip(), password.value)
                    await s.commit()
            except ServiceError as exc:
                notify_error(exc.message)
                return
            session.log_in(user)
            ui.navigate.to(target)

        password.on("keydown.enter", submit)
        ui.button("Log in", on_click=submit).props('data-testid="login-submit"').classes("w-full")


@ui.page("/logout")
async def logout_page() -> None:
    session.log_out()
    ui.navigate.to("/login")
