"""Response shapes shared by several routers."""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Path, Query
from pydantic import BaseModel, ValidationError, ValidatorFunctionWrapHandler, WrapValidator

from opscraft.services.bodies import WHOLE_TEXT
from opscraft.services.paging import MAX_PAGE

T = TypeVar("T")

# Database ids are 32-bit on PostgreSQL: a larger number is a 422, not a database error.
MAX_ID = 2_147_483_647
IdPath = Annotated[int, Path(ge=1, le=MAX_ID, description="Numeric id"), WHOLE_TEXT]
IdQuery = Annotated[int | None, Query(ge=1, le=MAX_ID), WHOLE_TEXT]
Skip = Annotated[int, Query(ge=0, le=MAX_ID, description="Items to skip (pagination)"), WHOLE_TEXT]
Limit = Annotated[
    int, Query(ge=1, le=MAX_PAGE, description="Items to return at most (pagination)"), WHOLE_TEXT
]


def filter_query(max_length: int, description: str | None = None) -> Any:
    """The `Query` of a free-text list filter (`FilterText`): its bound documented in the OpenAPI
    schema, and checked by the service (`invisible.check_filters`) so the API and the UI refuse
    the same value with the same message."""
    return Query(description=description, json_schema_extra={"maxLength": max_length})


def _as_sent(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    try:
        return handler(value)
    except ValidationError:
        return value


# A request body documented as its model but handed over as sent when the model refuses it: the
# service validates it again together with its own checks, so that one 422 names every problem
# (a bad name and a bad parameter declaration at once), as the UI's forms show them.
CheckedByService = WrapValidator(_as_sent)


class ErrorDetail(BaseModel):
    """One problem of a refused request: the field it concerns (null: the request as a whole) and what to
    fix.
    """

    field: str | None = None
    message: str


class ErrorResponse(BaseModel):
    """The body of every error answer: `detail` says what went wrong, `errors` lists the fields to fix (may
    be empty).
    """

    detail: str
    errors: list[ErrorDetail] = []


class Page(BaseModel, Generic[T]):
    """One page of a list: `items`, the `total` count of matches, and the `skip` and `limit` that chose the
    page.
    """

    items: list[T]
    total: int
    skip: int
    limit: int


class Message(BaseModel):
    """A plain answer carrying one sentence in `detail`."""

    detail: str


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses=` entry documenting the error shape for the given status codes."""
    descriptions = {
        400: "Malformed request",
        401: "Missing, invalid or expired token",
        403: "Your role may not do this",
        404: "Not found",
        406: "The `Accept` header refuses the answer's media type",
        409: "Conflicts with existing data",
        413: "Request body too large",
        422: "Invalid input: `errors` names each field",
        429: "Rate limit exceeded (see Retry-After)",
    }
    return {code: {"model": ErrorResponse, "description": descriptions.get(code, "Error")} for code in codes}


AUTHED = (401, 403, 422, 429)
# Answered on every route by `security.http.RequestLimitsMiddleware` before the route runs: a body
# that is not JSON, too large, too deep, or any text that cannot be stored.
REQUEST_CHECKS = (400, 413, 422)
