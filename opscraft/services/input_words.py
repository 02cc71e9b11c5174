"""This project's words for pydantic's error types: one source for the API's 422s and the UI's
messages next to a field (`errors.input_message` uses it).

pydantic's stock messages ("String should have at least 1 character", "Input should be a valid
integer", "Field required") read differently from the project's own ("must not be empty or only
spaces") for the same fault, and a limit's message did not say how long the value sent was. Each
fault here has one wording: empty or blank, too long (the limit and the length sent), missing,
out of range, not one of the choices (a wrong JSON type: `errors._EXPECTED_TYPE` and `bodies`).
Never the value itself: it may be a password or a secret. An error type not listed keeps
pydantic's message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

EMPTY_MESSAGE = "must not be empty or only spaces"
REQUIRED_MESSAGE = "is required: this field is missing"
DATETIME_TEXT_MESSAGE = "must be an ISO 8601 date and time, e.g. 2030-01-31T12:00:00Z"
UNKNOWN_FIELD_MESSAGE = "is not a field of this form: remove it (Extra inputs are not permitted)"
# A true/false query parameter (`?all=`, `?ended=`, `?force=`) holding other text: pydantic's
# "Input should be a valid boolean, unable to interpret input" named no value it reads.
BOOL_TEXT_MESSAGE = "must be true or false (1 or 0, yes or no, on or off are read so too)"

# What the OpenAPI schema says of a text `blank_problem` checks (a script's content): not empty.
# Not pydantic's `min_length`, whose refusal said `EMPTY_MESSAGE` before the service said its own.
NOT_EMPTY: dict[str, Any] = {"minLength": 1}


def blank_problem(text: str, write: str) -> str | None:
    """Why `text` (a script's content, a shared inventory's hosts) cannot be saved for holding
    nothing, or None: `""` is "must not be empty", text of only white space (spaces, tabs, line
    breaks: `str.isspace`) "must not be blank (...)", each followed by `write`, what to do
    ("write the script"). One wording for each, for the API and the UI alike: `""` said
    pydantic's "must not be empty or only spaces" (`EMPTY_MESSAGE`) while only spaces were told
    "must not be blank"."""
    if text == "":
        return f"must not be empty: {write}"
    if text.isspace():
        return f"must not be blank (only spaces, tabs and line breaks): {write}"
    return None


def _length(value: Any) -> str:
    return f"{len(value)}" if isinstance(value, str | list | dict | tuple | set) else "?"


def _too_short(err: Mapping[str, Any], ctx: Mapping[str, Any]) -> str:
    least = int(ctx.get("min_length", 1))
    if least <= 1:
        return EMPTY_MESSAGE
    return f"must be at least {least} characters, not {_length(err.get('input'))}"


def _too_long(err: Mapping[str, Any], ctx: Mapping[str, Any]) -> str:
    return f"must be at most {int(ctx['max_length'])} characters, not {_length(err.get('input'))}"


def _items(err: Mapping[str, Any], ctx: Mapping[str, Any]) -> str:
    """A length refused as pydantic's generic "too_short"/"too_long": a list's count of items;
    a text's (a `str` with a length rule beside a check of its own, as `storable.Text` in an
    optional field) in the words of a text's limit, not "must have at least 1 item"."""
    if isinstance(err.get("input"), str):
        return _too_long(err, ctx) if "max_length" in ctx else _too_short(err, ctx)
    actual = ctx.get("actual_length", _length(err.get("input")))
    if "max_length" in ctx:
        return f"must have at most {_count(int(ctx['max_length']))}, not {actual}"
    return f"must have at least {_count(int(ctx.get('min_length', 1)))}, not {actual}"


def _count(items: int) -> str:
    """`1 item`, `5 items`: "must have at least 1 items" read wrong."""
    return f"{items} item" if items == 1 else f"{items} items"


def _fixed(message: str) -> Callable[[Mapping[str, Any], Mapping[str, Any]], str]:
    return lambda _err, _ctx: message


_WORDS: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], str]] = {
    "missing": _fixed(REQUIRED_MESSAGE),
    "string_too_short": _too_short,
    "string_too_long": _too_long,
    "too_short": _items,
    "too_long": _items,
    "extra_forbidden": _fixed(UNKNOWN_FIELD_MESSAGE),
    "bool_parsing": _fixed(BOOL_TEXT_MESSAGE),
    "datetime_parsing": _fixed(DATETIME_TEXT_MESSAGE),
    "datetime_from_date_parsing": _fixed(DATETIME_TEXT_MESSAGE),
    "greater_than_equal": lambda _e, ctx: f"must be at least {ctx['ge']}",
    "greater_than": lambda _e, ctx: f"must be more than {ctx['gt']}",
    "less_than_equal": lambda _e, ctx: f"must be at most {ctx['le']}",
    "less_than": lambda _e, ctx: f"must be less than {ctx['lt']}",
    "enum": lambda _e, ctx: f"must be one of {ctx['expected']}",
    "literal_error": lambda _e, ctx: f"must be one of {ctx['expected']}",
    "string_pattern_mismatch": lambda _e, ctx: f"must match the pattern {ctx['pattern']}",
}


# The openings of pydantic-core's own messages: a `PydanticCustomError` of the same type (`bodies`
# raises `bool_type` with `NULL_BOOL_MESSAGE`) already says the project's words.
STOCK_PHRASES = (
    "String should",
    "Input should",
    "Field required",
    "List should",
    "Dictionary should",
    "Value should",
    "Tuple should",
    "Set should",
    "Extra inputs",
)


def worded(err: Mapping[str, Any]) -> str | None:
    """The project's message for one pydantic error (a `ValidationError.errors()` item) whose
    message is pydantic's stock one (`STOCK_PHRASES`), or None: a validator's own message (a
    `value_error`, a `PydanticCustomError`), or an error type it has no words for."""
    words = _WORDS.get(str(err.get("type", "")))
    if words is None or not str(err.get("msg", "")).startswith(STOCK_PHRASES):
        return None
    try:
        return words(err, err.get("ctx") or {})
    except (KeyError, TypeError, ValueError):  # an error of that type without the usual context
        return None
