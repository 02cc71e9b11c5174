"""`/api/v1/users`: user administration (admin only; enforced in services)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response

from opscraft.api.deps import NO_BODY, CurrentActor, Session, permitted
from opscraft.api.schemas import AUTHED, IdPath, Limit, Message, Page, Skip, error_responses, filter_query
from opscraft.api.users_schemas import ResetPasswordRequest, UserOut
from opscraft.services import users
from opscraft.services.invisible import FilterText
from opscraft.services.permissions import Permission
from opscraft.services.users import UserCreate, UserUpdate

router = APIRouter(prefix="/api/v1/users", tags=["users"])


@router.get("", response_model=Page[UserOut], summary="List users", responses=error_responses(*AUTHED))
async def list_users(
    session: Session,
    actor: CurrentActor,
    search: Annotated[FilterText | None, filter_query(users.MAX_SEARCH)] = None,
    skip: Skip = 0,
    limit: Limit = 50,
) -> Page[UserOut]:
    """Admin only (manage_users); 403 for other roles. Sorted by username ignoring case;
    `search` matches username, email or full name (any case, at most 100 characters, no control
    characters: 422 naming it). Answers `{items, total, skip, limit}`; `limit` at most 500.
    Password hashes are never returned."""
    rows, total = await users.list_users(session, actor, search=search, skip=skip, limit=limit)
    return Page(items=[UserOut.model_validate(u) for u in rows], total=total, skip=skip, limit=limit)


@router.post(
    "",
    dependencies=[permitted(Permission.manage_users)],
    response_model=UserOut,
    status_code=201,
    summary="Create a user",
    responses=error_responses(*AUTHED, 409),
)
async def create_user(body: UserCreate, session: Session, actor: CurrentActor) -> UserOut:
    """Admin only (manage_users). `role` defaults to viewer. `username` is trimmed; 409 naming
    `username` (taken ignoring case, also when requests race) or `email` (unique ignoring case);
    422 naming each rule the password breaks, or an email in a non-plain (NFKC-changing) form.
    Audited as `user.create`."""
    return UserOut.model_validate(await users.create(session, actor, body))


@router.get(
    "/{user_id}", response_model=UserOut, summary="Get a user", responses=error_responses(*AUTHED, 404)
)
async def get_user(user_id: IdPath, session: Session, actor: CurrentActor) -> UserOut:
    """Your own account for any signed-in user; anyone else's needs admin (manage_users, 403).
    404 when no user has this id."""
    return UserOut.model_validate(await users.get(session, actor, user_id))


@router.put(
    "/{user_id}",
    dependencies=[permitted(Permission.manage_users)],
    response_model=UserOut,
    summary="Update role, active flag, email or full name",
    responses=error_responses(*AUTHED, 404, 409),
)
async def update_user(user_id: IdPath, body: UserUpdate, session: Session, actor: CurrentActor) -> UserOut:
    """Admin only (manage_users). Changes only the fields sent (422 when none is). An admin
    cannot demote or deactivate themself (403 naming the field); demoting or deactivating the last
    active admin is 409, also when two admins race. Deactivation ends every session of the user and
    revokes their personal access tokens. 404 when unknown. Audited as `user.update` (from and to)."""
    return UserOut.model_validate(await users.update_user(session, actor, user_id, body))


@router.post(
    "/{user_id}/reset-password",
    dependencies=[permitted(Permission.manage_users)],
    response_model=Message,
    summary="Set a new password for a user (ends their sessions)",
    responses=error_responses(*AUTHED, 404),
)
async def reset_password(
    user_id: IdPath, body: ResetPasswordRequest, session: Session, actor: CurrentActor
) -> Message:
    """Admin only (manage_users). 422 naming each rule `new_password` breaks; 404 when the user
    is unknown. Ends every session of the user and revokes all their personal access tokens.
    Audited as `user.reset_password` (with the number of tokens revoked)."""
    await users.reset_password(session, actor, user_id, body.new_password)
    return Message(detail="password reset")


@router.delete(
    "/{user_id}",
    status_code=204,
    summary="Delete a user",
    responses=error_responses(*AUTHED, 404, 409),
    dependencies=[permitted(Permission.manage_users), NO_BODY],
)
async def delete_user(user_id: IdPath, session: Session, actor: CurrentActor) -> Response:
    """Admin only (manage_users). 403 for your own account; 409 for the last active admin;
    404 when unknown. Their scripts and runs stay, without an author; their tokens stop working at
    once and the id is never reused. Audited as `user.delete`."""
    await users.delete(session, actor, user_id)
    return Response(status_code=204)
