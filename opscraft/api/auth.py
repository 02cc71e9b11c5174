"""`/api/v1/auth`: register, login, refresh, logout, me (read, edit), change-password (seed shapes)."""

from __future__ import annotations

from fastapi import APIRouter

from opscraft.api.deps import AnonymousActor, CurrentActor, Session
from opscraft.api.schemas import AUTHED, Message, error_responses
from opscraft.api.users_schemas import (
    ChangePasswordRequest,
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    TokenResponse,
    UserOut,
)
from opscraft.services import auth, users
from opscraft.services.users import ProfileUpdate, Registration

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post(
    "/register",
    response_model=UserOut,
    status_code=201,
    summary="Register (the first user becomes admin)",
    responses=error_responses(403, 409, 422, 429),
)
async def register(body: Registration, session: Session, actor: AnonymousActor) -> UserOut:
    await auth.check_auth_rate(actor.client_ip, body.username)
    user = await users.register(session, actor, body)
    return UserOut.model_validate(user)


@router.post(
    "/login", response_model=TokenResponse, summary="Log in", responses=error_responses(401, 422, 429)
)
async def login(body: LoginRequest, session: Session, actor: AnonymousActor) -> TokenResponse:
    await auth.check_auth_rate(actor.client_ip, body.username)
    pair = await auth.login(session, actor.client_ip, body.username, body.password)
    return TokenResponse(access_token=pair.access_token, refresh_token=pair.refresh_token)


@router.post(
    "/refresh",
    response_model=TokenResponse,
    summary="Exchange a refresh token for a new pair (the old one is revoked)",
    responses=error_responses(401, 422, 429),
)
async def refresh(body: RefreshRequest, session: Session, actor: AnonymousActor) -> TokenResponse:
    await auth.check_auth_rate(actor.client_ip, None)
    pair = await auth.refresh(session, body.refresh_token)
    return TokenResponse(access_token=pair.access_token, refresh_token=pair.refresh_token)


@router.post(
    "/logout", response_model=Message, summary="Revoke a refresh token", responses=error_responses(*AUTHED)
)
async def logout(session: Session, actor: CurrentActor, body: LogoutRequest | None = None) -> Message:
    await auth.logout(session, actor, body.refresh_token if body else None)
    return Message(detail="logged out")


@router.get("/me", response_model=UserOut, summary="The current user", responses=error_responses(401, 429))
async def me(actor: CurrentActor) -> UserOut:
    return UserOut.model_validate(actor.user)


@router.put(
    "/me",
    response_model=UserOut,
    summary="Change your own email or full name",
    responses=error_responses(*AUTHED, 409),
)
async def update_me(body: ProfileUpdate, session: Session, actor: CurrentActor) -> UserOut:
    """The updated user as `GET /me` shows it: with the role this request acts with (a personal
    access token's caps its owner's; the stored row's was answered, so the same token read
    `viewer` from GET and `admin` from PUT)."""
    updated = UserOut.model_validate(await users.update_profile(session, actor, body))
    assert actor.user is not None
    return updated.model_copy(update={"role": actor.user.role})


@router.post(
    "/change-password",
    response_model=Message,
    summary="Change your own password (ends all your sessions)",
    responses=error_responses(*AUTHED),
)
async def change_password(body: ChangePasswordRequest, session: Session, actor: CurrentActor) -> Message:
    await users.change_password(session, actor, body.current_password, body.new_password)
    return Message(detail="password changed: log in again with the new password")
