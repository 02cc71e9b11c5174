"""`/api/v1/settings`: run-time settings (read: any user; change: admin)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictFloat, StrictInt

from opscraft.api.deps import CurrentActor, Session, permitted
from opscraft.api.schemas import AUTHED, error_responses
from opscraft.db.models import Role
from opscraft.services import app_settings, partial
from opscraft.services.bodies import Body
from opscraft.services.permissions import Permission

router = APIRouter(prefix="/api/v1/settings", tags=["settings"])


class SettingsOut(BaseModel):
    """The instance-wide settings an admin may change (registration, local runner, token expiry, output
    retention, warm pool).
    """

    registration_open: bool
    local_runner_enabled: bool
    local_runner_role: Role = Field(
        description="The lowest role that may run scripts on the local runner (docs/executions.md)"
    )
    api_tokens_require_expiry: bool
    output_retention_days: int = Field(description="Delete stored output older than this many days (0: keep)")
    output_retention_gb: float = Field(description="Delete the oldest output beyond this many GB (0: no cap)")
    retention_delete_executions: bool = Field(
        description="Past output_retention_days, delete the execution rows too (audit events stay); "
        "needs output_retention_days above 0"
    )
    warm_pool_size: int = Field(
        description="Warm Docker containers per isolation profile used recently (0: every run starts cold); "
        "a worker started with OPSCRAFT_WARM_POOL_SIZE keeps that number instead"
    )


def _low(key: str) -> int:
    """The lowest value of a numeric setting (`app_settings.RANGES`), for the schema."""
    return int(app_settings.RANGES[key][0])


def _high(key: str) -> int:
    """The highest value of a numeric setting (`app_settings.RANGES`), for the schema."""
    return int(app_settings.RANGES[key][1])


def _checked_by_service(key: str) -> BeforeValidator:
    """Refuse a bad value of setting `key` with the service's message (`app_settings.problem`),
    before pydantic's own checks would word the same bound another way."""

    def check(value: Any) -> Any:
        message = None if value is None else app_settings.problem(key, value)
        if message:
            raise ValueError(message)
        return value

    return BeforeValidator(check)


class SettingsPatch(Body):
    """Only the settings given change. Values are JSON's own types (no "true" for true). Each value
    is checked by the service first, so a bad one gets the settings page's message; the bounds
    below are for the schema. A body that sends no setting (`{}`, only nulls) is a 422."""

    model_config = ConfigDict(json_schema_extra=partial.at_least_one_field)

    registration_open: Annotated[StrictBool | None, _checked_by_service("registration_open")] = None
    local_runner_enabled: Annotated[StrictBool | None, _checked_by_service("local_runner_enabled")] = None
    local_runner_role: Annotated[Role | None, _checked_by_service("local_runner_role")] = None
    api_tokens_require_expiry: Annotated[
        StrictBool | None, _checked_by_service("api_tokens_require_expiry")
    ] = None
    output_retention_days: Annotated[StrictInt | None, _checked_by_service("output_retention_days")] = Field(
        default=None,
        ge=_low("output_retention_days"),
        le=_high("output_retention_days"),
        description="0 keeps output",
    )
    output_retention_gb: Annotated[StrictFloat | None, _checked_by_service("output_retention_gb")] = Field(
        default=None,
        ge=_low("output_retention_gb"),
        le=_high("output_retention_gb"),
        description="0 means no cap",
    )
    retention_delete_executions: Annotated[
        StrictBool | None, _checked_by_service("retention_delete_executions")
    ] = None
    warm_pool_size: Annotated[StrictInt | None, _checked_by_service("warm_pool_size")] = Field(
        default=None,
        ge=_low("warm_pool_size"),
        le=_high("warm_pool_size"),
        description="0 disables the warm pool",
    )


@router.get(
    "", response_model=SettingsOut, summary="Current run-time settings", responses=error_responses(401, 429)
)
async def get_settings(session: Session, actor: CurrentActor) -> SettingsOut:
    """Any signed-in user. The stored settings: on a server started with `OPSCRAFT_LOCAL_RUNNER`
    or `OPSCRAFT_LOCAL_RUNNER_ROLE` those environment variables decide instead of
    `local_runner_enabled`/`local_runner_role`, and a worker started with `OPSCRAFT_WARM_POOL_SIZE`
    keeps that size (`GET /api/v1/warm-pools` shows the size in force)."""
    return SettingsOut(**await app_settings.get_all(session))


@router.put(
    "",
    dependencies=[permitted(Permission.manage_settings)],
    response_model=SettingsOut,
    summary="Change run-time settings (admin)",
    responses=error_responses(*AUTHED),
)
async def put_settings(body: SettingsPatch, session: Session, actor: CurrentActor) -> SettingsOut:
    """Admin only (manage_settings). Changes only the keys sent, all or none; values are JSON's
    own types (`true`, not "true"). 422 naming every bad value at once (type or range:
    `output_retention_days` 0-36500, `output_retention_gb` 0-1000000, `warm_pool_size` 0-16;
    `retention_delete_executions` on with `output_retention_days` 0, sent or stored), or
    `body` when it sends no setting (`{}`, or only nulls: a null is no change, never a reset).
    Answers every setting. Each changed key is audited as `setting.update`; a value sent unchanged
    records nothing."""
    changes = body.model_dump(exclude_none=True, mode="json")
    return SettingsOut(**await app_settings.update(session, actor, changes))
