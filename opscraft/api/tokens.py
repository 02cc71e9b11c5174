"""`/api/v1/tokens`: personal access tokens (create, list, revoke). Rules: services/api_tokens.py.

Use a token as `Authorization: Bearer ocp_...` on the API and the WebSocket. Managing tokens
needs a password sign-in (an access token): a personal token cannot create or revoke tokens.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from opscraft.api.deps import NO_BODY, CurrentActor, Session
from opscraft.api.schemas import AUTHED, IdPath, Limit, Page, Skip, error_responses
from opscraft.db.models import Role
from opscraft.services import api_tokens
from opscraft.services.api_tokens import NAME_MAX, TokenInfo
from opscraft.services.bodies import Body
from opscraft.services.invisible import Label

router = APIRouter(prefix="/api/v1/tokens", tags=["api tokens"])


class TokenCreate(Body):
    """Body of an API token creation: its name, role (at most your own) and optional expiry."""

    # The length is checked by the service, which words it as the tokens page shows it.
    name: Label = Field(json_schema_extra={"minLength": 1, "maxLength": NAME_MAX}, examples=["ci-deploy"])
    role: Role | None = Field(default=None, description="Default: your role; never higher than it")
    expires_at: datetime | None = Field(
        default=None,
        description="With a time zone; omit for no expiry (refused when an admin requires expiry)",
        examples=["2030-01-01T00:00:00Z"],
    )


class TokenOut(BaseModel):
    """An API token's metadata: never the token, only its prefix, role, owner, expiry, last use and
    revocation.
    """

    id: int
    name: str
    prefix: str = Field(description="The token's first characters, to tell tokens apart")
    role: Role
    acts_as: Role = Field(
        description="The role requests made with it get now: the lower of `role` and its owner's current role"
    )
    user_id: int
    username: str
    expires_at: datetime | None
    last_used_at: datetime | None
    last_used_ip: str | None
    revoked_at: datetime | None
    created_at: datetime
    active: bool

    @classmethod
    def of(cls, info: TokenInfo) -> TokenOut:
        """Build the API shape of a token from the services' TokenInfo."""
        t = info.token
        assert t.id is not None
        return cls(
            id=t.id,
            name=t.name,
            prefix=t.prefix,
            role=Role(t.role),
            acts_as=info.acts_as,
            user_id=t.user_id,
            username=info.username,
            expires_at=t.expires_at,
            last_used_at=t.last_used_at,
            last_used_ip=t.last_used_ip,
            revoked_at=t.revoked_at,
            created_at=t.created_at,
            active=info.active,
        )


class TokenCreated(TokenOut):
    """The answer to a token creation: the metadata plus the token itself, shown only this once."""

    token: str = Field(description="The token itself: shown this once, store it now")


@router.post(
    "",
    response_model=TokenCreated,
    status_code=201,
    summary="Create a personal access token (its value is in this response only)",
    responses=error_responses(*AUTHED, 409),
)
async def create_token(body: TokenCreate, session: Session, actor: CurrentActor) -> TokenCreated:
    """Any role, signed in with a password (403 with a personal access token). The `ocp_...`
    value is in this answer only; the server keeps its hash. `role` defaults to yours and may not be
    higher (422); `expires_at` needs a time zone, in the future and within ten years, and is required
    while the admin setting `api_tokens_require_expiry` is on (422 naming the field). 409 naming
    `name` when one of your live tokens has it. Audited as `api_token.create`."""
    row, value = await api_tokens.create(
        session, actor, body.name, role=body.role, expires_at=body.expires_at
    )
    assert actor.user is not None
    info = TokenInfo(row, actor.user.username, actor.user.role)
    return TokenCreated(**TokenOut.of(info).model_dump(), token=value)


@router.get(
    "",
    response_model=Page[TokenOut],
    summary="Your tokens (admins: `all=true` for everyone's), newest first",
    responses=error_responses(*AUTHED),
)
async def list_tokens(
    session: Session,
    actor: CurrentActor,
    all_users: Annotated[bool, Query(alias="all", description="Every user's tokens (admins only)")] = False,
    skip: Skip = 0,
    limit: Limit = 50,
) -> Page[TokenOut]:
    """Any role, signed in with a password (403 with a personal access token). Your tokens, or
    with `all=true` everyone's (admins only: 403 otherwise); newest first, revoked and expired
    included (`active` says). Answers `{items, total, skip, limit}` like every list; `limit` at
    most 500. The token values are never returned, only their `prefix`."""
    rows, total = await api_tokens.list_tokens(session, actor, all_users=all_users, skip=skip, limit=limit)
    return Page(items=[TokenOut.of(i) for i in rows], total=total, skip=skip, limit=limit)


@router.delete(
    "/{token_id}",
    dependencies=[NO_BODY],
    status_code=204,
    summary="Revoke a token (yours; admins: anyone's): it stops working at once",
    responses=error_responses(*AUTHED, 404),
)
async def revoke_token(token_id: IdPath, session: Session, actor: CurrentActor) -> Response:
    """Any role, signed in with a password (403 with a personal access token). Your own token;
    admins (manage_users) any user's. `204` (no body, as every delete); 404 when unknown or
    another user's. Revoking an already revoked token changes nothing and answers `204` again
    (idempotent). Audited as `api_token.revoke`."""
    await api_tokens.revoke(session, actor, token_id)
    return Response(status_code=204)
