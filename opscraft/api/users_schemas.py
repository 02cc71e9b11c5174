"""Request and response shapes for auth and user administration."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field, model_validator

from opscraft.api.stored_problem import StoredProblem
from opscraft.db import stored_shapes
from opscraft.db.models import Role
from opscraft.services.bodies import Body
from opscraft.services.storable import Text
from opscraft.services.users import MIN_PASSWORD

# Documented only: `services.users.check_password_rules` enforces it with a message naming the rule.
NEW_PASSWORD_SCHEMA: dict[str, Any] = {"minLength": MIN_PASSWORD, "description": "At least 8 characters"}


class UserOut(BaseModel):
    """A user account as the API shows it (never the password hash)."""

    id: int
    username: str
    email: str
    full_name: str
    role: Role
    is_active: bool
    last_login_at: datetime | None
    created_at: datetime
    updated_at: datetime
    stored_problem: StoredProblem = None

    model_config = {"from_attributes": True}

    @model_validator(mode="before")
    @classmethod
    def _with_stored_problem(cls, data: Any) -> Any:
        """A `User` row read with its `stored_problem` (a stored role none of today's: read as
        viewer, db/stored_shapes.py)."""
        if isinstance(data, dict):
            return data
        fields = {name: getattr(data, name) for name in cls.model_fields if name != "stored_problem"}
        return fields | {"stored_problem": stored_shapes.note(data)}


class LoginRequest(Body):
    """Body of a login with username and password."""

    username: Text = Field(min_length=1, max_length=64, examples=["john_doe"])
    password: Text = Field(min_length=1, max_length=256, examples=["SecurePass123"])


class RefreshRequest(Body):
    """Body of a refresh: the refresh token from the last login or refresh (each is accepted once)."""

    refresh_token: str = Field(min_length=1, max_length=4096)


class LogoutRequest(Body):
    """Body of a logout: the refresh token to revoke, if any."""

    refresh_token: str | None = Field(default=None, max_length=4096)


class TokenResponse(BaseModel):
    """The answer to a login or refresh: a JWT access token and a refresh token, for the `Authorization:
    Bearer` header.
    """

    access_token: str
    refresh_token: str
    token_type: str = "bearer"


class ChangePasswordRequest(Body):
    """Body of a password change by its owner: the current password and the new one (the password rules
    apply to it).
    """

    current_password: Text = Field(min_length=1, max_length=256)
    new_password: Text = Field(min_length=1, max_length=256, json_schema_extra=NEW_PASSWORD_SCHEMA)


class ResetPasswordRequest(Body):
    """Body of an admin's password reset: the new password (the password rules apply to it)."""

    new_password: Text = Field(min_length=1, max_length=256, json_schema_extra=NEW_PASSWORD_SCHEMA)
