"""Request and response shapes for auth and user administration."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from opscraft.db.models import Role


class UserOut(BaseModel):
    id: int
    username: str
    email: str
    full_name: str
    role: Role
    is_active: bool
    last_login_at: datetime | None
    created_at: datetime
    updated_at: datetime

    model_config = {"from_attributes": True}


class LoginRequest(BaseModel):
    username: str = Field(min_length=1, max_length=64, examples=["john_doe"])
    password: str = Field(min_length=1, max_length=256, examples=["SecurePass123"])


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=4096)


class LogoutRequest(BaseModel):
    refresh_token: str | None = Field(default=None, max_length=4096)


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"


class ChangePasswordRequest(BaseModel):
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


class ResetPasswordRequest(BaseModel):
    new_password: str = Field(min_length=1, max_length=256)
