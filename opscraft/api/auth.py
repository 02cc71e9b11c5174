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
    """No login. The first user of a fresh installation becomes admin; after that 403 until an
    admin opens registration (setting `registration_open`), and new users are viewers (`role` in
    the body is a 422). 409 naming `username` (taken ignoring case) or `email`; 422 naming each
    rule the password breaks. 429 past `OPSCRAFT_RATE_LIMIT_AUTH` attempts a minute (per IP, per
    username and IP, per username). Audited as `user.create`."""
    user = await users.register(session, actor, body)
    return UserOut.model_validate(user)


@router.post(
    "/login", response_model=TokenResponse, summary="Log in", responses=error_responses(401, 422, 429)
)
async def login(body: LoginRequest, session: Session, actor: AnonymousActor) -> TokenResponse:
    """No login. The username ignores case and surrounding blanks. 401 for an unknown user or a
    wrong password (one message for both) or a deactivated account; every attempt is audited
    (`auth.login` or `auth.login_failed` with the reason) and counts against the auth rate limit
    (429). The access token lives `ACCESS_TOKEN_EXPIRE_MINUTES`, the refresh token
    `REFRESH_TOKEN_EXPIRE_DAYS`."""
    pair = await auth.login(session, actor.client_ip, body.username, body.password)
    return TokenResponse(access_token=pair.access_token, refresh_token=pair.refresh_token)


@router.post(
    "/refresh",
    response_model=TokenResponse,
    summary="Exchange a refresh token for a new pair (the old one is revoked)",
    responses=error_responses(401, 422, 429),
)
async def refresh(body: RefreshRequest, session: Session, actor: AnonymousActor) -> TokenResponse:
    """No login: the refresh token is the credential. It is single use: the presented token is
    revoked and a new pair returned, of the same sign-in. 401 for an expired or revoked token, an
    access token sent instead, an account that was deactivated, deleted or had its password
    changed since, or a sign-in older than `OPSCRAFT_SESSION_MAX_AGE_DAYS` (7: no token of a
    sign-in lives longer, however often refreshed). A token already exchanged, presented again, is
    taken for a stolen copy: every refresh token of its sign-in is revoked (the client that
    holds the newest one must log in again), audited as `auth.refresh_reused`, and the answer is
    401 saying so. Counts against the auth rate limit per IP (429)."""
    pair = await auth.refresh(session, body.refresh_token, actor.client_ip)
    return TokenResponse(access_token=pair.access_token, refresh_token=pair.refresh_token)


@router.post(
    "/logout", response_model=Message, summary="Revoke a refresh token", responses=error_responses(*AUTHED)
)
async def logout(session: Session, actor: CurrentActor, body: LogoutRequest | None = None) -> Message:
    """Any user signed in with a password. Revokes `refresh_token` when sent (an expired one is
    fine), else every refresh token of the access token's sign-in; the access token stays valid
    until it expires. 422 naming `refresh_token` when it is not
    a refresh token of yours; 403 with a personal access token (revoke it with
    `DELETE /api/v1/tokens/{id}` instead). Audited as `auth.logout`."""
    await auth.logout(session, actor, body.refresh_token if body else None)
    return Message(detail="logged out")


@router.get("/me", response_model=UserOut, summary="The current user", responses=error_responses(401, 429))
async def me(actor: CurrentActor) -> UserOut:
    """Any signed-in user. With a personal access token, `role` is the one the request acts with
    (the lower of the token's and its owner's). The password hash is never returned."""
    return UserOut.model_validate(actor.user)


@router.put(
    "/me",
    response_model=UserOut,
    summary="Change your own email or full name",
    responses=error_responses(*AUTHED, 409),
)
async def update_me(body: ProfileUpdate, session: Session, actor: CurrentActor) -> UserOut:
    """Any signed-in user, for their own `email` and/or `full_name`; 422 when neither is sent
    (or `role`/`is_active` are: those stay an admin's), 409 naming `email` when another account
    has it (ignoring case). Audited as `user.update`. Answers the updated user as `GET /me` shows
    it: with the role this request acts with (a personal access token's caps its owner's; the
    stored row's was answered, so the same token read `viewer` from GET and `admin` from PUT)."""
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
    """Any signed-in user, for their own account. 422 naming every problem at once (a wrong
    `current_password`, each rule `new_password` breaks, a new password equal to the current).
    Each attempt counts against the auth rate limit as a login does (429). Ends every session of
    the user (access and refresh tokens, browser sessions); personal access tokens are kept.
    Audited as `user.change_password`."""
    await users.change_password(session, actor, body.current_password, body.new_password)
    return Message(detail="password changed: log in again with the new password")
