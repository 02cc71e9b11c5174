"""An open live answer lives no longer than the token it was opened with.

Both ways of following a run live (the WebSocket `/ws/executions/{id}`, `ws.py`, and the event
stream of `POST /api/v1/executions/stream`, `sse.py`) may stay open for hours. They check the
caller's token again every `RECHECK_SECONDS` with the same check as on connect (no row is read
while the user cache is warm), and end once it no longer passes: expired, revoked, its user
deactivated, deleted or signed out everywhere.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from opscraft import runtime
from opscraft.services import auth
from opscraft.services.errors import Unauthorized

# How long an open stream may outlive its token (expired, revoked, user deactivated), at most (s).
RECHECK_SECONDS = 5.0


def bearer(headers: Mapping[str, str]) -> str:
    """The token of an `Authorization: Bearer <token>` header (RFC 6750, section 2.1); "" without one."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


BEARER_HEADER = "send 'Authorization: Bearer <access token>'"


def missing_token(headers: Mapping[str, str], ways: str = BEARER_HEADER) -> str:
    """The 401 reason for a request with no bearer token: "authentication required: " + `ways`
    (how this route takes a token), and, when its `Authorization` header uses another scheme
    (`Basic`, RFC 7617), that the scheme is not read, so a client is not left guessing why its
    credentials went unseen."""
    scheme = headers.get("authorization", "").strip().partition(" ")[0]
    if not scheme:
        return f"authentication required: {ways}"
    # Named only when it reads as a scheme's name: a token sent bare (no "Bearer ") is never echoed.
    if scheme.isascii() and scheme.isalpha() and len(scheme) <= 10:
        return f"authentication required: {ways}; a {scheme} header is not read"
    return f"authentication required: {ways}; a header without 'Bearer ' is not read"


async def until_token_ends(
    token: str, client_ip: str | None, on_pass: Callable[[], Awaitable[None]] | None = None
) -> str:
    """Authenticate `token` again every `RECHECK_SECONDS` (awaiting `on_pass()` after each check
    it passes) until it fails; the reason it failed (`Unauthorized`'s message)."""
    rt = runtime.current()
    while True:
        await asyncio.sleep(RECHECK_SECONDS)
        async with rt.db.session() as session:
            try:
                await auth.actor_for_bearer(session, token, client_ip)
            except Unauthorized as exc:
                return exc.message
        if on_pass is not None:
            await on_pass()
