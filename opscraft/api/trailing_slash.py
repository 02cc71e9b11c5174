"""A path sent with a trailing slash, for the whole API (docs/api.md, *Trailing slashes*).

Starlette answers a path that only a trailing slash keeps from a route with `307` to the path
without it (`redirect_slashes`). A redirect of a request with a body loses it in many clients,
and GitHub and GitLab follow none for their webhook deliveries: `POST
/api/v1/hooks/<id>/<token>/` (a webhook's URL pasted with a slash after it) was a `307`, and the
delivery was lost. So:

- the public webhook routes (`HOOKS_PREFIX`) take the slash: the call runs as without it (the
  sender does not choose the URL a person pasted);
- any other method than `GET`/`HEAD` on a path a route has without the slash is a `404` naming
  that path (`SEND_WITHOUT`), never a redirect: the client sends it again where it belongs;
- a `GET` or `HEAD` keeps the redirect: it has no body to lose.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from opscraft.api.methods import API_PREFIX, allowed_methods
from opscraft.security.http import HOOKS_PREFIX

SEND_WITHOUT = (
    "no route has this path with a trailing slash: "
    "send the request to {path} (a redirect would lose its body)"
)
REDIRECTED = frozenset({"GET", "HEAD"})


class TrailingSlashMiddleware:
    """Under `/api/`: a webhook call's trailing slashes dropped; another request with a body sent
    to a route's path with trailing slashes answered `404` naming the path (module doc).
    `routers` are the API's (`allowed_methods`)."""

    def __init__(self, app: ASGIApp, routers: Sequence[APIRouter]) -> None:
        self.app = app
        self.routers = routers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry (module doc); every other request passes as it is."""
        path: str = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith(API_PREFIX) or not path.endswith("/"):
            await self.app(scope, receive, send)
            return
        bare = path.rstrip("/")
        if path.startswith(HOOKS_PREFIX):
            raw: bytes = scope.get("raw_path") or path.encode()
            scope = {**scope, "path": bare, "raw_path": raw.rstrip(b"/")}
        elif scope["method"] not in REDIRECTED and allowed_methods(self.routers, bare):
            answer = JSONResponse({"detail": SEND_WITHOUT.format(path=bare), "errors": []}, status_code=404)
            await answer(scope, receive, send)
            return
        await self.app(scope, receive, send)
