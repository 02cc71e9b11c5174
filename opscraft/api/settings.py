"""`/api/v1/settings`: run-time settings (read: any user; change: admin)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from opscraft.api.deps import CurrentActor, Session
from opscraft.api.schemas import AUTHED, error_responses
from opscraft.services import app_settings

router = APIRouter(prefix="/api/v1/settings", tags=["settings"])


class SettingsPatch(BaseModel):
    registration_open: bool | None = None
    local_runner_enabled: bool | None = None


@router.get("", summary="Current run-time settings", responses=error_responses(401, 429))
async def get_settings(session: Session, actor: CurrentActor) -> dict[str, Any]:
    return await app_settings.get_all(session)


@router.put("", summary="Change run-time settings (admin)", responses=error_responses(*AUTHED))
async def put_settings(body: SettingsPatch, session: Session, actor: CurrentActor) -> dict[str, Any]:
    for key, value in body.model_dump(exclude_none=True).items():
        await app_settings.put(session, actor, key, value)
    return await app_settings.get_all(session)
