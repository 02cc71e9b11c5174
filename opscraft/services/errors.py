"""Service errors carry the HTTP status the API maps them to and a message that says what to fix."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from opscraft.services.input_words import worded

M = TypeVar("M", bound=BaseModel)

INVALID_INPUT = "invalid input: "
"""How every refused request input starts (`input_summary`)."""
SUMMED = 5  # problems an `input_summary` names (the `details` list them all, up to `LISTED`)
LISTED = 20


def input_summary(errors: Sequence[Mapping[str, Any]]) -> str:
    """`invalid input: field: message; ...` for the first `SUMMED` of `errors` (`{field,
    message}`; a problem with an empty field is said by its message alone): the one wording of a
    refused body, path or query value, whichever part refused it: FastAPI's model
    (api/errors.py), the query check (api/query_check.py), the request limits at the door
    (security/http.py, given this function by api/__init__.py), a service's field checks
    (`Invalid.at`, `Invalid.inputs`, `Problems`), or the check of text the databases cannot
    store (services/storable.py). Every 422 that names fields says them this way."""
    return INVALID_INPUT + "; ".join(
        f"{e['field']}: {e['message']}" if e["field"] else str(e["message"]) for e in errors[:SUMMED]
    )


class ServiceError(Exception):
    """An error a service raises for the caller to show: `status_code` is the HTTP status the API answers,
    `message` says what to fix and `details` lists fields ({"field", "message"}).
    """

    status_code = 400

    def __init__(self, message: str, *, details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class Invalid(ServiceError):
    """The request's values are refused (422)."""

    status_code = 422

    @classmethod
    def at(cls, field: str, message: str) -> Invalid:
        """`field: message`, with `details` naming `field` (the UI shows `message` under it; the
        API says `detail`)."""
        return cls(f"{field}: {message}", details=[{"field": field, "message": message}])

    @property
    def detail(self) -> str:
        """What the API's 422 says (its `detail`): when the `details` name fields' problems
        (`{field, message}` each), the `message` starting `invalid input: ` as every refused
        input's does (`input_summary`: FastAPI's, the door's, `Invalid.at`'s, `Problems`'), so a
        client reads one shape from every endpoint, in the service's own words, which may say
        more than the field's message ("content is 262145 bytes, larger than the limit of 256
        KiB: split the script"); the `message` as it is when there are no details, or when they
        are a report of their own (dangerous-pattern findings with a `rule`, a script's errors
        at a `line`), whose `message` says what to do with them (`acknowledge_risks`)."""
        if not self.details or any(set(d) != {"field", "message"} for d in self.details):
            return self.message
        return self.message if self.message.startswith(INVALID_INPUT) else INVALID_INPUT + self.message

    @classmethod
    def inputs(cls, errors: list[dict[str, str]]) -> Invalid:
        """Refused values (`errors`: `{field, message}`) in the words FastAPI's refusals have
        (`input_summary`), `details` naming each field (up to `LISTED`)."""
        return cls(input_summary(errors), details=errors[:LISTED])

    @classmethod
    def input(cls, field: str, message: str) -> Invalid:
        """`inputs` of one field: `invalid input: status: must be one of: ...`."""
        return cls.inputs([{"field": field, "message": message}])


def unreadable(found: Mapping[str, str], under: str = "") -> list[dict[str, str]]:
    """The `details` of a refusal caused by stored values that cannot be read (`found`: column ->
    its `db.stored_shapes` problem, as `stored_shapes.problems` or `read` give them): one per
    column, in column order, the field named `under` + the column (`script.parameters` for a
    run refused by its script's declarations; `parameters` for the row the request addresses),
    so the UI shows each next to its field and an API client knows which setting to fix."""
    return [{"field": f"{under}{name}", "message": problem} for name, problem in sorted(found.items())]


class Unauthorized(ServiceError):
    """No valid credentials: not logged in, or a token or session that stopped working (401)."""

    status_code = 401


class Forbidden(ServiceError):
    """The user is known but their role may not do this (403)."""

    status_code = 403


GONE_WHY = "it may have been deleted in another tab or by another user"
"""What `NotFound.gone` adds to the kind that was not found."""


class NotFound(ServiceError):
    """The addressed row does not exist or is not visible to the caller (404)."""

    status_code = 404

    @classmethod
    def gone(cls, kind: str, field: str | None = None) -> NotFound:
        """The refusal of a request for a `kind` ("user", "API token", ...) the caller cannot
        have: deleted since their page or list showed it (in another tab, by another user), or
        never there, or not theirs to see. It says the kind and that it was not found, in the
        UI's message and the API's 404 detail alike; it names no id (the UI showed "user 8 not
        found", an id the user never saw) and tells nothing the caller may not know (a row they
        may not see reads as one deleted). `field`: the request body's field that gave the id
        (`script_id` of `POST /api/v1/executions`), named in `details` as every refused body
        value is; None when the address gave it."""
        message = f"this {kind} was not found: {GONE_WHY}"
        return cls(message, details=[{"field": field, "message": message}] if field else None)

    @classmethod
    def no_version(cls, kind: str, number: int, first: int | None, last: int | None, count: int) -> NotFound:
        """The refusal of version `number` (as the address gave it) of a `kind` ("script",
        "inventory") the caller sees, in their words: "this script has no version 7: its versions
        are 1 to 3", with the numbers it has (`first`, `last`, `count` of them; None, 0: none). It
        named the row's id ("script 12 has no version 7"), which no page shows."""
        if first is None or last is None or not count:
            have = "it has no version stored"
        elif first == last:
            have = f"its only version is {first}"
        elif count == last - first + 1:
            have = f"its versions are {first} to {last}"
        else:
            have = f"its {count} versions are numbered between {first} and {last}"
        return cls(f"this {kind} has no version {number}: {have}")


class Conflict(ServiceError):
    """The request clashes with the stored state: a taken name, a row in use, a concurrent change (409)."""

    status_code = 409


class RateLimited(ServiceError):
    """`message` says what was limited; the error adds when to retry (`retry_after`, in seconds,
    also sent as the HTTP `Retry-After` header)."""

    status_code = 429

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(f"{message}: try again in {retry_text(retry_after)}")
        self.retry_after = retry_after


class Unavailable(ServiceError):
    """A service OpsCraft depends on does not answer now (the job queue's Redis): the request may
    be sent again as it is once it does; `retry_after` (seconds) is also sent as `Retry-After`."""

    status_code = 503

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_text(seconds: int) -> str:
    """`1 second`, `42 seconds`, `2 minutes` (rounded), for a sentence."""
    if seconds < 90:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = round(seconds / 60)
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def sent_kind(value: Any) -> str:
    """What a JSON value is, in words for a message ("true, a JSON boolean", "text", "a JSON
    array"...), never the value itself (it may be a password or a secret): what was sent, next
    to what was expected. A null is "empty" first: the UI sends one for a number box left empty,
    where "(it is null)" told a person nothing they had typed."""
    if value is None:
        return "empty, a JSON null"
    if isinstance(value, bool):
        return f"{str(value).lower()}, a JSON boolean"
    if isinstance(value, float):
        return "a number with a decimal point"  # 5.0 too: a whole number field refuses it
    if isinstance(value, int):
        return "a number"
    if isinstance(value, str):
        return "text"
    return "a JSON array" if isinstance(value, list | tuple) else "a JSON object"


# Pydantic's error types for a value of the wrong JSON type -> what the field must be. Pydantic's
# own words named the model's Python class ("a valid dictionary or instance of RuleIn": a JSON
# array sent to `PUT /notifications/rules/{id}`) and never what was sent.
_EXPECTED_TYPE = {
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "string_type": "must be text, a JSON string",
    "list_type": "must be a JSON array",
}


def input_message(err: Mapping[str, Any]) -> str:
    """The message of one pydantic error (`ValidationError.errors()` item) as this project words
    it, for a person: a value of the wrong JSON type says what the field must be and what was
    sent (`sent_kind`), never a Python class; pydantic's other stock errors (empty, too long with
    the limit and the length sent, out of range, missing...) in `input_words.worded`'s words;
    else the validator's own message without pydantic's "Value error, " prefix. Never the
    submitted value: it may be a password or a secret."""
    expected = _EXPECTED_TYPE.get(str(err.get("type")))
    if expected is not None and "input" in err:
        return f"{expected} (it is {sent_kind(err['input'])})"
    return worded(err) or str(err.get("msg", "invalid value")).removeprefix("Value error, ")


class Problems:
    """The problems of a form's independent checks, gathered so that all are reported at once.

    `with problems.check(): ...` runs one check and keeps its `Invalid` details, or a pydantic
    `ValidationError`'s (field: the location joined with dots; message without pydantic's
    "Value error, " prefix); `add` records one found by hand; `raise_if_any` then raises a single
    `Invalid` (422) whose details list every problem, in the order found.
    """

    def __init__(self) -> None:
        self.details: list[dict[str, Any]] = []

    def add(self, field: str, message: str) -> None:
        """Note a problem of `field`."""
        self.details.append({"field": field, "message": message})

    @contextmanager
    def check(self) -> Iterator[None]:
        """Context manager: collect an Invalid's details or a pydantic ValidationError's field problems
        raised inside it, instead of raising.
        """
        try:
            yield
        except Invalid as exc:
            self.details.extend(exc.details or [{"field": "", "message": exc.message}])
        except ValidationError as exc:
            for err in exc.errors():
                # A JSON list or scalar where the object belongs has no location: the body.
                field = ".".join(str(part) for part in err["loc"]) or "body"
                self.add(field, input_message(err))

    def body(self, model: type[M], data: M | Mapping[str, Any]) -> tuple[M | None, dict[str, Any]]:
        """`data` validated as `model` (None when the model refuses it: its problems are kept)
        and the values of the fields it accepted (all of the model's, or the sent ones the model
        did not name), for the body's later checks, so that one 422 names every problem."""
        if isinstance(data, model):
            return data, data.model_dump()
        body: M | None = None
        with self.check():
            body = model.model_validate(data)
        if body is not None:
            return body, body.model_dump()
        if not isinstance(data, Mapping):  # a JSON list or scalar for an object: nothing to check
            return None, {}
        refused = self.fields()
        return None, {key: value for key, value in data.items() if key not in refused}

    def fields(self) -> set[str]:
        """The top-level fields named so far (`tags` for `tags.0`): those a body model refused, so
        that the checks of the fields it accepted can still run on the values sent."""
        return {str(d["field"]).split(".")[0] for d in self.details}

    def raise_if_any(self) -> None:
        """Raise Invalid (422) with every collected problem when there is any."""
        if self.details:
            raise Invalid(input_summary(self.details), details=self.details)
