"""Secrets: encrypted values attached to scripts and injected as environment variables.

Operators and admins manage secrets; everyone who may run a script runs it with its secrets,
but no one reads a value back. No message, audit detail or log line here contains a value.

Rotation window: a new value of a secret that signs webhooks keeps the value it replaces as the
secret's previous value (`SecretPreviousValue`, encrypted like the value) for
`previous_accepted_seconds` (0 to `PREVIOUS_MAX_SECONDS`, by default `PREVIOUS_DEFAULT_SECONDS`),
during which webhooks verify a call with either (services/webhooks.py); so a sender still
signing with the old key is not refused the moment the value changes (Stripe's "roll secret"
keeps the old one valid up to 24 h, and GitHub's apps theirs for a while). One previous value per
secret: the next new value replaces it. It is deleted once its window is over (at its next use,
and by the upkeep's `drop_ended_previous_values`), or at once by `end_previous`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import ConfigDict, Field, ValidationInfo, field_validator
from sqlalchemy import Delete
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, or_, select
from sqlmodel import delete as sql_delete
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db.engine import Database
from opscraft.db.models import (
    AuditEvent,
    Execution,
    NotificationChannel,
    Script,
    ScriptSecret,
    Secret,
    SecretPreviousValue,
    User,
    WebhookTrigger,
)
from opscraft.db.models.secrets import SecretKind
from opscraft.db.text import NUL_MESSAGE
from opscraft.db.turns import take_write_turn
from opscraft.db.types import LE, compared, utc_text, utcnow
from opscraft.execution import commands, param_env
from opscraft.execution.masking import MIN_LENGTH
from opscraft.execution.ports import RunSecrets, SecretUnavailable
from opscraft.security.vault import DecryptError, Vault
from opscraft.services import (
    audit,
    conflicts,
    keyring,
    like,
    names,
    paging,
    partial,
    run_environment,
    scripts,
)
from opscraft.services.actor import Actor
from opscraft.services.bodies import Body
from opscraft.services.errors import Conflict, Invalid, NotFound
from opscraft.services.invisible import check_filters
from opscraft.services.permissions import Permission, require
from opscraft.services.storable import Text, limited

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
MAX_VALUE_BYTES = 64 * 1024
MAX_DESCRIPTION = 1000
MAX_NAME = 128  # characters of a secret's name
# Characters of the list's `search` filter: a whole name pasted into the search box finds its
# secret (it was 100: refused).
MAX_SEARCH = MAX_NAME
TARGET = "secret"
# Documented only: `_check_value` enforces it with messages that say what to fix.
# How long webhooks still accept a signing secret's previous value after a new one, by default
# (an hour: senders switched by hand or by a deploy), and at most (a week: the longest a caller
# left unswitched should stay trusted).
PREVIOUS_DEFAULT_SECONDS = 3600
PREVIOUS_MAX_SECONDS = 7 * 24 * 3600
PREVIOUS_FIELD = "previous_accepted_seconds"
VALUE_SCHEMA: dict[str, Any] = {
    "minLength": 1,
    "description": "Not empty nor only blanks (spaces, tabs, line breaks), at most 64 KiB in UTF-8",
}


def _utf8(text: str) -> bytes:
    try:
        return text.encode()
    except UnicodeEncodeError:
        raise ValueError("must be valid Unicode text (no lone surrogate escapes)") from None


def _check_value(value: str) -> str:
    if value == "":
        raise ValueError("must not be empty")
    if not value.strip():
        raise ValueError(
            "must not be only spaces, tabs or line breaks (an empty paste?): such a value cannot be "
            "masked in the output without blanking out its indentation"
        )
    if "\x00" in value:
        raise ValueError(NUL_MESSAGE)  # the API's door says the same (db.text)
    if len(_utf8(value)) > MAX_VALUE_BYTES:
        raise ValueError(f"must be at most {MAX_VALUE_BYTES} bytes (64 KiB) in UTF-8")
    return value


# A private key in PEM or OpenSSH form (`ssh-keygen`, `openssl genpkey`, PuTTYgen's export).
PRIVATE_KEY_RE = re.compile(
    r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*-----END [A-Z0-9 ]*PRIVATE KEY-----", re.S
)


def file_content(value: str) -> str:
    """What a `file` secret stores for `value`: a private key (PEM or OpenSSH, nothing else
    around it) with LF line endings, no blank edges and one final line break, as OpenSSH needs:
    a key copied from a terminal lacks the final line break, one from a Windows editor has CRLF
    (and may start with a byte order mark, U+FEFF), and for each `ssh` says only `Load key: error
    in libcrypto`. So did lines indented as in a YAML block or an email, lone CR line endings,
    and the blank line between every two lines of a CRLF key read as two line breaks (a PEM
    key): each line is stripped, and blank lines are dropped unless the key has RFC 1421
    headers (`Proc-Type: ...`), which a blank line ends. Any other value as given."""
    key = value.strip().removeprefix("\ufeff").strip()
    if not PRIVATE_KEY_RE.fullmatch(key):
        return value
    lines = [line.strip() for line in key.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    if not any(":" in line for line in lines):
        lines = [line for line in lines if line]
    return "\n".join(lines) + "\n"


SHORT_VALUE_WARNING = (
    f"value: shorter than {MIN_LENGTH} characters (leading and trailing blanks aside), so it is "
    "not masked in runs' output (shorter values would blank out ordinary text); saved as given: "
    f"use a value of at least {MIN_LENGTH} characters if it must not show"
)


def value_warnings(value: str) -> list[str]:
    """What a value about to be saved (or just saved) will do that its author may not expect,
    one sentence each, never quoting the value: shorter than `masking.MIN_LENGTH` without its
    surrounding blanks, which is what a script prints after stripping it, it is printed in clear
    (docs/secrets.md, "What is masked"). The value is kept: the rule is documented, and a short
    value (a PIN, a region code) may be intentional."""
    return [SHORT_VALUE_WARNING] if len(value.strip()) < MIN_LENGTH else []


class SecretCreate(Body):
    """A secret as created: an environment variable name (not reserved), its value, and whether runs get it
    as a variable or as a file.
    """

    name: str = Field(
        min_length=1,
        max_length=MAX_NAME,
        examples=["DATABASE_PASSWORD"],
        json_schema_extra={"pattern": NAME_RE.pattern},
        description="An environment variable name; PATH, HOME, ... and the OPSCRAFT_ prefix are reserved",
    )
    value: Text = Field(examples=["super_secret_password"], json_schema_extra=VALUE_SCHEMA)
    description: Text = Field(
        default="", max_length=MAX_DESCRIPTION, examples=["Production database password"]
    )
    kind: SecretKind = Field(
        default=SecretKind.env,
        validate_default=True,
        description="env: the value in the environment variable NAME; file: the value written to "
        "a file in the run (tmpfs, mode 0400) whose path is in NAME (SSH key, kubeconfig, ...). "
        "ANSIBLE_VAULT_PASSWORD_FILE and ANSIBLE_BECOME_PASSWORD_FILE must be file secrets",
    )

    @field_validator("name", mode="before")
    @classmethod
    def _trimmed(cls, value: Any) -> Any:
        return names.trimmed(value)

    @field_validator("name")
    @classmethod
    def _name(cls, name: str) -> str:
        if not NAME_RE.fullmatch(name):
            raise ValueError(
                "must be an environment variable name: ASCII letters, digits and '_', "
                "not starting with a digit"
            )
        if param_env.runtime_name(name):
            raise ValueError(f"is reserved (PATH, HOME, ... and the {param_env.RUNTIME_PREFIX} prefix)")
        return name

    @field_validator("value")
    @classmethod
    def _value(cls, value: str) -> str:
        return _check_value(value)

    @field_validator("kind")
    @classmethod
    def _kind(cls, kind: SecretKind, info: ValidationInfo) -> SecretKind:
        """`file` for the names Ansible reads a file's path from (`commands.PASSWORD_FILE_SECRETS`)."""
        name = info.data.get("name")  # validated before `kind` (absent when it was refused)
        if kind == SecretKind.env and name and (problem := commands.password_file_problem(name)):
            raise ValueError(problem)
        return kind


class SecretBase(Body):
    """What the description held when an edit started (`SecretUpdate.base`), as `GET` returned it."""

    description: Text = ""


def _update_schema(schema: dict[str, Any]) -> None:
    """`SecretUpdate`'s schema: `partial.at_least_one_field`, where the field that counts is the
    description or the value (a rotation window alone changes nothing), and the window goes with
    a value (`dependentRequired`, JSON Schema 2020-12)."""
    partial.at_least_one_field(schema)
    schema["anyOf"] = [{"required": ["description"]}, {"required": ["value"]}]
    schema["dependentRequired"] = {PREVIOUS_FIELD: ["value"]}


class SecretUpdate(Body):
    """A change of a secret's description and/or value (at least one of the two), and what the
    description held when the edit started (`base`), so that two people editing the same
    secret's description do not silently undo each other (the later save used to win)."""

    model_config = ConfigDict(json_schema_extra=_update_schema)

    description: limited(Text, MAX_DESCRIPTION) | None = None
    value: Text | None = Field(default=None, json_schema_extra=VALUE_SCHEMA)
    previous_accepted_seconds: int | None = Field(
        default=None,
        ge=0,
        le=PREVIOUS_MAX_SECONDS,
        description="With a new `value` of a secret that signs webhooks: how many seconds their "
        "signature check still accepts the value it replaces (0: refused at once; left out: "
        f"{PREVIOUS_DEFAULT_SECONDS}; at most {PREVIOUS_MAX_SECONDS}, a week). A secret that signs "
        "no webhook keeps no previous value (a number above 0 for one is a 422)",
        examples=[3600],
    )
    base: SecretBase | None = Field(
        default=None,
        description="What `description` held when the edit started: a new description whose stored "
        "value is neither this nor the new one was changed meanwhile (409 naming it, nothing saved). "
        "Left out: last write wins.",
        examples=[{"description": ""}],
    )

    @field_validator("value")
    @classmethod
    def _value(cls, value: str | None) -> str | None:
        return None if value is None else _check_value(value)


@dataclass(frozen=True)
class ScriptRef:
    """A script named by id and name."""

    id: int
    name: str


@dataclass
class SecretInfo:
    """A secret's metadata for listings: never the value, nor its ciphertext."""

    secret: Secret
    scripts: list[ScriptRef] = field(default_factory=list)
    created_by_name: str | None = None
    updated_by_name: str | None = None
    # What the saved value will do that its author may not expect (`value_warnings`): set by
    # `create` and `update` for the value they were given, empty in listings.
    warnings: list[str] = field(default_factory=list)
    # Until when webhooks signed with it still accept the value its last new value replaced;
    # None when they accept the current value only.
    previous_accepted_until: datetime | None = None
    # Whether a webhook signs with it (a new value then keeps the one it replaces: the UI offers
    # the window only then).
    signs_webhooks: bool = False


@dataclass(frozen=True)
class Attachment:
    """A secret attached to a script, with who attached it when."""

    secret_id: int
    name: str
    attached_by: int | None
    attached_by_name: str | None
    attached_at: datetime


# --- reading ------------------------------------------------------------------------------


async def _get(session: AsyncSession, secret_id: int) -> Secret:
    secret = await session.get(Secret, secret_id)
    if secret is None:
        raise NotFound.gone("secret")
    return secret


async def _user_names(session: AsyncSession, ids: set[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    rows = await session.exec(select(User.id, User.username).where(col(User.id).in_(wanted)))
    return {uid: name for uid, name in rows.all() if uid is not None}


async def _scripts_of(session: AsyncSession, secret_ids: list[int]) -> dict[int, list[ScriptRef]]:
    """Live (not deleted) scripts each secret is attached to."""
    found: dict[int, list[ScriptRef]] = {i: [] for i in secret_ids}
    if not secret_ids:
        return found
    rows = await session.exec(
        select(ScriptSecret.secret_id, Script.id, Script.name)
        .join(Script, col(Script.id) == col(ScriptSecret.script_id))
        .where(col(ScriptSecret.secret_id).in_(secret_ids), col(Script.deleted_at).is_(None))
        .order_by(*names.name_order(Script.name))
    )
    for secret_id, script_id, name in rows.all():
        assert script_id is not None
        found[secret_id].append(ScriptRef(script_id, name))
    return found


async def _infos(session: AsyncSession, rows: list[Secret]) -> list[SecretInfo]:
    ids = [s.id for s in rows if s.id is not None]
    attached = await _scripts_of(session, ids)
    names = await _user_names(session, {s.created_by for s in rows} | {s.updated_by for s in rows})
    until = await previous_accepted_until(session, ids)
    signs = await _signing(session, ids)
    return [
        SecretInfo(
            s,
            attached.get(s.id or 0, []),
            names.get(s.created_by or 0),
            names.get(s.updated_by or 0),
            previous_accepted_until=until.get(s.id or 0),
            signs_webhooks=s.id in signs,
        )
        for s in rows
    ]


async def _signing(session: AsyncSession, secret_ids: list[int]) -> set[int]:
    """Those of `secret_ids` that sign a webhook (its `secret_id`)."""
    if not secret_ids:
        return set()
    query = select(WebhookTrigger.secret_id).where(col(WebhookTrigger.secret_id).in_(secret_ids))
    return {secret_id for secret_id in (await session.exec(query.distinct())).all() if secret_id is not None}


async def previous_accepted_until(session: AsyncSession, secret_ids: list[int]) -> dict[int, datetime]:
    """Secret id -> until when its previous value is accepted, for those of `secret_ids` whose
    window is not over (in the database's clock, `utcnow`)."""
    if not secret_ids:
        return {}
    rows = await session.exec(
        select(SecretPreviousValue.secret_id, SecretPreviousValue.accepted_until).where(
            col(SecretPreviousValue.secret_id).in_(secret_ids)
        )
    )
    now = utcnow()
    return {secret_id: until for secret_id, until in rows.all() if until > now}


async def list_secrets(
    session: AsyncSession, actor: Actor, *, search: str | None = None, skip: int = 0, limit: int = 50
) -> tuple[list[SecretInfo], int]:
    """A page of secrets by name whose name or description holds `search` (any case, `%` and `_`
    literally, surrounding blanks dropped), and the total;
    `Invalid` naming `search` when it is too long or holds a control character."""
    require(actor.user, Permission.manage_secrets)
    check_filters(search=(search, MAX_SEARCH))
    search = like.trimmed(search)
    conditions = []
    if search:
        conditions.append(or_(like.holds(Secret.name, search), like.holds(Secret.description, search)))
    total = (await session.exec(select(func.count()).select_from(Secret).where(*conditions))).one()
    rows = await session.exec(
        select(Secret).where(*conditions).order_by(*names.name_order(Secret.name)).offset(skip).limit(limit)
    )
    return await _infos(session, list(rows.all())), int(total)


async def get(session: AsyncSession, actor: Actor, secret_id: int) -> SecretInfo:
    """A secret's metadata (never its value); needs manage_secrets; NotFound (404) for an unknown id."""
    require(actor.user, Permission.manage_secrets)
    return (await _infos(session, [await _get(session, secret_id)]))[0]


async def audit_logs(
    session: AsyncSession, actor: Actor, secret_id: int, *, skip: int = 0, limit: int = 50
) -> tuple[list[AuditEvent], int]:
    """Who created, changed, attached, detached, injected (with the execution id) or rotated it."""
    require(actor.user, Permission.manage_secrets)
    await _get(session, secret_id)
    return await audit.for_target(session, TARGET, secret_id, skip=skip, limit=limit)


# --- writing ------------------------------------------------------------------------------


async def create(session: AsyncSession, actor: Actor, data: SecretCreate | Mapping[str, Any]) -> SecretInfo:
    """Create a secret, encrypted with the current vault key (audited as `secret.create`, committed); needs
    manage_secrets.

    Raises Invalid (422) for a refused name or value, Conflict (409) for a taken name, Forbidden (403)
    without the permission. The answer's `warnings` say what the value will do unexpectedly (too short to
    mask).
    """
    require(actor.user, Permission.manage_secrets)
    body = scripts.parse(SecretCreate, data)
    if (await session.exec(select(Secret.id).where(col(Secret.name) == body.name))).first() is not None:
        raise Conflict(
            f"a secret named {body.name} already exists: choose another name or update that one",
            details=[{"field": "name", "message": "another secret has this name"}],
        )
    await keyring.require_current(session, keyring.current_vault())
    # The id is part of the associated data: insert first, then encrypt in the same transaction.
    secret = Secret(
        name=body.name,
        description=body.description,
        kind=body.kind.value,
        ciphertext=b"",
        salt=b"",
        nonce=b"",
        created_by=actor.user_id,
        updated_by=actor.user_id,
    )
    session.add(secret)
    await conflicts.flush(session, {"secrets.name": f"a secret named {body.name} already exists"})
    value = file_content(body.value) if body.kind == SecretKind.file else body.value
    keyring.seal_into(keyring.current_vault(), secret, value)
    audit.record(session, actor, "secret.create", TARGET, secret.id, name=secret.name, kind=secret.kind)
    await session.commit()
    return replace((await _infos(session, [secret]))[0], warnings=value_warnings(value))


async def update(
    session: AsyncSession, actor: Actor, secret_id: int, data: SecretUpdate | Mapping[str, Any]
) -> SecretInfo:
    """Change the description and/or replace the value (which is never shown). `Conflict` (409,
    field `description`) when the description changed since the edit's `base` (`partial.three_way`:
    nothing written); `Conflict` (409, field `value`) when the new value of an `env` secret would
    make the secrets of a script it is attached to too large for a run's environment
    (`run_environment.refuse_overfull`); `Invalid` (422) naming `previous_accepted_seconds` when
    it is sent without a value, or above 0 for a secret that signs no webhook.

    A new value of a secret that signs webhooks keeps the value it replaces for
    `previous_accepted_seconds` (`_keep_previous`: the module's rotation window); the answer's
    `previous_accepted_until` says until when.

    `updated_by` and `updated_at` say who last changed the secret, so they move only with a
    change, which is audited: the same description sent again changes nothing."""
    require(actor.user, Permission.manage_secrets)
    body = scripts.parse(SecretUpdate, data)
    if body.description is None and body.value is None:
        raise Invalid(
            "nothing to update: send a new description and/or a new value",
            details=[{"field": "body", "message": "send description and/or value"}],
        )
    if body.value is None and body.previous_accepted_seconds is not None:
        raise Invalid.at(
            PREVIOUS_FIELD, "goes with a new value: it says how long the value replaced is accepted"
        )
    secret = await (_held(session, secret_id) if body.value is not None else _get(session, secret_id))
    description = body.description
    if description is not None and body.base is not None:  # 409 before anything is written
        base = body.base.model_dump(exclude_unset=True)
        description = partial.three_way(
            secret, {"description": description}, base, "the secret", actor.user.id
        ).get("description")
    changed = False
    warnings: list[str] = []
    if body.value is not None:
        value = file_content(body.value) if secret.kind == SecretKind.file else body.value
        await keyring.require_current(session, keyring.current_vault())
        until = await _keep_previous(session, secret, value, body.previous_accepted_seconds, warnings)
        keyring.seal_into(keyring.current_vault(), secret, value)
        if secret.kind == SecretKind.env:
            await run_environment.refuse_overfull(session, "value", secret_id=secret_id)
        audit.record(
            session,
            actor,
            "secret.update_value",
            TARGET,
            secret.id,
            name=secret.name,
            previous_accepted_until=utc_text(until),
        )
        changed = True
    if description is not None and description != secret.description:
        secret.description = description
        audit.record(session, actor, "secret.update_description", TARGET, secret.id, name=secret.name)
        changed = True
    if changed:
        secret.updated_by = actor.user_id
        secret.updated_at = utcnow()
    await session.commit()
    warnings = (value_warnings(body.value) if body.value is not None else []) + warnings
    return replace((await _infos(session, [secret]))[0], warnings=warnings)


async def _held(session: AsyncSession, secret_id: int) -> Secret:
    """The secret, locked for this transaction (PostgreSQL: `FOR UPDATE`; SQLite: the write
    turn), so that two new values at once keep one previous value each in turn; `NotFound`."""
    await take_write_turn(session, Secret, col(Secret.id) == secret_id)
    query = select(Secret).where(col(Secret.id) == secret_id).with_for_update()
    secret = (await session.exec(query.execution_options(populate_existing=True))).first()
    if secret is None:
        raise NotFound.gone("secret")
    return secret


async def _keep_previous(
    session: AsyncSession, secret: Secret, value: str, seconds: int | None, warnings: list[str]
) -> datetime | None:
    """Before `value` replaces `secret`'s value (in the caller's transaction, the secret held):
    keep the value it replaces as its previous value for `seconds` (None: `PREVIOUS_DEFAULT_SECONDS`
    when it signs a webhook, else 0), replacing any previous one; 0 deletes any previous one, so
    only `value` is accepted from the commit on. Returns until when the previous value is
    accepted, None when none is. The same value again keeps the previous value as it was. A
    stored value that does not decrypt keeps nothing and says so in `warnings` (never the value).
    `Invalid` (422, `previous_accepted_seconds`) above 0 for a secret that signs no webhook."""
    assert secret.id is not None
    signs = bool(await _signing(session, [secret.id]))
    if seconds is None:
        seconds = PREVIOUS_DEFAULT_SECONDS if signs else 0
    elif seconds > 0 and not signs:
        raise Invalid.at(
            PREVIOUS_FIELD,
            f"secret {secret.name} signs no webhook: only a webhook's signature check accepts a "
            "previous value; send 0 or leave it out",
        )
    try:
        replaced = keyring.reveal(keyring.current_vault(), secret) if seconds else None
    except DecryptError:
        replaced = None
        warnings.append(f"{PREVIOUS_FIELD}: the value replaced did not decrypt, so it is not kept")
    if replaced == value:  # saved again: nothing was replaced, the window stays as it is
        return (await previous_accepted_until(session, [secret.id])).get(secret.id)
    # Statements, not loaded rows: a call or the upkeep may delete one whose window is over
    # meanwhile (`live_previous`), and a row loaded here would then be deleted or updated twice.
    await session.exec(_previous_of(secret.id))
    if replaced is None:
        return None
    now = utcnow()
    until = now + timedelta(seconds=seconds)
    previous = SecretPreviousValue(
        secret_id=secret.id, ciphertext=b"", salt=b"", nonce=b"", replaced_at=now, accepted_until=until
    )
    keyring.seal_previous(keyring.current_vault(), previous, replaced)
    session.add(previous)
    return until


def _ended(now: datetime) -> Any:
    """The condition of a previous value whose window is over at `now`."""
    return compared(col(SecretPreviousValue.accepted_until), LE, now)


def _previous_of(secret_id: int, *where: Any) -> Delete:
    """The statement deleting the previous value of the secret `secret_id` (matching `where`)."""
    return sql_delete(SecretPreviousValue).where(col(SecretPreviousValue.secret_id) == secret_id, *where)


async def live_previous(session: AsyncSession, secret_id: int) -> SecretPreviousValue | None:
    """The secret's previous value while its window lasts, for a webhook's signature check;
    None when it has none. One whose window is over is deleted here (the caller commits; calls
    at once each delete it, which deletes nothing the second time)."""
    previous = await session.get(SecretPreviousValue, secret_id)
    if previous is None:
        return None
    now = utcnow()
    if previous.accepted_until <= now:
        await session.exec(
            _previous_of(secret_id, compared(col(SecretPreviousValue.accepted_until), LE, now))
        )
        return None
    return previous


async def end_previous(session: AsyncSession, actor: Actor, secret_id: int) -> None:
    """End the secret's rotation window now: its previous value is deleted, and webhooks accept
    its current value only (audited as `secret.end_previous`, committed); needs manage_secrets.
    `NotFound` (404) for an unknown secret, or one whose previous value is no longer accepted."""
    require(actor.user, Permission.manage_secrets)
    secret = await _held(session, secret_id)
    previous = await live_previous(session, secret_id)
    if previous is None:
        await session.commit()
        raise NotFound(f"secret {secret.name} has no previous value still accepted")
    await session.exec(_previous_of(secret_id))
    audit.record(
        session,
        actor,
        "secret.end_previous",
        TARGET,
        secret_id,
        name=secret.name,
        accepted_until=utc_text(previous.accepted_until),
    )
    await session.commit()


async def drop_ended_previous_values(db: Database) -> int:
    """Delete every previous value whose window is over (the upkeep's round: `retention.run_upkeep`),
    each audited as `secret.previous_removed` by `retention`; returns how many. One a call
    deleted first (`live_previous`) is neither counted nor audited here."""
    async with db.session() as session:
        statement = sql_delete(SecretPreviousValue).where(_ended(utcnow()))
        columns = col(SecretPreviousValue.secret_id), col(SecretPreviousValue.accepted_until)
        removed = (await session.exec(statement.returning(*columns))).all()
        for secret_id, until in removed:
            audit.record(
                session,
                Actor.on_behalf_of(None, "retention"),
                "secret.previous_removed",
                TARGET,
                secret_id,
                actor_name="retention",
                accepted_until=utc_text(until),
            )
        await session.commit()
        return len(removed)


def _listed(names: list[str]) -> str:
    return ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")


async def _in_use(session: AsyncSession, secret_id: int, name: str) -> Conflict | None:
    """The `Conflict` (409) naming what relies on the secret for a security feature or a
    credential, beyond script attachments: webhooks signing with it ("script/webhook") and
    notification channels sending with it; None when nothing does. Each such use must be changed
    by hand before the secret may go: deleting the secret under them would silently turn signing
    off. Their `secret_id` keys are ON DELETE RESTRICT (migration 0018), so the database refuses
    such a delete too when a use appears after this check."""
    hooks = await session.exec(
        select(Script.name, WebhookTrigger.name)
        .join(Script, col(Script.id) == col(WebhookTrigger.script_id))
        .where(col(WebhookTrigger.secret_id) == secret_id)
        .order_by(*names.name_order(Script.name), col(WebhookTrigger.name_key))
    )
    channels = await session.exec(
        select(NotificationChannel.name)
        .where(col(NotificationChannel.secret_id) == secret_id)
        .order_by(col(NotificationChannel.name_key))
    )
    uses = []
    if signing := [f"{script}/{hook}" for script, hook in hooks.all()]:
        uses.append(f"it signs {len(signing)} webhook(s) ({_listed(signing)})")
    if sending := list(channels.all()):
        uses.append(f"it is the credential of {len(sending)} notification channel(s) ({_listed(sending)})")
    if not uses:
        return None
    return Conflict(
        f"secret {name} is in use: {'; '.join(uses)}: remove it from those (or delete them) "
        "first; force=true only detaches scripts",
        details=[{"field": "secret_id", "message": use} for use in uses],
    )


async def delete(session: AsyncSession, actor: Actor, secret_id: int, *, force: bool = False) -> None:
    """Delete a secret.

    `Conflict` (409) naming the users while a webhook signs with it or a notification channel
    sends with it (`force` does not override this: change or delete those first; `details` has
    one entry per kind of use, field `secret_id`), and while a live script has it attached unless
    `force`, which detaches it from those scripts. Atomic against a racing attach, webhook or
    channel save: the row lock (PostgreSQL) makes their key checks wait, and the RESTRICT keys
    (migrations 0018, 0020) refuse the delete if one commits after the checks (SQLite): then the
    same 409 is raised, never a delete that silently drops the new use.
    """
    require(actor.user, Permission.manage_secrets)
    # Locked (PostgreSQL) so that no webhook or channel starts using it while we look.
    secret = (await session.exec(select(Secret).where(col(Secret.id) == secret_id).with_for_update())).first()
    if secret is None:
        raise NotFound.gone("secret")
    name = secret.name
    if (in_use := await _in_use(session, secret_id, name)) is not None:
        raise in_use
    attached = (await _scripts_of(session, [secret_id]))[secret_id]
    if attached and not force:
        raise _attached_conflict(name, attached)
    # Detached here: from deleted scripts always, from live ones when forced. The key (RESTRICT,
    # 0020) refuses the delete if a live script attached it since the check.
    links = sql_delete(ScriptSecret).where(col(ScriptSecret.secret_id) == secret_id)
    if not attached:
        deleted_scripts = select(Script.id).where(col(Script.deleted_at).is_not(None))
        links = links.where(col(ScriptSecret.script_id).in_(deleted_scripts))
    await session.exec(links)
    await session.exec(_previous_of(secret_id))
    await session.delete(secret)
    audit.record(
        session,
        actor,
        "secret.delete",
        TARGET,
        secret_id,
        name=name,
        detached=[s.id for s in attached],
    )
    try:
        await session.commit()
    except IntegrityError:
        # A webhook, channel or script started using it after the checks (SQLite locks nothing on
        # reading): an ON DELETE RESTRICT key (0018, 0020) refused the delete.
        await session.rollback()
        if (in_use := await _in_use(session, secret_id, name)) is not None:
            raise in_use from None
        if now_attached := (await _scripts_of(session, [secret_id]))[secret_id]:
            raise _attached_conflict(name, now_attached) from None
        raise


def _attached_conflict(name: str, attached: list[Script]) -> Conflict:
    """The `Conflict` (409) of a delete without `force` of a secret attached to `attached`."""
    return Conflict(
        f"secret {name} is attached to {len(attached)} script(s) "
        f"({_listed([s.name for s in attached])}): detach it first, or force the deletion "
        "(API: force=true), which detaches it everywhere",
        details=[{"field": "secret_id", "message": f"attached to {_listed([s.name for s in attached])}"}],
    )


# --- attachments ---------------------------------------------------------------------------


async def list_for_script(
    session: AsyncSession, actor: Actor, script_id: int, *, skip: int = 0, limit: int = paging.DEFAULT_PAGE
) -> tuple[list[Attachment], int]:
    """A page (`paging.page`) of the names of the secrets a script runs with (never values), by
    name (ties by id), and how many there are: visible to whoever sees the script (`NotFound`
    otherwise, as for a missing or deleted script)."""
    await scripts.get(session, actor, script_id)
    query = (
        select(Secret.id, Secret.name, ScriptSecret.attached_by, ScriptSecret.attached_at)
        .join(ScriptSecret, col(ScriptSecret.secret_id) == col(Secret.id))
        .where(col(ScriptSecret.script_id) == script_id)
        .order_by(*names.name_order(Secret.name), col(Secret.id))
    )
    found, total = await paging.page(session, query, skip, limit)
    by_id = await _user_names(session, {by for _, _, by, _ in found})
    attached = [
        Attachment(sid, name, by, by_id.get(by or 0), at) for sid, name, by, at in found if sid is not None
    ]
    return attached, total


async def ssh_key_attached(session: AsyncSession, actor: Actor, script: Script) -> bool | None:
    """Whether the script's `ssh_key_secret` is attached to it as a `file` secret, as its runs
    need (execution/commands.py ends a run in error otherwise); None when it names no key. The
    name is checked when the script is saved, but the secret can only be attached afterwards."""
    if not script.ssh_key_secret or script.id is None:
        return None
    await scripts.get(session, actor, script.id)
    found = await session.exec(
        select(Secret.id)
        .join(ScriptSecret, col(ScriptSecret.secret_id) == col(Secret.id))
        .where(
            col(ScriptSecret.script_id) == script.id,
            col(Secret.name) == script.ssh_key_secret,
            col(Secret.kind) == SecretKind.file,
        )
    )
    return found.first() is not None


async def attach(session: AsyncSession, actor: Actor, script_id: int, secret_id: int) -> Attachment:
    """Attach a secret to a script: `Conflict` (409, field `secret_id`) when it is attached
    already, would shadow one of the script's parameters, or (an `env` secret) would make the
    script's secrets too large for a run's environment (`run_environment.refuse_overfull`);
    `NotFound` for either id."""
    require(actor.user, Permission.manage_secrets)
    script = await scripts.get(session, actor, script_id)
    secret = await _get(session, secret_id)
    clashes = _shadowing([spec["name"] for spec in script.parameters], script.script_type, [secret.name])
    if clashes:
        raise Conflict(
            f"script {script.name} declares a parameter named {clashes[0]} (the variable {secret.name} "
            "of its runs): the secret and the parameter would shadow each other; rename the "
            "parameter or use another secret name",
            details=[{"field": "secret_id", "message": f"would shadow the script's parameter {clashes[0]}"}],
        )
    if await session.get(ScriptSecret, (script_id, secret_id)) is not None:
        raise Conflict(
            f"secret {secret.name} is already attached to script {script.name}",
            details=[{"field": "secret_id", "message": "already attached to this script"}],
        )
    link = ScriptSecret(script_id=script_id, secret_id=secret_id, attached_by=actor.user_id)
    session.add(link)
    already = f"secret {secret.name} is already attached to script {script.name}"
    taken = {"script_secrets.script_id,secret_id": already}
    if secret.kind == SecretKind.env:
        # Flushed here so that a script or secret deleted meanwhile is its 404, not a 500 from
        # the size query's flush.
        await conflicts.flush(session, taken)
        await run_environment.refuse_overfull(session, "secret_id", script_id=script_id)
    audit.record(
        session,
        actor,
        "secret.attach",
        TARGET,
        secret_id,
        name=secret.name,
        script_id=script_id,
        script_name=script.name,
    )
    await conflicts.commit(session, taken)
    return Attachment(secret_id, secret.name, actor.user_id, actor.name, link.attached_at)


async def detach(session: AsyncSession, actor: Actor, script_id: int, secret_id: int) -> None:
    """Detach a secret from a script (audited as `secret.detach`, committed): its next runs no longer get
    it; needs manage_secrets.

    Raises Forbidden (403) without the permission, NotFound (404) for an unknown script or secret, or a
    secret not attached to that script.
    """
    require(actor.user, Permission.manage_secrets)
    script = await scripts.get(session, actor, script_id)
    secret = await _get(session, secret_id)
    link = await session.get(ScriptSecret, (script_id, secret_id))
    if link is None:
        raise NotFound(f"secret {secret.name} is not attached to script {script.name}")
    await session.delete(link)
    audit.record(
        session,
        actor,
        "secret.detach",
        TARGET,
        secret_id,
        name=secret.name,
        script_id=script_id,
        script_name=script.name,
    )
    await session.commit()


# --- execution time ------------------------------------------------------------------------


def _shadowing(names: Iterable[str], script_type: str | None, secret_names: Iterable[str]) -> list[str]:
    """The parameters among `names` (sorted) whose environment variable in a `script_type` run
    (`param_env.env_names`) is one of `secret_names`."""
    secret_set = set(secret_names)
    return sorted(name for name in set(names) if param_env.env_names(name, script_type) & secret_set)


async def check_parameter_shadowing(
    session: AsyncSession, script_id: int, names: Iterable[str], script_type: str | None
) -> None:
    """`Invalid` naming each parameter of a `script_type` script whose environment variable
    (`param_env.env_names`: its name, `TF_VAR_<name>` for Terraform) is the name of a secret
    attached to the script: one would silently replace the other in the run."""
    names = list(names)
    variables = {env for name in names for env in param_env.env_names(name, script_type)}
    rows = await session.exec(
        select(Secret.name)
        .join(ScriptSecret, col(ScriptSecret.secret_id) == col(Secret.id))
        .where(col(ScriptSecret.script_id) == script_id, col(Secret.name).in_(variables))
    )
    clashes = _shadowing(names, script_type, rows.all())
    if clashes:
        raise Invalid(
            f"parameter {', '.join(clashes)} would shadow the attached secret of the same name: "
            "rename the parameter or detach the secret",
            details=[{"field": f"parameters.{n}", "message": "shadows an attached secret"} for n in clashes],
        )


@dataclass(frozen=True)
class VaultSecretSource:
    """`execution.ports.SecretSource` over the vault opened at start (given to the worker)."""

    vault: Vault

    async def for_execution(self, db: Database, execution_id: int) -> RunSecrets:
        """The decrypted secrets of a run's script (inject_for_execution: each use audited and committed).

        Raises SecretUnavailable when the run no longer exists or a secret does not decrypt.
        """
        async with db.session() as session:
            execution = await session.get(Execution, execution_id)
            if execution is None:
                raise SecretUnavailable(f"execution {execution_id} no longer exists")
            return await inject_for_execution(session, execution, self.vault)


def reveal_for_use(
    session: AsyncSession, secret: Secret, actor: Actor, actor_name: str, **details: Any
) -> str:
    """Decrypt `secret` for a use outside a run (a webhook's signature check, a notification
    channel's credentials): audited as `secret.use` by `actor_name` with `details` (what used
    it: `webhook_id`, `channel_id`), and `last_used_at` set, so that the secret's audit log and
    its "last used" tell of every decryption. The caller commits. Raises `DecryptError`."""
    value = keyring.reveal(keyring.current_vault(), secret)
    secret.last_used_at = utcnow()
    audit.record(
        session, actor, "secret.use", TARGET, secret.id, actor_name=actor_name, name=secret.name, **details
    )
    return value


async def inject_for_execution(session: AsyncSession, execution: Execution, vault: Vault) -> RunSecrets:
    """Decrypt the secrets attached to the execution's script, NAME -> value per kind.

    Each injection is audited with the execution id (as the user who started the run, named as
    the run remembers them when the account is gone) and
    updates `last_used_at`; all of it is committed together. A secret that does not decrypt
    (tampered, moved, other key) raises `SecretUnavailable` after an audited failure event.
    """
    execution_id, script_id = execution.id, execution.script_id
    assert execution_id is not None
    rows = (
        await session.exec(
            select(Secret)
            .join(ScriptSecret, col(ScriptSecret.secret_id) == col(Secret.id))
            .where(col(ScriptSecret.script_id) == script_id)
            .order_by(*names.name_order(Secret.name))
        )
    ).all()
    user = await session.get(User, execution.triggered_by) if execution.triggered_by else None
    actor = Actor(user)
    # Who started the run, also when that account was deleted while the run waited (queued, or
    # awaiting approval): the run keeps the name, as the audit trail keeps names.
    starter = execution.triggered_by_name or "system"
    found = RunSecrets()
    for secret in rows:
        values = found.files if secret.kind == SecretKind.file else found.env
        try:
            values[secret.name] = keyring.reveal(vault, secret)
        except DecryptError as exc:
            audit.record(
                session,
                actor,
                "secret.inject_failed",
                TARGET,
                secret.id,
                actor_name=starter,
                name=secret.name,
                execution_id=execution_id,
            )
            await session.commit()
            raise SecretUnavailable(str(exc)) from None
    now = utcnow()
    for secret in rows:
        secret.last_used_at = now
        audit.record(
            session,
            actor,
            "secret.inject",
            TARGET,
            secret.id,
            actor_name=starter,
            name=secret.name,
            execution_id=execution_id,
            script_id=script_id,
        )
    await session.commit()
    return found
