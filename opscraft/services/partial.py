"""Partial updates: the OpenAPI shape of one, and the rule of every `PUT` that updates a row.

Rule (issue: an operator's `PUT` of only an approval policy's expiry was read as lowering its
`required` to the default): a `PUT` body is merged over the stored row, so a field the body
leaves out keeps its stored value, never the model's default (a webhook's signing secret, a
schedule's time zone or `enabled`, a channel's or link's `enabled`, an inventory's description).
Sending a field as `null` is sending it (a webhook's `secret_id: null` removes the secret).

The `PUT` bodies of rows created by a `POST` of the same model (schedules, webhooks, links,
channels, inventories) are documented as that model's `Changes` subclass (`CHANGES`): the same
fields and checks, none required and no default, as a field left out keeps its stored value.

The partial-update models (users, secrets, settings) accept `null` for a field (it means "no
change") and refuse a body that changes nothing with a 422; their documented schema states the
stricter, exact contract instead: at least one property, and no `null`. A request the schema
calls valid is then always accepted.

Each of those `PUT`s, and those of users, secrets and scripts, takes a `base`: what the fields
held when the edit started, as `GET` returned them (`BASE_DESCRIPTION`, `three_way`); without
it the last write wins. A body that sends only a `base` changes nothing.

A `PUT` that changes nothing writes nothing (`unchanged`): sending back what `GET` gave, or `{}`,
moves no `updated_at`, makes nobody the row's owner and records no audit event.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import inspect

from opscraft.db import stored_shapes
from opscraft.db.types import utcnow
from opscraft.services.bodies import Body
from opscraft.services.errors import Conflict, Invalid, Problems
from opscraft.services.storable import NO_NUL_PATTERN, Text

BASE_DESCRIPTION = (
    "What the fields held when the edit started: one sent with a new value whose stored value is "
    "neither this nor the new one was changed meanwhile (409 naming it, nothing saved); one sent "
    "equal to its base keeps the stored value. Left out: last write wins."
)


def at_least_one_field(schema: dict[str, Any]) -> None:
    """`json_schema_extra` for a partial-update model: `minProperties: 1`, nulls left out, and,
    when the model has a `base` (what the edit started from, `three_way`), at least one field
    besides it (`anyOf` of `required`): `{"base": {...}}` alone changes nothing."""
    schema["minProperties"] = 1
    properties = schema.get("properties", {})
    if "base" in properties:
        schema["anyOf"] = [{"required": [name]} for name in properties if name != "base"]
    for prop in properties.values():
        choices = prop.get("anyOf")
        if choices:
            kept = [c for c in choices if c.get("type") != "null"]
            prop.pop("anyOf")
            prop.pop("default", None)
            prop.update(kept[0] if len(kept) == 1 else {"anyOf": kept})


def _as_changes(schema: dict[str, Any]) -> None:
    schema.pop("required", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("default", None)


# `model_config` of a `PUT` body's `Changes` subclass (module doc): its JSON schema requires no
# field and shows no default; validation is the base model's.
CHANGES = ConfigDict(json_schema_extra=_as_changes)


def over_stored(model: type[BaseModel], data: BaseModel | Mapping[str, Any], stored: object) -> Any:
    """The body of a `PUT` (a validated `model`, or the raw mapping sent when the model refused
    it) completed with the `stored` row's attribute for every field of `model` it leaves out
    (module rule). The result is to be validated as `model` again, with the service's checks."""
    if not isinstance(data, BaseModel | Mapping):
        return data  # a JSON list or scalar where an object belongs: the model refuses it (422)
    sent = sent_fields(data)
    kept = {
        name: getattr(stored, name)
        for name in model.model_fields
        if name not in sent and hasattr(stored, name)
    }
    refuse_unreadable(
        {name: problem for name, problem in stored_shapes.problems(stored).items() if name in kept}
    )
    return {**kept, **sent}


def sent_fields(data: BaseModel | Mapping[str, Any]) -> dict[str, Any]:
    """What a `PUT` body sends, field -> value: a model's fields set in the request, or the mapping."""
    return data.model_dump(exclude_unset=True) if isinstance(data, BaseModel) else dict(data)


def refuse_unreadable(unreadable: Mapping[str, str], what: str = "the stored row") -> None:
    """`Invalid` (422) naming each column of `unreadable` (column -> its `stored_shapes`
    problem) that a save would keep as what it reads as (`{}`, `[]`, the least-doing choice):
    such a save must send it anew. Nothing when empty."""
    if unreadable:
        raise Invalid(
            f"{what} holds settings that cannot be read: send new ones (or delete it)",
            details=[
                {"field": name, "message": f"{problem}: send a new value"}
                for name, problem in sorted(unreadable.items())
            ],
        )


# An object of a `base` (parameters, a mapping, a channel's config): any JSON object, its keys
# storable text as `bodies.Body` checks them (the schema says so: a key with a NUL was a 422 of a
# request the schema called valid).
BaseObject = Annotated[
    dict[str, Any], Field(json_schema_extra={"propertyNames": {"pattern": NO_NUL_PATTERN}})
]


class TriggerBase(Body):
    """What the run settings of a schedule, webhook or "then run" link held when an edit started
    (the `base` of its `PUT`, `three_way`), as `GET` returned them: plain types, without the
    save's rules (a value stored before a rule was tightened is still a base). A field left out
    is not checked."""

    parameters: BaseObject = Field(default_factory=dict)
    enabled: bool = True
    terraform_action: Text | None = None
    terraform_workspace: Text | None = None
    run_options: BaseObject | None = None


def split_base(
    changes: type[BaseModel], data: Any, base: Mapping[str, Any] | None = None
) -> tuple[Any, Mapping[str, Any] | None]:
    """A `PUT` body (`data`: a validated `changes` model, or the raw mapping sent when the model
    refused it) without its `base`, and that base (field -> value, the fields it names), or the
    `base` given apart (a UI form's) when the body sends none. A body without `base` is returned
    as it is. `Invalid` (422) naming `base.<field>` when the body's base is not one `changes`
    accepts (the other fields are the service's to check, once completed: `over_stored`)."""
    if isinstance(data, BaseModel):
        if "base" not in data.model_fields_set:
            return data, base
        sent = data.model_dump(exclude_unset=True)
        given = sent.pop("base")
        return sent, base if given is None else given
    if not isinstance(data, Mapping) or "base" not in data:
        return data, base
    problems = Problems()
    with problems.check():
        changes.model_validate(data)
    problems.details = [d for d in problems.details if str(d["field"]).split(".")[0] == "base"]
    problems.raise_if_any()
    given = data["base"]
    return {key: value for key, value in data.items() if key != "base"}, base if given is None else given


def edited(shown: Mapping[str, Any], form: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of a form (`form`, every field of it) whose value differs from the one the page
    showed when it loaded (`shown`): what the person changed, and all a UI save may send.

    Rule (the same edit from two tabs): a form that sends its untouched fields sends the page's
    old copy of them, undoing what another tab or the API saved since (a settings switch, a
    user's role). Sending only the edited fields keeps those changes, as the partial `PUT`s do.
    """
    return {key: value for key, value in form.items() if key not in shown or shown[key] != value}


# The columns that say who last saved a row: scripts, secrets and inventories record `updated_by`;
# a schedule, webhook or "then run" link is owned by whoever last saved a change to it (`owner_id`).
SAVED_BY = ("updated_by", "owner_id")


def saved_at(stored: object) -> str:
    """`at 09:12 UTC` from `stored`'s `updated_at` (with its date when not today's), or "" for a
    row that records no such time (a webhook)."""
    when = getattr(stored, "updated_at", None)
    if not isinstance(when, datetime):
        return ""
    shown = f"{when:%H:%M}" if when.date() == utcnow().date() else f"{when:%Y-%m-%d %H:%M}"
    return f"at {shown} UTC"


def saved_by(stored: object, editor: int | None) -> str:
    """Who last saved `stored` (its `SAVED_BY` column), as seen by the user `editor` (id):
    "by you in another tab, window or API client", "by someone else", or, for a row that records no saver
    (a notification channel or rule, a user's profile) or whose saver was deleted, "by someone
    else, or by you in another tab, window or API client". Rule: a 409 tells the truth about who saved (the
    same user's two tabs were told "someone else" changed the script)."""
    savers = (getattr(stored, name, None) for name in SAVED_BY)
    saver = next((saver for saver in savers if saver is not None), None)
    if saver is not None and saver == editor:
        return "by you in another tab, window or API client"
    if saver is not None:
        return "by someone else"
    return "by someone else, or by you in another tab, window or API client"


def changed_meanwhile(stored: object, editor: int | None) -> str:
    """How a 409 says that `stored` (the row as stored now) was saved since an edit by the user
    `editor` (id) started: "changed by someone else since your edit started (saved at 09:12
    UTC)", "changed by you in another tab, window or API client since ...": `saved_by`, `saved_at`."""
    when = saved_at(stored)
    said = f"changed {saved_by(stored, editor)} since your edit started"
    return f"{said} (saved {when})" if when else said


RELOAD = "reload to see it, then apply yours again"


def three_way(
    stored: object,
    proposed: BaseModel | Mapping[str, Any],
    base: Mapping[str, Any],
    what: str,
    editor: int | None,
) -> dict[str, Any]:
    """`proposed` (field -> new value, or a `PUT` body: `sent_fields`) checked against `base`
    (field -> the value the edit started from) and the `stored` row, field by field, for the
    fields `base` names:

    - new value equal to the base value: this edit leaves the field alone, so it is dropped and
      the stored value stays (another tab's or user's change of it is kept: edits of different
      fields merge), unless the stored value is unreadable (`stored_shapes.problems`): the new
      value then replaces it;
    - stored value equal to the base value or to the new value: saved as proposed;
    - else someone changed the field meanwhile: `Conflict` (409) naming every such field
      (`details[].field`), raised before the caller writes anything, saying who saved
      (`changed_meanwhile`: `editor`, the id of the user whose edit this is, in another tab or
      window, or someone else).

    Fields `base` leaves out are kept as proposed (last write wins, as without `base`). `what`
    names the row in the message ("the script"). Rule: nothing a user typed is silently lost
    (two tabs editing one script's description: the second save undid the first without a word).
    """
    sent = sent_fields(proposed)
    # A field stored in a shape it cannot be read as is sent on even when equal to its base: the
    # form showed it empty, and what was typed replaces it (`over_stored` refuses it left out).
    unreadable = stored_shapes.problems(stored)
    kept = {
        key: value
        for key, value in sent.items()
        if key not in base or base[key] != value or key in unreadable
    }
    stale = [key for key in kept if key in base and getattr(stored, key) not in (base[key], kept[key])]
    if stale:
        message = f"{changed_meanwhile(stored, editor)}: {RELOAD}"
        raise Conflict(
            f"{', '.join(stale)} of {what}: {message}",
            details=[{"field": key, "message": message} for key in stale],
        )
    return kept


# Columns an update sets because it is one, not because the body asked: when and by whom it was
# last changed, who owns it now (the runs of a schedule, webhook or link start on their behalf),
# and a schedule's next fire time, computed again from now.
BOOKKEEPING = frozenset({"updated_at", "updated_by", "owner_id", "next_fire_at"})


def unchanged(row: object) -> bool:
    """Whether applying a `PUT`'s body to `row` (a stored row of the session, with its columns
    loaded) left every column as stored besides `BOOKKEEPING`. When so, those are put back too,
    so that committing writes nothing, and the caller records no audit event.

    Rule (a secret's description saved again was marked "updated by" the admin who changed
    nothing, with no audit event to match): when, by whom and on whose behalf move only with an
    audited change. Each column is compared with its stored value (SQLAlchemy's attribute
    history), so a value set equal to the stored one is no change."""
    attrs = [attr for attr in inspect(row).attrs if attr.history.has_changes()]
    if any(attr.key not in BOOKKEEPING or not attr.history.deleted for attr in attrs):
        return False
    for attr in attrs:
        setattr(row, attr.key, attr.history.deleted[0])
    return True
