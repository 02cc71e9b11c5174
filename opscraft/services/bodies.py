"""`Body`: the one base of every request body model (API and UI submit through the same models).

Rules, the same for every body:
- an unknown key is refused (422 naming it: "Extra inputs are not permitted"), never dropped;
- a boolean is only a JSON `true`/`false`: not `"yes"`, `"false"`, `1` or `0`, nor `null` where
  the field cannot be null (`NULL_BOOL_MESSAGE`, one wording for every such switch: a schedule's,
  a channel's or a rule's `enabled`...; Pydantic said "Input should be a valid boolean");
- a whole number is never a boolean, a string or a number with a fraction (`true` is not 1,
  `"5"` is not 5, and neither is `5.0`: one rule for every integer field, the settings' too); a
  decimal field takes numbers only. The same rule holds for an integer in the path or the query
  (`WHOLE_TEXT`: `?limit=5.0` and `/scripts/5.0` are 422 naming the parameter);
- a date and time is ISO 8601 text, never a number or digits alone: Pydantic reads `2026` as a
  Unix time (1970-01-01T00:33:46Z), so a year typed as `?since=2026` filtered from 1970 and an
  `expires_at` of `2030` was 1970. It is also within years 1-9999 in UTC (`instants.OUT_OF_RANGE`
  names the field and the range: Pydantic's own words for year 10000 were "invalid date
  separator"). The same rules hold in the query (`ISO_TEXT`).
  Pydantic's lax mode would convert all of these silently (so
  `{"is_active": "false"}` deactivated a user), while its strict mode would also refuse an enum
  or a date given as text, which JSON can only send as text.

Text any field holds directly (a name, an email: `str` fields, not only `storable.Text`) is refused
when the databases cannot store it (a NUL, a lone surrogate: `db.text.problem`) before the
field's own rules, in the words the API's door (`security.http`) says it: the UI's forms, which
call the services without that door, say the same as the API (a username with a NUL was "must be
3-64 characters: ASCII letters, digits..." in the new-user dialog, "must not contain NUL characters"
through the API).

The check runs before each field's own validation and looks through `X | None`, `Annotated`,
lists and dict values; unions of several types keep Pydantic's own choice, and a field declared
`StrictBool`/`StrictInt`/`StrictFloat` is left to Pydantic's strict mode (so its own validators,
e.g. the settings' service messages, speak first).
"""

from __future__ import annotations

import re
import types
from datetime import datetime
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, BeforeValidator, ConfigDict, Strict, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from opscraft.db.text import problem as unstorable
from opscraft.services import instants
from opscraft.services.errors import sent_kind

NULL_BOOL_MESSAGE = "must be true or false, not null: leave the field out to keep its value (or its default)"
# What a field of each type must be; a value of another JSON type is told this and what it is:
# "must be true or false (it is text)", "must be a whole number (it is true, a JSON boolean)".
BOOL_EXPECTED = "must be true or false"
INT_EXPECTED = "must be a whole number"
NUMBER_EXPECTED = "must be a number"
DATETIME_EXPECTED = "must be an ISO 8601 date and time as text, e.g. 2030-01-31T12:00:00Z"
DATETIME_MESSAGE = (
    "must be an ISO 8601 date and time, e.g. 2030-01-31T12:00:00Z (a bare number is not read as a Unix time)"
)
# Text that is only a number (`5`, ` -1.5 `, `.5`): whole digits and a fraction as alternatives,
# so a run of digits splits one way. `[0-9]*\.?[0-9]+` split it at every place and tried each
# against the end: 65 s for 64 KiB of digits before a letter, on the event loop.
_NUMERIC_TEXT = re.compile(r"\s*[+-]?(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)\s*")
PLUS_AS_SPACE_MESSAGE = (
    "the '+' of its UTC offset arrived as a space ('+' in a query string means a space): "
    "send it as %2B (2030-01-31T12:00:00%2B01:00), or the time in UTC with Z"
)
# A date and time whose offset lost its '+' in the query string (`T14:00:00 01:00`).
_PLUS_AS_SPACE = re.compile(r".*T[0-9:.]+ [0-9]{2}(?::?[0-9]{2})?")


# The error type (`errors[].type` of a ValidationError) of each `scalar_problem` message, by the
# words it starts with.
_KINDS = {
    NULL_BOOL_MESSAGE: "bool_type",
    BOOL_EXPECTED: "bool_type",
    INT_EXPECTED: "int_type",
    NUMBER_EXPECTED: "float_type",
    DATETIME_MESSAGE: "datetime_from_number",
    DATETIME_EXPECTED: "datetime_type",
    instants.OUT_OF_RANGE: "datetime_range",
}


def _kind(problem: str) -> str:
    return next((kind for start, kind in _KINDS.items() if problem.startswith(start)), "value_error")


def _wrong(expected: str, value: Any) -> str:
    """`expected`, and what `value` is instead (`errors.sent_kind`)."""
    return _instead(expected, sent_kind(value))


def _instead(expected: str, kind: str) -> str:
    """`must be a whole number (it is text)`: what a value must be, and what was sent (`kind`)."""
    return f"{expected} (it is {kind})"


INT_MESSAGE = _wrong(INT_EXPECTED, 5.0)
"""What an integer field says of a number sent with a decimal point (`5.0`)."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_numeric_time(value: Any) -> bool:
    """A value Pydantic would read as a Unix time: a number, or text that is only a number."""
    return isinstance(value, int | float) or (isinstance(value, str) and bool(_NUMERIC_TEXT.fullmatch(value)))


def _time_problem(value: Any) -> str | None:
    """Why `value` is no date and time the services read (`DATETIME_MESSAGE`: a number; another
    JSON value that is not text, such as `true`: `DATETIME_EXPECTED` and what it is;
    `instants.OUT_OF_RANGE`: outside years 1-9999 in UTC), or None (Pydantic parses the rest)."""
    if isinstance(value, bool | list | dict):
        return _wrong(DATETIME_EXPECTED, value)  # `true` said "a bare number" (bool is an int)
    if _is_numeric_time(value):
        return DATETIME_MESSAGE
    if isinstance(value, str) and instants.out_of_range(value):
        return instants.OUT_OF_RANGE
    return None


def not_nullable(schema: dict[str, Any]) -> None:
    """The JSON schema of a field that may be left out but is never null: its `anyOf` of the type
    and null becomes the type alone, and the null default is not shown (OpenAPI 3.1 / JSON Schema:
    a client or SDK generated from `/openapi.json` then never sends the null it would be refused)."""
    variants = [v for v in schema.pop("anyOf", []) if v.get("type") != "null"]
    if len(variants) == 1:
        schema.update(variants[0])
    elif variants:
        schema["anyOf"] = variants
    if schema.get("default", 0) is None:
        del schema["default"]


def null_refused(annotation: Any) -> PydanticCustomError:
    """The error of a null sent for a field of type `annotation` (bool, int, float or datetime)
    that is optional only to be left out (a partial update's field): the words `scalar_problem`
    gives a field that cannot be null ("must be a whole number (it is empty, a JSON null)")."""
    problem = scalar_problem(annotation, None)
    if problem is None:
        raise TypeError(f"{annotation!r} has no words for a null")
    return PydanticCustomError(_kind(problem), problem)


def scalar_problem(annotation: Any, value: Any) -> str | None:
    """Why `value` is not a JSON value of the boolean, numeric or date-and-time type `annotation`
    declares (`BOOL_EXPECTED`, `INT_EXPECTED`, `NUMBER_EXPECTED`, each with what `value` is, or
    `_time_problem`'s words), or None when
    it is, or when the type is none of those (other types are left to Pydantic). `None` is
    refused for a boolean that cannot be null (`NULL_BOOL_MESSAGE`), and for a whole number, a
    number or a date and time that cannot be null, with what it is (`must be a whole number (it
    is null)`: Pydantic said "Input should be a valid integer" of `{"script_id": null}`)."""
    if value is None:
        bare = _bare(annotation)
        if bare is bool:
            return NULL_BOOL_MESSAGE
        expected = {int: INT_EXPECTED, float: NUMBER_EXPECTED, datetime: DATETIME_EXPECTED}.get(bare)
        return None if expected is None else _wrong(expected, None)
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *metadata = get_args(annotation)
        if any(isinstance(m, Strict) and m.strict for m in metadata):
            return None  # StrictBool, StrictInt...: Pydantic checks it (after the field's own validators)
        return scalar_problem(inner, value)
    if origin in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        return scalar_problem(members[0], value) if len(members) == 1 else None
    if annotation is bool:
        return None if isinstance(value, bool) else _wrong(BOOL_EXPECTED, value)
    if annotation is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else _wrong(INT_EXPECTED, value)
    if annotation is float:
        return None if _is_number(value) else _wrong(NUMBER_EXPECTED, value)
    if annotation is datetime:
        return _time_problem(value)
    if origin in (list, set, frozenset, tuple) and isinstance(value, list | tuple):
        args = get_args(annotation)
        inner = args[0] if args else Any
        return next((p for v in value if (p := scalar_problem(inner, v))), None)
    if origin is dict and isinstance(value, dict):
        args = get_args(annotation)
        inner = args[1] if len(args) == 2 else Any
        return next((p for v in value.values() if (p := scalar_problem(inner, v))), None)
    return None


def _bare(annotation: Any) -> Any:
    """`annotation` without `Annotated` metadata (a union, `X | None`, stays a union); a strict
    type (`StrictBool`) is left as it is, for Pydantic's strict mode."""
    while get_origin(annotation) is Annotated:
        inner, *metadata = get_args(annotation)
        if any(isinstance(m, Strict) and m.strict for m in metadata):
            return annotation
        annotation = inner
    return annotation


_WHOLE_TEXT = re.compile(r"[+-]?[0-9]+")
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_EXPONENT_TEXT = re.compile(r"[+-]?[0-9]+[eE][+-]?[0-9]+")


def text_kind(value: str) -> str:
    """What the text of a path or query value that is no whole number is, in `sent_kind`'s words
    for the JSON value a body would have sent (never the text itself: the one wording of every
    integer's refusal, `must be a whole number (it is ...)`): `5.0` is "a number with a decimal
    point" as a body's `5.0` is; `1e3` "a number with an exponent"; ` 5` "a number with spaces
    around it"; `٣` (another script's digit, which `int()` reads) "digits other than 0-9"; empty
    text "empty"; anything else "text"."""
    if _DECIMAL_TEXT.fullmatch(value):
        return sent_kind(float(value))
    if _EXPONENT_TEXT.fullmatch(value):
        return "a number with an exponent"
    if value != value.strip() and _WHOLE_TEXT.fullmatch(value.strip()):
        return "a number with spaces around it"
    digits = value.lstrip("+-")
    if digits and all(ch.isdigit() for ch in digits):
        return "digits other than 0-9"
    return "empty" if not value else sent_kind(value)


def _whole_text(value: Any) -> Any:
    """An integer path or query parameter as sent: digits with an optional sign, nothing else
    (pydantic's lax mode would read `5.0` as 5); refused in a body's words, naming what was sent
    (`text_kind`)."""
    if isinstance(value, str) and not _WHOLE_TEXT.fullmatch(value):
        raise PydanticCustomError("int_parsing", _instead(INT_EXPECTED, text_kind(value)))
    return value


# Metadata of every integer path or query parameter, after its `Path`/`Query` (before it, FastAPI
# documents `ge`/`le` as unknown keys instead of `minimum`/`maximum`):
# `Annotated[int, Query(...), WHOLE_TEXT]`.
WHOLE_TEXT = BeforeValidator(_whole_text)


def _iso_text(value: Any) -> Any:
    """A date-and-time query parameter as sent: ISO 8601 text, not a number (module doc), and
    not one whose offset's '+' was left unencoded (`PLUS_AS_SPACE_MESSAGE`)."""
    problem = _time_problem(value)
    if problem is not None:
        raise PydanticCustomError(_kind(problem), problem)
    if isinstance(value, str) and _PLUS_AS_SPACE.fullmatch(value):
        raise PydanticCustomError("datetime_parsing", PLUS_AS_SPACE_MESSAGE)
    return value


# Metadata of every date-and-time query parameter, after its `Query`:
# `Annotated[datetime | None, Query(...), ISO_TEXT]`; an upper bound (`until`) takes `ISO_UNTIL`,
# which also reads a day alone as that whole day (`services.instants.until_text`).
ISO_TEXT = BeforeValidator(_iso_text)
ISO_UNTIL = BeforeValidator(lambda value: instants.until_text(_iso_text(value)))


class Body(BaseModel):
    """Base of request bodies: unknown keys refused, booleans and numbers strict (module doc)."""

    model_config = ConfigDict(extra="forbid")

    @field_validator("*", mode="before")
    @classmethod
    def _strict_scalars(cls, value: Any, info: ValidationInfo) -> Any:
        field = cls.model_fields.get(info.field_name or "")
        if field is None or (value is None and any(isinstance(m, BeforeValidator) for m in field.metadata)):
            return value  # a field reading null its own way says it (a link's "choose a script to start")
        problem = scalar_problem(field.annotation, value)
        if problem is None and isinstance(value, str):
            problem = unstorable(value)  # the API's door's words, for the UI's forms too
        if problem is not None:
            raise PydanticCustomError(_kind(problem), problem)
        return value
