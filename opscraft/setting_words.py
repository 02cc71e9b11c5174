"""OpsCraft's words for a setting refused at start (`config.load_settings`), in place of pydantic's.

pydantic said `OPSCRAFT_WORKERS: Input should be a valid integer, unable to parse string as an
integer`: neither what was given nor what is accepted. Each fault here says which setting is
wrong (its environment variable), what was given and what is accepted, the way
`services.input_words` words the API's input faults:
`OPSCRAFT_WORKERS: must be a whole number from 0 to 64; given 'lots'`. A secret setting's value
is never shown (`SECRET_SETTINGS`), only its length. A validator's own message (a URL's, a
network list's) is kept and gets the value given after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import annotated_types

# Settings whose value is a secret or may hold one (a password inside a URL): never echoed.
SECRET_SETTINGS = frozenset(
    {
        "SECRET_KEY",
        "OPSCRAFT_MASTER_KEY",
        "OPSCRAFT_METRICS_TOKEN",
        "DB_PASS",
        "DATABASE_URL",
        "REDIS_URL",
        "OPSCRAFT_STATE_BACKEND_URL",
    }
)
# At most this many characters of a value given are shown (a pasted file stays one line).
SHOWN_CHARACTERS = 80


def _bounds(metadata: list[Any]) -> str:
    """The range the field's `Field(ge=, gt=, le=, lt=)` allows, in words after a space
    (` from 0 to 64`, ` more than 0 and at most 3600`, ` at least 0`), or ""."""
    low = {type(m): m for m in metadata if isinstance(m, annotated_types.Ge | annotated_types.Gt)}
    high = {type(m): m for m in metadata if isinstance(m, annotated_types.Le | annotated_types.Lt)}
    ge, gt = low.get(annotated_types.Ge), low.get(annotated_types.Gt)
    le, lt = high.get(annotated_types.Le), high.get(annotated_types.Lt)
    if ge is not None and le is not None:
        return f" from {ge.ge} to {le.le}"
    words = [f"at least {ge.ge}" if ge is not None else f"more than {gt.gt}" if gt is not None else ""]
    words.append(f"at most {le.le}" if le is not None else f"less than {lt.lt}" if lt is not None else "")
    said = " and ".join(w for w in words if w)
    return f" {said}" if said else ""


_WHOLE = "must be a whole number{bounds}"
_NUMBER = "must be a number{bounds} (a decimal point is allowed: 2.5)"
_BOOL = "must be true or false (also 1/0, yes/no, on/off)"
# pydantic's error type -> the rule in words, formatted with the error's context (`expected`,
# `pattern`, `min_length`...) and `bounds` (`_bounds`).
_RULES: dict[str, str] = {
    **dict.fromkeys(("int_parsing", "int_from_float", "int_type"), _WHOLE),
    **dict.fromkeys(("float_parsing", "float_type"), _NUMBER),
    **dict.fromkeys(("bool_parsing", "bool_type"), _BOOL),
    **dict.fromkeys(("enum", "literal_error"), "must be one of {expected}"),
    **dict.fromkeys(
        ("greater_than_equal", "greater_than", "less_than_equal", "less_than"), "must be{bounds}"
    ),
    "string_type": "must be text",
    "string_pattern_mismatch": "must match the pattern {pattern}",
    "string_too_short": "must be at least {min_length} characters",
    "string_too_long": "must be at most {max_length} characters",
}


def secret_given(value: str) -> str:
    """What was given for a secret setting: only its length."""
    return f"given {len(value)} characters (not shown: the value is secret)"


def given(name: str, value: Any) -> str:
    """What was given for the setting `name`, in words: `given 'lots'` (at most
    `SHOWN_CHARACTERS`), or for a secret setting only its length."""
    if not isinstance(value, str):
        return "given an empty value" if value is None else f"given {value!r}"
    if name in SECRET_SETTINGS:
        return secret_given(value)
    if len(value) > SHOWN_CHARACTERS:
        return f"given {value[:SHOWN_CHARACTERS]!r}... ({len(value)} characters)"
    return f"given {value!r}"


def worded(name: str, err: Mapping[str, Any], metadata: list[Any]) -> str:
    """The one line for the pydantic error `err` (a `ValidationError.errors()` item) of the
    setting `name` whose field carries `metadata` (its constraints): `NAME: rule; given ...`.
    An error type without words here keeps its message (a validator's own, without pydantic's
    `Value error, ` opening)."""
    rule = _RULES.get(str(err.get("type", "")))
    try:
        said = rule.format(bounds=_bounds(metadata), **(err.get("ctx") or {})) if rule else None
    except KeyError:  # an error of that type without the usual context
        said = None
    said = said or str(err.get("msg", "")).removeprefix("Value error, ")
    return f"{name}: {said}; {given(name, err.get('input'))}"
