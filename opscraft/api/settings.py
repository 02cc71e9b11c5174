"""`/api/v1/settings`: run-time settings (read: any user; change: admin)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from opscraft.api.deps import CurrentActor, Session
from opscraft.api.schemas import AUTHED, error_responses
from opscraft.db.models import Role
from opscraft.services import app_settings

router = APIRouter(prefix="/api/v1/settings", tags=["settings"])


class SettingsOut(BaseModel):
    registration_open: bool
    local_runner_enabled: bool
    local_runner_role: Role = Field(
        description="The lowest role that may run scripts on the local runner (docs/executions.md)"
    )
    api_tokens_require_expiry: bool


class SettingsPatch(BaseModel):
    """Only the settings given change."""

    model_config = ConfigDict(extra="forbid")

    registration_open: bool | None = None
    local_runner_enabled: bool | None = None
    local_runner_role: Role | None = None
    api_tokens_require_expiry: bool | None = None


@router.get(
    "", response_model=SettingsOut, summary="Current run-time settings", responses=error_responses(401, 429)
)
async def get_settings(session: Session, actor: CurrentActor) -> SettingsOut:
    return SettingsOut(**await app_settings.get_all(session))


@router.put(
    "",
    response_model=SettingsOut,
    summary="Change run-time settings (admin)",
    responses=error_responses(*AUTHED),
)
async def put_settings(body: SettingsPatch, session: Session, actor: CurrentActor) -> SettingsOut:
    changes = body.model_dump(exclude_none=True, mode="json")
    return SettingsOut(**await app_settings.update(session, actor, changes))
