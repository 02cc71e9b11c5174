"""The window's way in: `GET /desktop/sign-in?token=...` trades the launch's one-time secret for
a NiceGUI session of the local administrator (see docs/desktop.md, "Sign-in")."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse

from opscraft.security.one_time import OneTimeSecret

PATH = "/desktop/sign-in"


def install(secret: OneTimeSecret) -> None:
    """Add the sign-in route to NiceGUI's app; it answers a redirect to `/` (signed in) when the
    token is the launch's unspent secret, else to the login page, which then asks for a password."""
    from nicegui import app

    from opscraft import runtime
    from opscraft.services import desktop
    from opscraft.services.errors import ServiceError
    from opscraft.ui import session

    @app.get(PATH, include_in_schema=False)
    async def sign_in(request: Request, token: str = "") -> RedirectResponse:
        if not secret.consume(token):
            return RedirectResponse(session.login_url(), status_code=303, headers=session.NO_STORE)
        async with runtime.current().db.session() as db_session:
            try:
                user = await desktop.sign_in(db_session, request.client.host if request.client else None)
            except ServiceError:
                return RedirectResponse(session.login_url(), status_code=303, headers=session.NO_STORE)
        await session.new_session_id()
        await session.log_in(user)
        return RedirectResponse("/", status_code=303, headers=session.NO_STORE)
