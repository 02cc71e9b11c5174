"""Service errors carry the HTTP status the API maps them to and a message that says what to fix."""

from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    status_code = 400

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class Invalid(ServiceError):
    status_code = 422


class Unauthorized(ServiceError):
    status_code = 401


class Forbidden(ServiceError):
    status_code = 403


class NotFound(ServiceError):
    status_code = 404


class Conflict(ServiceError):
    status_code = 409


class RateLimited(ServiceError):
    """`message` says what was limited; the error adds when to retry (`retry_after`, in seconds,
    also sent as the HTTP `Retry-After` header)."""

    status_code = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(f"{message}: try again in {retry_text(retry_after)}")
        self.retry_after = retry_after


def retry_text(seconds: int) -> str:
    """`1 second`, `42 seconds`, `2 minutes` (rounded), for a sentence."""
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = round(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"
