"""Script parameters: one normalized schema, one resolver used by the library and the executions.

A schema is a list of dicts `{"name", "type", "required", "default", "description", "options"}`.
`normalize` accepts the seed's simple form (`{"NAME": "default"}`), the same object with typed
specs as values (`{"NAME": {"type": "integer", "default": 3}}`) or a list of typed specs.
Error messages name the parameter and the rule, never the submitted value (it may be a secret).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator
from pydantic_core import PydanticCustomError

from opscraft.db import stored_shapes
from opscraft.db.models import Script, ScriptVersion
from opscraft.db.text import (
    TOO_SMALL_MESSAGE,
    find_unreadable_numbers,
    imprecise_message,
    loses_digits,
    problem,
    read_float,
    read_int,
    rounds_to_zero,
)
from opscraft.execution.param_env import interpreted_name
from opscraft.security.http import RepeatedKey, not_json_reason, unique_keys
from opscraft.services.errors import Invalid, sent_kind
from opscraft.services.invisible import FILLERS, value_problem, visible
from opscraft.services.names import trimmed

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
MAX_PARAMETERS = 100
MAX_DESCRIPTION = 500
MAX_OPTIONS = 100
MAX_VALUE_CHARS = 32 * 1024
# A value becomes an environment variable (`NAME=value` and its NUL), which Linux limits to 128 KiB
# (MAX_ARG_STRLEN; past it the program does not start: "Argument list too long"): less room for
# the longest name a value gets (`TF_VAR_` and 64 characters) and its `=`.
MAX_VALUE_BYTES = 128 * 1024 - len("TF_VAR_") - 64 - 2
# All values together: a program's whole environment is limited too (ARG_MAX, usually 2 MiB, which
# the secrets and the run's own variables share).
MAX_TOTAL_BYTES = 1024 * 1024
TRUE_WORDS = frozenset({"true", "1", "yes", "y", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "n", "off"})
SPEC_KEYS = frozenset({"name", "type", "required", "default", "description", "options"})


NOT_AN_OBJECT = "must be a JSON object"
BLANK_REQUIRED = (
    "is required: only blanks (spaces, tabs, line breaks) or characters that print as nothing "
    "(zero-width, a lone accent) is not a value"
)
# Unicode general categories that print nothing on their own: format characters (zero-width
# space, BOM, joiners), combining marks with no letter to sit on, separators.
_SHOWS_NOTHING = frozenset({"Cc", "Cf", "Mn", "Me", "Zs", "Zl", "Zp"})
_FILLERS = frozenset(FILLERS)


def _prints_nothing(text: str) -> bool:
    """Whether every character of `text` is white space, a character of `_SHOWS_NOTHING`'s
    categories (Unicode general categories, UAX #44) or one of `_FILLERS`."""
    return all(c.isspace() or c in _FILLERS or unicodedata.category(c) in _SHOWS_NOTHING for c in text)


def blank_required(spec: dict[str, Any], value: Any) -> bool:
    """Whether `value` is text that prints as nothing (`_prints_nothing`: spaces, tabs, line
    breaks, other Unicode white space, zero-width and format characters, lone combining marks,
    fillers) given to a required parameter (`spec["required"]`): refused as `BLANK_REQUIRED` by
    the run form, `resolve` and `check_preset` alike. The empty string is not "blank" here: each
    caller already treats it as "not given"."""
    return bool(spec.get("required")) and isinstance(value, str) and value != "" and _prints_nothing(value)


@dataclass(frozen=True)
class Unreadable:
    """A form's JSON box whose text the API would refuse as a request body (`json_from_text`):
    `message` says why, and the body model says it under the box's field."""

    message: str


def _an_object(value: Any) -> Any:
    if isinstance(value, Unreadable):
        raise PydanticCustomError("json_invalid", "{reason}", {"reason": value.message})
    if not isinstance(value, dict):
        raise PydanticCustomError("dict_type", NOT_AN_OBJECT)
    return value


# Parameter values in a request body (`{"NAME": value}`): anything else is refused with the one
# message the UI's JSON boxes give too (`json_from_text`), naming the field.
ParameterValues = Annotated[dict[str, Any], BeforeValidator(_an_object)]
# A mapping of parameter names to JSON pointers (webhooks, "then run" links): the same rule.
PointerMapping = Annotated[dict[str, str], BeforeValidator(_an_object)]

DECLARATIONS_SHAPE = "must be an object of parameters (NAME: default or typed spec) or a list of declarations"


def _an_object_or_list(value: Any) -> Any:
    if isinstance(value, list):
        return value
    if isinstance(value, dict | Unreadable):
        return _an_object(value)
    raise PydanticCustomError("declarations_type", DECLARATIONS_SHAPE)


# A parameter declaration in a request body, in any form `normalize` reads: anything else is one
# problem named by its field (`parameters`), not one per branch of the union
# (`parameters.dict[str,any]`, `parameters.list[any]`, which no form's field is called).
Declarations = Annotated[dict[str, Any] | list[Any], BeforeValidator(_an_object_or_list)]


def json_from_text(text: str | None) -> Any:
    """What a form's JSON box holds, for a body model to check with the body's other fields
    (empty: `{}`); text that is not JSON is an `Unreadable` saying where its syntax breaks, as
    the API says of a body (`http.not_json_reason`), so the model refuses it ("must be a JSON
    object: not valid JSON: Expecting property name enclosed in double quotes at line 1, column
    2", `ParameterValues`, `PointerMapping`) in the same answer as the form's other problems. It
    was passed on as text: "must be a JSON object (it is text)" for `{'N': 1}` or a trailing
    comma, which is not what a person typing an object sees as wrong.

    The box is read by the rules of an API request body (security/http.py), so the form and the
    API agree: a key written twice, `NaN`, `Infinity` or a number beyond a float, and nesting
    deeper than the parser goes give an `Unreadable` saying so (so do `1e-400`, which a float
    reads as 0, a number with more digits than a float keeps, and, named where the text breaks,
    a character that is not seen: `http.unseen_in_json`, U+200B between two values); a byte order mark
    before the text is read past, as the API reads a body's (`json.loads` of bytes). Python's
    parser alone kept the last of two values ("first" typed, "second" saved), turned `NaN` into
    a text parameter's "nan", and raised RecursionError (the dialog said nothing)."""
    try:
        value = json.loads(
            (text or "").removeprefix("\ufeff") or "{}",
            object_pairs_hook=unique_keys,
            parse_float=read_float,
            parse_int=read_int,
        )
    except json.JSONDecodeError as error:
        return Unreadable(f"{NOT_AN_OBJECT}: not valid JSON: {not_json_reason(error)}")
    except RepeatedKey as repeated:
        return Unreadable(f"{repeated.key[:64]}: written more than once in one object: write each key once")
    except RecursionError:
        return Unreadable("nested deeper than can be read: write an object of NAME: value")
    found = next(find_unreadable_numbers(value), None)
    return value if found is None else Unreadable(f"{found[0][:64]}: {found[1]}")


class ParamType(StrEnum):
    """The type of a declared script parameter; `choice` takes one of its `options`."""

    string = "string"
    integer = "integer"
    number = "number"
    boolean = "boolean"
    choice = "choice"


def stored_declarations_problem(specs: list[dict[str, Any]]) -> str | None:
    """What keeps a stored declaration list (`scripts.parameters`, a list of objects:
    db/stored_shapes.py) from being read: a declaration without a text `name` or with a `type`
    other than `ParamType`'s, `required` not a boolean, `options` not a list of text. Those are
    what every reader takes as given; a declaration today's other rules refuse (a reserved name)
    still reads. None when none."""
    for index, spec in enumerate(specs):
        if not isinstance(spec.get("name"), str) or not spec["name"]:
            return f"declaration {index} has no name"
        if spec.get("type") not in ParamType.__members__:
            return f"{spec['name']}: type {spec.get('type')!r} is none of {', '.join(ParamType)}"
        if not isinstance(spec.get("required", False), bool):
            return f"{spec['name']}: required is not true or false"
        options = spec.get("options", [])
        if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
            return f"{spec['name']}: options are not a list of text"
        if not isinstance(spec.get("description", ""), str):
            return f"{spec['name']}: description is not text"
    return None


stored_shapes.refine(Script, "parameters", stored_declarations_problem)
stored_shapes.refine(ScriptVersion, "parameters", stored_declarations_problem)


class _Bad(ValueError):
    """One rule broken by one parameter; collected into a single `Invalid`."""


def _fail(message: str, errors: list[dict[str, Any]]) -> Invalid:
    summary = "; ".join(f"{e['field']}: {e['message']}" for e in errors[:10])
    return Invalid(f"{message}: {summary}", details=errors)


def _field(name: object, index: int) -> str:
    return f"parameters.{visible(name[:64])}" if isinstance(name, str) and name else f"parameters[{index}]"


UNDECLARED = "unknown parameter: this script does not declare it"


def undeclared(name: str, said: str = UNDECLARED) -> str:
    """`said` of a value or mapping given for `name`, a parameter the script does not declare;
    a name holding characters that print as nothing (`{"A\u200b": 1}`, pasted, beside a declared
    `A`) says which (`invisible.visible`: `A<U+200B>`), as the field that names it does: it was
    listed as "parameters.A: unknown parameter", with an `A` declared."""
    shown = visible(name[:64])
    if shown == name[:64]:
        return said
    return f"{said}: its name, {shown}, holds characters that print as nothing; remove them"


def convert(kind: ParamType, value: Any, options: list[str] | None = None) -> Any:
    """Convert one value to `kind`; raise `_Bad` with a message saying what is expected. Text
    holding a character `invisible.value_problem` refuses is said so for every kind: `"1\u200b"`
    for an integer was "must be written with the digits 0-9", of a value that shows as `1`."""
    if isinstance(value, dict | list):
        raise _Bad(f"must be a single {kind.value} value, not a list or object")
    invisible = value_problem(value) if isinstance(value, str) else None
    if invisible:
        raise _Bad(invisible)
    if kind is ParamType.boolean:
        return _to_bool(value)
    if kind is ParamType.integer:
        return _to_int(value)
    if kind is ParamType.number:
        return _to_number(value)
    text = _to_text(value)
    if kind is ParamType.choice and text not in (options or []):
        option = _same_option(text, options or [])
        if option is None:
            raise _Bad(f"must be one of: {', '.join(options or [])}")
        return option
    return text


def _looks(text: str) -> str:
    """What a choice looks like in a list: its NFC form without surrounding blanks. "café" typed
    on a Mac or taken from a file name is often NFD (e and a combining accent), which shows as
    the NFC "café" the script declared."""
    return unicodedata.normalize("NFC", text).strip()


def _same_option(text: str, options: list[str]) -> str | None:
    """The option written as `text` is in another Unicode normalization form (the NFD "café" of
    the NFC option "café"), or None. The run gets the option as declared, so the script compares
    it with what it wrote."""
    wanted = unicodedata.normalize("NFC", text)
    return next((option for option in options if unicodedata.normalize("NFC", option) == wanted), None)


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        word = value.strip().lower()
        if word in TRUE_WORDS:
            return True
        if word in FALSE_WORDS:
            return False
    raise _Bad("must be a boolean: true/false, yes/no, on/off or 1/0")


# Integers are 64-bit signed, as bash arithmetic and JSON encoders (orjson) hold them: a larger one
# was stored and then made every list of runs that showed it fail.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
OUT_OF_RANGE = f"must be a 64-bit integer, between {INT_MIN} and {INT_MAX}"


def _in_range(number: int) -> int:
    if not INT_MIN <= number <= INT_MAX:
        raise _Bad(OUT_OF_RANGE)
    return number


def _numeral(text: str, example: str) -> str:
    """`text` without surrounding spaces, when it is written as a number is everywhere else in
    the API: ASCII digits, no `_` separators (Python's `int` and `float` also read "1_000" and
    other scripts' digits: Arabic-Indic U+0663 as 3, Bengali U+09EA, which looks like 8, as 4)."""
    text = text.strip()
    if not text.isascii() or "_" in text:
        raise _Bad(f"must be written with the digits 0-9 (no '_' separators), e.g. {example}")
    return text


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        raise _Bad("must be an integer, not a boolean")
    if isinstance(value, int):
        return _in_range(value)
    if isinstance(value, float):  # 5.0 too: one rule for every integer (services/bodies.py)
        # The value as JSON reads it (a webhook's 1E2 is 100.0): each was told "(not 5.0)".
        raise _Bad(f"must be an integer, e.g. 42, without a fraction (not {value!r})")
    if isinstance(value, str):
        text = _numeral(value, "42")
        try:
            number = int(text)
        except ValueError:
            pass
        else:
            return _in_range(number)
    raise _Bad("must be an integer, e.g. 42")


def _to_number(value: Any) -> int | float:
    if isinstance(value, bool):
        raise _Bad("must be a number, not a boolean")
    number: float | int | None = value if isinstance(value, int | float) else None
    if isinstance(value, str):
        text = _numeral(value, "1.5")
        try:
            number = int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                number = None
    if number is None or (isinstance(number, float) and not math.isfinite(number)):
        raise _Bad("must be a finite number, e.g. 1.5")
    if isinstance(value, str) and rounds_to_zero(text):
        # "1e-400" was run as 0 (a `::set-output`, a webhook's text, the run form's box).
        raise _Bad(TOO_SMALL_MESSAGE)
    if isinstance(value, str) and isinstance(number, float) and loses_digits(text):
        raise _Bad(imprecise_message(number))  # "0.1234567890123456789" ran as 0.12345678901234568
    if isinstance(number, int) and not INT_MIN <= number <= INT_MAX:
        # Said for a number, not as an integer parameter's "must be a 64-bit integer".
        raise _Bad(
            f"must be a number whose whole digits fit 64 bits ({INT_MIN} to {INT_MAX}): "
            "write a larger one with an exponent, e.g. 1e30"
        )
    return number


def _to_text(value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float | str):
        text = str(value)
    else:
        raise _Bad("must be a string")
    unstorable = problem(text)  # NUL, lone surrogates: the rule of every stored text
    if unstorable:
        raise _Bad(unstorable)
    invisible = value_problem(text)
    if invisible:
        raise _Bad(invisible)
    if len(text) > MAX_VALUE_CHARS:
        raise _Bad(f"must be at most {MAX_VALUE_CHARS} characters")
    size = _utf8_size(text)
    if size > MAX_VALUE_BYTES:
        raise _Bad(
            f"must be at most {MAX_VALUE_BYTES} bytes in UTF-8 (it has {size}): a value is an "
            "environment variable, which the system limits to 128 KiB"
        )
    return text


def _utf8_size(text: str) -> int:
    """Bytes of `text` in UTF-8 (a lone surrogate, which the database refuses later, as 3)."""
    return len(text.encode("utf-8", "surrogatepass"))


def values_size(values: dict[str, Any]) -> int:
    """Bytes in UTF-8 of resolved parameter `values` (each as its text), as counted against
    `MAX_TOTAL_BYTES`."""
    return sum(_utf8_size(str(value)) for value in values.values())


def _check_name(name: object, script_type: str | None) -> str:
    """The declared `name` without surrounding blanks (`names.trimmed`), checked: an identifier
    that no program of `script_type` interprets. Raises `_Bad` saying why not."""
    name = trimmed(name)
    if not isinstance(name, str) or not name:
        raise _Bad("each parameter needs a name")
    if not NAME_RE.fullmatch(name):
        raise _Bad(
            "name must be an environment variable identifier: ASCII letters, digits and '_', "
            "not starting with a digit, at most 64 characters"
        )
    why = interpreted_name(name, script_type)
    if why is not None:
        raise _Bad(f"name {name} is reserved: {why}; choose another (see docs/scripts.md)")
    return name


def _simple_spec(name: str, default: Any) -> dict[str, Any]:
    """The seed's form: the default's JSON type gives the parameter type; null means required."""
    if default is None:
        return {"name": name, "type": ParamType.string.value, "required": True}
    kind = (
        ParamType.boolean
        if isinstance(default, bool)
        else ParamType.integer
        if isinstance(default, int)
        else ParamType.number
        if isinstance(default, float)
        else ParamType.string
    )
    return {"name": name, "type": kind.value, "default": default}


def _normalize_one(spec: Any, script_type: str | None) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise _Bad("must be an object with name, type, required, default, description, options")
    unknown = sorted(str(k) for k in spec if k not in SPEC_KEYS)
    if unknown:
        raise _Bad(f"unknown keys {', '.join(unknown)}; allowed: {', '.join(sorted(SPEC_KEYS))}")
    name = _check_name(spec.get("name"), script_type)
    try:
        kind = ParamType(spec.get("type") or ParamType.string.value)
    except ValueError:
        raise _Bad(f"type must be one of: {', '.join(t.value for t in ParamType)}") from None
    required = spec.get("required", False)
    if not isinstance(required, bool):
        raise _Bad("required must be true or false")
    description = spec.get("description") or ""
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise _Bad(f"description must be text of at most {MAX_DESCRIPTION} characters")
    unstorable = problem(description)
    if unstorable:  # named here, with the parameter, rather than by the write (`parameters.0.description`)
        raise _Bad(f"description {unstorable}")
    options = _normalize_options(kind, spec.get("options"))
    out: dict[str, Any] = {
        "name": name,
        "type": kind.value,
        "required": required,
        "default": None,
        "description": description,
        "options": options,
    }
    default = spec.get("default")
    if default is not None and not (default == "" and kind is not ParamType.string):
        if required:
            raise _Bad(
                "default not allowed on a required parameter (every run must give its value): "
                "remove the default or make the parameter optional"
            )
        try:
            out["default"] = convert(kind, default, options)
        except _Bad as exc:
            raise _Bad(f"default {exc}") from None
    return out


def _normalize_options(kind: ParamType, options: Any) -> list[str]:
    if kind is not ParamType.choice:
        if options:
            raise _Bad("options are only allowed for the choice type")
        return []
    if not isinstance(options, list) or not options:
        raise _Bad("a choice parameter needs a non-empty list of options")
    if len(options) > MAX_OPTIONS:
        raise _Bad(f"must have at most {MAX_OPTIONS} options, not {len(options)}")
    texts = []
    for number, option in enumerate(options, start=1):
        if not isinstance(option, str | int | float) or isinstance(option, bool) or not str(option).strip():
            # A blank option ("  ") shows as an empty entry in the run form's list.
            raise _Bad("options must be strings with a visible character, or numbers")
        try:
            texts.append(_to_text(option))
        except _Bad as exc:  # which one, as a default's problem says "default ..."
            raise _Bad(f"option {number} {exc}") from None
    if len(set(texts)) != len(texts):
        raise _Bad("options must be distinct")
    seen: dict[str, int] = {}
    for number, text in enumerate(texts, start=1):
        first = seen.setdefault(_looks(text), number)
        if first != number:
            # Two entries of the run form's list that look the same: which one a run gets would
            # depend on which the person happened to pick.
            raise _Bad(
                f"options {first} and {number} look the same: they differ only in surrounding spaces "
                "or in how an accented letter is encoded (one character or a letter and a combining "
                "accent): keep one"
            )
    return texts


def normalize(raw: dict[str, Any] | list[Any] | None, script_type: str | None = None) -> list[dict[str, Any]]:
    """Validate a parameter declaration in any accepted form and return the normalized schema.

    `script_type` ("bash", "ansible", ...) adds the names that type's program reserves
    (`param_env.interpreted_name`); `Invalid` names each parameter in error.
    """
    if raw is None:
        return []
    if isinstance(raw, dict):
        specs = [
            {**value, "name": name} if isinstance(value, dict) else _simple_spec(str(name), value)
            for name, value in raw.items()
        ]
    elif isinstance(raw, list):
        specs = list(raw)
    else:
        raise Invalid(
            "parameters must be an object of NAME -> default or a list of typed parameters",
            details=[{"field": "parameters", "message": "must be an object or a list"}],
        )
    if len(specs) > MAX_PARAMETERS:
        raise Invalid(
            f"parameters: must have at most {MAX_PARAMETERS} per script, not {len(specs)}",
            details=[
                {"field": "parameters", "message": f"must have at most {MAX_PARAMETERS}, not {len(specs)}"}
            ],
        )
    errors: list[dict[str, Any]] = []
    result: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, spec in enumerate(specs):
        name = spec.get("name") if isinstance(spec, dict) else None
        try:
            normalized = _normalize_one(spec, script_type)
            if normalized["name"] in seen:
                raise _Bad("is declared twice")
        except _Bad as exc:
            errors.append({"field": _field(name, index), "message": str(exc)})
            continue
        seen.add(normalized["name"])
        result.append(normalized)
    if errors:
        raise _fail("invalid parameters", errors)
    return result


def resolve(
    schema: list[dict[str, Any]],
    values: dict[str, Any] | None,
    script_type: str | None = None,
    *,
    complete: bool = True,
) -> dict[str, Any]:
    """Merge runtime `values` over the schema's defaults and return typed values.

    Unknown names, names a program interprets (`param_env.interpreted_name`, for a schema saved
    before the rule), missing required parameters and values of the wrong type are each named in
    one `Invalid`. Optional parameters without a default and without a value are left out, and
    so are required ones when not `complete` (a schedule saved switched off, which starts no
    run: switching it on checks it, as `check_preset` does for webhooks and links).
    """
    if values is None:
        values = {}
    if not isinstance(values, dict):
        said = f"{NOT_AN_OBJECT} (it is {sent_kind(values)})"  # as a body's object field says it
        raise Invalid(f"parameters: {said}", details=[{"field": "parameters", "message": said}])
    known = {spec["name"]: spec for spec in schema}
    errors = [{"field": _field(name, 0), "message": undeclared(name)} for name in values if name not in known]
    resolved: dict[str, Any] = {}
    for name, spec in known.items():
        why = interpreted_name(name, script_type)
        if why is not None:  # declared before the rule existed: the script must rename it
            errors.append({"field": _field(name, 0), "message": f"name is reserved: {why}; rename it"})
            continue
        kind = ParamType(spec["type"])
        value = values.get(name)
        if value is None or (value == "" and kind is not ParamType.string):
            value = spec.get("default")
        if value is None or (value == "" and spec.get("required")):
            if spec.get("required") and complete:
                errors.append({"field": _field(name, 0), "message": "is required"})
            continue
        if blank_required(spec, value):
            errors.append({"field": _field(name, 0), "message": BLANK_REQUIRED})
            continue
        try:
            resolved[name] = convert(kind, value, spec.get("options"))
        except _Bad as exc:
            errors.append({"field": _field(name, 0), "message": str(exc)})
    total = values_size(resolved)
    if not errors and total > MAX_TOTAL_BYTES:
        message = (
            f"must be at most {MAX_TOTAL_BYTES} bytes in UTF-8 together (they have {total}): values "
            "are environment variables, which the system limits with the secrets"
        )
        errors.append({"field": "parameters", "message": message})
    if errors:
        raise _fail("invalid parameter values", errors)
    return resolved


# The fields of a schedule, webhook or "then run" link that hold the values of its runs' parameters.
PRESET_VALUES = frozenset({"parameters", "mapping"})


def keeps_stored_values(body: Any, merged: Any, also: Iterable[str] = ()) -> bool:
    """Whether a save of a schedule, webhook or "then run" link keeps its stored parameter values
    unchecked: when it leaves the preset switched off (`enabled` false in `merged`, the body over
    the stored row) and `body` (the `PUT` body: a model, or the mapping its model refused) sends
    none of `PRESET_VALUES` nor of `also` (a link's `target_script_id`: its values were checked
    against another script). Pause, or a rename while paused, then goes through whatever script
    change broke the values since (a dropped parameter, a new type, a new required one): it
    starts no run; switching it on checks every value. Values sent are always checked."""
    if isinstance(body, BaseModel):
        sent: set[str] = set(body.model_fields_set)
    elif isinstance(body, Mapping):
        sent = {str(key) for key in body}
    else:
        return False  # not an object: the model refuses it
    off = isinstance(merged, Mapping) and merged.get("enabled") is False
    return off and not sent & (PRESET_VALUES | set(also))


# What a webhook's and a "then run" link's mapping reads from (`check_preset`'s `mapped_from`).
FROM_REQUEST_BODY = "the request body"
FROM_SOURCE_RUN = "the source run"


def check_preset(
    schema: list[dict[str, Any]],
    mapping: Mapping[str, Any] | None,
    fixed: Mapping[str, Any],
    mapped_from: str,
) -> None:
    """Check what a webhook or a "then run" link saves for the runs it will start (its `mapping`
    of parameter names to JSON pointers and its `fixed` values) as `resolve` will check them at
    each call or chained run, so that a preset every run would fail with is refused when saved.

    Each fixed value of a declared parameter must convert to its type (bidi controls, NUL, length
    and choice rules included; blanks for a required one: `BLANK_REQUIRED`), and each required
    parameter without a default must be mapped or given a fixed value (null and "" are none, as
    `resolve` reads them): else "is required: map it from `mapped_from` or give it a fixed value"
    (`FROM_REQUEST_BODY`, `FROM_SOURCE_RUN`). A mapped one counts as given: the body or source
    run may hold it. `mapping` None leaves out the required rule: the callers pass it when the
    body's model refused the mapping or the fixed values, and said so (which parameters get no
    value is not known), and for a preset saved switched off (it starts no run, and can be
    paused while it lacks a value; switching it on checks it). Undeclared
    names are the caller's to refuse (it words that message). Raises one `Invalid` naming every
    bad `parameters.NAME`: the fixed values' problems, then the missing ones in schema order.
    """
    known = {spec["name"]: spec for spec in schema}
    errors: list[dict[str, Any]] = []
    for name, value in fixed.items():
        spec = known.get(name)
        if spec is None or value is None:
            continue
        kind = ParamType(spec["type"])
        if value == "" and kind is not ParamType.string:
            continue  # the resolver falls back to the default, as for a run's empty field
        if blank_required(spec, value):
            errors.append({"field": _field(name, 0), "message": BLANK_REQUIRED})
            continue
        try:
            convert(kind, value, spec.get("options"))
        except _Bad as exc:
            errors.append({"field": _field(name, 0), "message": str(exc)})
    if mapping is not None:
        errors += [
            {
                "field": _field(spec["name"], 0),
                "message": f"is required: map it from {mapped_from} or give it a fixed value",
            }
            for spec in schema
            if spec.get("required")
            and spec.get("default") is None
            and spec["name"] not in mapping
            and fixed.get(spec["name"]) in (None, "")
        ]
    if errors:
        raise _fail("invalid parameter values", errors)


NO_LONGER_DECLARED = "the script no longer declares this parameter: saving leaves it out"


def stored_misfits(schema: list[dict[str, Any]], values: Mapping[str, Any]) -> dict[str, str]:
    """The values a schedule, webhook or "then run" link stored (`values`, name -> value) that no
    longer fit the script's declaration (`schema`, normalized), changed since they were saved:
    name -> why (`NO_LONGER_DECLARED`; a declared one that `convert` refuses, its message, e.g.
    "must be an integer"). The forms show each one with its reason rather than drop it unsaid;
    the services refuse a save that keeps one (`resolve`, `check_preset`), so the UI and the API
    judge them alike. Null values are no value (`resolve`) and fit."""
    known = {spec["name"]: spec for spec in schema}
    misfits: dict[str, str] = {}
    for name, value in values.items():
        spec = known.get(name)
        if spec is None:
            misfits[name] = NO_LONGER_DECLARED
            continue
        if value is None:
            continue
        try:
            convert(ParamType(spec["type"]), value, spec.get("options"))
        except _Bad as exc:
            misfits[name] = str(exc)
    return misfits


def defaults(schema: list[dict[str, Any]]) -> dict[str, Any]:
    """The seed's simple form of a schema: NAME -> default (null when there is none)."""
    return {spec["name"]: spec.get("default") for spec in schema}
