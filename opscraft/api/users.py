"""`/api/v1/users`: user administration (admin only; enforced in services)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Response

from opscraft.api.deps import CurrentActor, Session, permitted
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
    return UserOut.model_validate(await users.create(session, actor, body))


@router.get(
    "/{user_id}", response_model=UserOut, summary="Get a user", responses=error_responses(*AUTHED, 404)
)
async def get_user(user_id: IdPath, session: Session, actor: CurrentActor) -> UserOut:
    return UserOut.model_validate(await users.get(session, actor, user_id))


@router.put(
    "/{user_id}",
    dependencies=[permitted(Permission.manage_users)],
    response_model=UserOut,
    summary="Update role, active flag, email or full name",
    responses=error_responses(*AUTHED, 404, 409),
)
async def update_user(user_id: IdPath, body: UserUpdate, session: Session, actor: CurrentActor) -> UserOut:
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
    await users.reset_password(session, actor, user_id, body.new_password)
    return Message(detail="password reset")


@router.delete(
    "/{user_id}",
    status_code=204,
    summary="Delete a user",
    responses=error_responses(*AUTHED, 404, 409),
    dependencies=[permitted(Permission.manage_users)],
)
async def delete_user(user_id: IdPath, session: Session, actor: CurrentActor) -> Response:
    await users.delete(session, actor, user_id)
    return Response(status_code=204)
