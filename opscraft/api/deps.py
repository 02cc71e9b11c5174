"""FastAPI dependencies: database session, the acting user, client IP, the general rate limit
and a route's required permission."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft import runtime
from opscraft.api import token_watch
from opscraft.security import ratelimit
from opscraft.services import auth
from opscraft.services.actor import Actor
from opscraft.services.errors import Invalid, RateLimited, Unauthorized
from opscraft.services.permissions import Permission, require

_bearer = HTTPBearer(
    auto_error=False,
    description="Access token from POST /api/v1/auth/login, or a personal access token (`ocp_...`)",
)


async def get_session() -> AsyncIterator[AsyncSession]:
    """FastAPI dependency: one database session of the process runtime for the request, closed at its end."""
    async with runtime.current().db.session() as session:
        yield session


Session = Annotated[AsyncSession, Depends(get_session)]


def client_ip(request: Request) -> str | None:
    """The client address of the request as the ASGI server reports it (None when it gives none)."""
    return request.client.host if request.client else None


async def current_actor(
    request: Request,
    session: Session,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Actor:
    """The authenticated caller; 401 without a valid access or personal token, 429 past the
    per-user limit (shared by the user's sessions and personal tokens)."""
    if credentials is None:
        raise Unauthorized(token_watch.missing_token(request.headers))
    actor = await auth.actor_for_bearer(session, credentials.credentials, client_ip(request))
    rt = runtime.current()
    quota = await ratelimit.count(
        rt.limiter, f"api:user:{actor.user_id}", rt.settings.rate_limit_api_per_minute
    )
    if quota.exceeded:
        raise RateLimited("rate limit exceeded", retry_after=quota.reset)
    return actor


CurrentActor = Annotated[Actor, Depends(current_actor)]


async def anonymous_actor(request: Request) -> Actor:
    """FastAPI dependency: an Actor without a user, carrying the client IP, for routes that need no login."""
    return Actor(None, client_ip(request))


AnonymousActor = Annotated[Actor, Depends(anonymous_actor)]


class Permitted:
    """A route dependency: 403 unless the caller's role has `permission` (401 without a caller).

    FastAPI resolves a route's dependencies before it reports the body's validation errors, so a
    role that may not use the route learns that (403) whatever body it sent, rather than being
    told how to fix a body it may not send anyway (422). The service behind the route checks the
    same permission again (services/permissions.py holds the table); this only moves the answer
    ahead of the body's. Use as `dependencies=[permitted(Permission.x)]` on the route, with the
    service's `action` when its refusal names one (`schedules.MANAGE`: "manage schedules"), so
    the early 403 says what the service's would.
    """

    def __init__(self, permission: Permission, action: str | None = None) -> None:
        self.permission = permission
        self.action = action

    async def __call__(self, actor: CurrentActor) -> None:
        """FastAPI dependency body: raise Unauthorized (401) without an active user, Forbidden (403) when
        its role lacks the permission (services.permissions.require).
        """
        require(actor.user, self.permission, self.action)


def permitted(permission: Permission, action: str | None = None) -> Any:
    """`Depends(Permitted(permission, action))`, for a route's `dependencies=[...]`."""
    return Depends(Permitted(permission, action))


NO_BODY_MESSAGE = "this route takes no request body: send none (it would be ignored)"
# What many clients send by habit with a request that needs no body: nothing is lost.
SAYS_NOTHING: tuple[object, ...] = ({}, [], None)


async def no_body(request: Request, actor: CurrentActor) -> None:
    """A route dependency for the routes that read no request body (a cancel, a delete): a body
    that says something is `Invalid` (422, field `body`, `NO_BODY_MESSAGE`) before anything
    runs. It was ignored, so a client's `{"reason": "..."}` was lost without a word. An empty
    body and `{}`, `[]` or `null` pass. Listed after the route's `permitted(...)` and depending
    on `CurrentActor`, so a caller without a token (401) or without the role (403) is told that
    first, as on the routes with a body. The body was bounded and parsed as JSON by
    `RequestLimitsMiddleware` (a body that is no JSON is its 400 or 415)."""
    del actor  # depended on for its order: authentication first
    body = await request.body()
    if body and json.loads(body) not in SAYS_NOTHING:
        raise Invalid.at("body", NO_BODY_MESSAGE)


NO_BODY = Depends(no_body)
