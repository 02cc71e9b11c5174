"""Inbound webhooks: a URL that starts a script, `POST /api/v1/hooks/{id}/{token}`.

Rules:
- operators and admins create webhooks on a script; the token is shown once and stored as its
  SHA-256; runs start on behalf of the user who last saved the webhook (checked at each call);
- optional signature: with a vault secret as key, a call must carry the proof its
  `signature_scheme` names: `opscraft`, `X-OpsCraft-Timestamp: <unix seconds>` within
  `SIGNATURE_WINDOW` of now and `X-OpsCraft-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>."
  + raw body>` (GitHub's `sha256=` form, bound to a timestamp against replays); `github`, GitHub's
  own `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body>` (no timestamp: a body
  accepted once is refused for `GITHUB_REPLAY_SECONDS`); `gitlab`, GitLab's `X-Gitlab-Token:
  <the key>` (a bearer secret like the URL's token: no replay check). Senders cannot be told to
  use another form, so each is taken as they send it;
- the key is the signing secret's value or, while the secret's rotation window lasts after a
  new value (services/secrets.py), the value it replaced: senders are switched to the new key
  without an outage; an accepted call's audit row says which (`key`: `current` or `previous`);
- a Terraform script's webhook names the action (`plan` or `apply`) and workspace of its runs
  (`executions.automation_terraform`), an Ansible script's webhook its run options (`limit`,
  `tags`, `skip_tags`, `check`, `diff`: `executions.automation_run_options`); the call's body
  never chooses them (it reaches parameters only, through `mapping`);
- the JSON body's values reach parameters through `mapping` (parameter name -> RFC 6901 JSON
  pointer) over the fixed `parameters`; the result goes through the script's parameter
  resolver, so a bad value is a 422 naming the parameter;
- each call with the webhook's token counts against its rate limit (a call without it, against
  its client address's), and is audited (`webhook.call`, accepted or
  refused with the reason), never with the payload; calls without the token are audited as one
  row per client address and minute with their count (`_refused_without_token`), so they cannot
  flood the audit trail.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Any
from urllib.parse import parse_qsl

import orjson
from pydantic import Field
from sqlalchemy import delete as sql_delete
from sqlalchemy import func as sql_func
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft import runtime
from opscraft.db import stored_shapes
from opscraft.db.digits import ascii_int
from opscraft.db.models import (
    AuditEvent,
    Execution,
    Script,
    Secret,
    SignatureScheme,
    User,
    WebhookSignature,
    WebhookTrigger,
)
from opscraft.db.models.executions import Trigger
from opscraft.db.text import find_unreadable_numbers, find_unstorable, read_float, read_int
from opscraft.db.turns import read_held, take_write_turn
from opscraft.db.types import GE, LT, MAX_ID, compared, utc_text, utcnow
from opscraft.security import ratelimit
from opscraft.security.http import REPEATED_KEY, RepeatedKey, json_shape, not_json_reason, unique_keys
from opscraft.security.ratelimit import address_key
from opscraft.security.tokens import hash_personal_token, same_secret
from opscraft.security.vault import DecryptError
from opscraft.services import audit, conflicts, executions, keyring, names, paging, parameters, partial
from opscraft.services.actor import Actor
from opscraft.services.bodies import Body
from opscraft.services.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Problems,
    RateLimited,
    ServiceError,
    Unauthorized,
    unreadable,
)
from opscraft.services.executions import AnsibleRunOptions, AutomationAction, TerraformWorkspace
from opscraft.services.invisible import Label, value_problem, visible
from opscraft.services.parameters import ParameterValues, PointerMapping
from opscraft.services.partial import CHANGES, over_stored, three_way, unchanged
from opscraft.services.permissions import Permission, require
from opscraft.services.run_starter import OwnerRefused, start_for
from opscraft.services.secrets import live_previous, previous_accepted_until, reveal_for_use
from opscraft.services.storable import Text

# What a refusal names (services/permissions.require; the routes' early check says the same).
MANAGE = "manage webhooks"

SIGNATURE_WINDOW = 300
SIGNATURE_HEADER = "x-opscraft-signature"
TIMESTAMP_HEADER = "x-opscraft-timestamp"
GITHUB_HEADER = "x-hub-signature-256"
GITLAB_HEADER = "x-gitlab-token"
# GitHub's event name; `ping` is sent when a webhook is added on GitHub: it starts no run.
GITHUB_EVENT_HEADER = "x-github-event"
# GitHub signs the body alone: an accepted body is refused again for this long (a week: GitHub's
# own redelivery of a delivery it saw fail is accepted, as a refused call leaves no record).
GITHUB_REPLAY_SECONDS = 7 * 24 * 3600
MAX_TIMESTAMP_DIGITS = 12  # Unix seconds: 10 digits until 2286
MAX_INDEX_DIGITS = 18  # no list has 10**18 items
TOKEN_PREFIX = "och_"
# Calls without a webhook's token (a wrong token, an unknown or paused webhook) are audited as
# one row per caller address and window of this many seconds, with their count: one row each
# let anyone who can reach the server write the audit trail as fast as it answers.
REFUSED_WINDOW_SECONDS = 60
REFUSED_ACTOR = "webhook:refused"
REFUSED_LISTED_HOOKS = 20  # webhook ids (an address probing ids) and addresses kept in the window's row


class WebhookIn(Body):
    """A webhook as created or replaced: its name, the optional signing secret, how a call's JSON body maps
    to parameters (RFC 6901 JSON pointers) and the options of the runs it starts.
    """

    name: Label = Field(min_length=1, max_length=64, examples=["on-push"])
    secret_id: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="Vault secret used as the HMAC-SHA256 key"
    )
    signature_scheme: SignatureScheme = Field(
        default=SignatureScheme.opscraft,
        description="The form of a signed call's proof: `opscraft` (X-OpsCraft-Timestamp and "
        "X-OpsCraft-Signature), `github` (X-Hub-Signature-256, the webhook's Secret on GitHub) or "
        "`gitlab` (X-Gitlab-Token, the webhook's Secret token on GitLab); `github` and `gitlab` "
        "need `secret_id`",
    )
    mapping: PointerMapping = Field(
        default_factory=dict,
        description="Parameter name -> JSON pointer (RFC 6901) into the request body",
        examples=[{"BRANCH": "/ref", "COMMIT": "/head_commit/id"}],
    )
    parameters: ParameterValues = Field(
        default_factory=dict, description="Fixed values, under the mapped ones"
    )
    enabled: bool = True
    terraform_action: AutomationAction = None
    terraform_workspace: TerraformWorkspace = None
    run_options: AnsibleRunOptions | None = Field(
        default=None,
        description="Ansible scripts only: the run options of the runs it starts (--limit, --tags, "
        "--skip-tags, --check, --diff), judged as a manual run's",
    )


class WebhookBase(partial.TriggerBase):
    """What a webhook held when an edit started (`WebhookChanges.base`), as `GET` returned it.
    `secret_id` is the id of the vault secret that signs calls, never a secret's value (the
    token has no base: a `PUT` never changes it)."""

    name: Text = ""
    secret_id: int | None = None
    signature_scheme: Text = SignatureScheme.opscraft.value
    mapping: partial.BaseObject = Field(default_factory=dict)


class WebhookChanges(WebhookIn):
    """`WebhookIn` as a `PUT` body, every field optional (`partial.CHANGES`), and what the
    fields held when the edit started (`base`: `partial.three_way`)."""

    model_config = CHANGES

    base: WebhookBase | None = Field(
        default=None,
        description=f"{partial.BASE_DESCRIPTION} `secret_id` is the signing secret's id, never its value.",
        examples=[{"name": "on-push", "secret_id": None}],
    )


_MISSING = object()


def check_pointer(pointer: str) -> list[str]:
    """The reference tokens of an RFC 6901 JSON pointer; ValueError when it is malformed."""
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ValueError("a JSON pointer starts with '/' (or is empty for the whole body)")
    tokens = pointer[1:].split("/")
    for token in tokens:
        if "~" in token.replace("~0", "").replace("~1", ""):
            raise ValueError("'~' must be escaped as ~0 (and '/' as ~1)")
    return [t.replace("~1", "/").replace("~0", "~") for t in tokens]


# The longest JSON pointer a mapping saves (characters): a body's paths are tens of characters;
# longer is a paste gone wrong. Checked at save only: a row saved before still resolves.
MAX_POINTER_CHARS = 1024


def check_saved_pointer(pointer: str) -> list[str]:
    """`check_pointer` for a mapping being saved: also ValueError past `MAX_POINTER_CHARS`, and
    for a character a parameter value refuses (`invisible.value_problem`: a zero-width space or
    BOM pasted into `/user\u200b` made a pointer that looked right and never matched a body's
    key, so every call ran without the value)."""
    if len(pointer) > MAX_POINTER_CHARS:
        raise ValueError(f"must be at most {MAX_POINTER_CHARS} characters (it has {len(pointer)})")
    invisible = value_problem(pointer)
    if invisible:
        raise ValueError(invisible)
    return check_pointer(pointer)


def resolve_pointer(document: Any, pointer: str) -> Any:
    """The value at `pointer` in `document` (RFC 6901), or `_MISSING` when there is none."""
    value = document
    for token in check_pointer(pointer):
        if isinstance(value, dict) and token in value:
            value = value[token]
        elif isinstance(value, list) and (token == "0" or not token.startswith("0")):
            # RFC 6901: an index is ASCII digits; one with more digits than any list holds is missing
            index = ascii_int(token, MAX_INDEX_DIGITS)
            if index is None or index >= len(value):
                return _MISSING
            value = value[index]
        else:
            return _MISSING
    return value


async def _script(session: AsyncSession, script_id: int, *, held: bool = False) -> Script:
    """The live script; `held` (a webhook is saved on it): not deleted until the commit
    (`db.turns.read_held`). `NotFound` when it is missing or deleted."""
    script = await read_held(session, Script, script_id) if held else await session.get(Script, script_id)
    if script is None or script.deleted_at is not None:
        raise NotFound.gone("script")
    return script


async def _apply(
    session: AsyncSession,
    hook: WebhookTrigger,
    script: Script,
    data: WebhookIn | Mapping[str, Any],
    *,
    keep_values: bool = False,
) -> None:
    """Check the body's fields, every mapping, fixed value and required parameter
    (`parameters.check_preset`; `keep_values`: the stored mapping and values are kept unchecked,
    `parameters.keeps_stored_values`), the secret, the Terraform action and workspace and the Ansible
    run options as a manual run's (`executions.automation_terraform`, `automation_run_options`):
    one `Invalid` naming all, each check run on the fields the body model accepted. Then set
    them."""
    problems = Problems()
    body, sent = problems.body(WebhookIn, data)
    refused = problems.fields() & {"body", "mapping", "parameters"}
    if keep_values:
        sent = {k: v for k, v in sent.items() if k not in parameters.PRESET_VALUES}
    declared = {spec["name"] for spec in script.parameters}
    for name, pointer in sent.get("mapping", {}).items():
        if name not in declared:
            problems.add(f"mapping.{visible(name)}", parameters.undeclared(name))
            continue
        try:
            check_saved_pointer(pointer)
        except ValueError as exc:
            problems.add(f"mapping.{name}", str(exc))
    fixed = sent.get("parameters", {})
    for name in fixed:
        if name not in declared:
            problems.add(f"parameters.{visible(name)}", parameters.undeclared(name))
    with problems.check():
        parameters.check_preset(
            script.parameters,
            None if refused or sent.get("enabled") is False else sent.get("mapping", {}),
            fixed,
            parameters.FROM_REQUEST_BODY,
        )
    secret_id = sent.get("secret_id")
    if secret_id is not None and await session.get(Secret, secret_id) is None:
        problems.add("secret_id", f"no vault secret with id {secret_id}")
    scheme = sent.get("signature_scheme", SignatureScheme.opscraft)
    if scheme != SignatureScheme.opscraft and secret_id is None and "secret_id" not in problems.fields():
        problems.add(
            "signature_scheme",
            f"{scheme} signatures need a signing secret (secret_id): the vault secret holding the key "
            f"given to {'GitHub' if scheme == SignatureScheme.github else 'GitLab'} as the webhook's secret",
        )
    action = workspace = None
    with problems.check():
        action, workspace = executions.automation_terraform(
            script.script_type, sent.get("terraform_action"), sent.get("terraform_workspace")
        )
    options = None
    with problems.check():
        options = executions.automation_run_options(script.script_type, sent.get("run_options"))
    problems.raise_if_any()
    assert body is not None  # else raised above
    data = body
    hook.name, hook.secret_id, hook.enabled = data.name, data.secret_id, data.enabled
    hook.signature_scheme = data.signature_scheme.value
    hook.mapping, hook.parameters = dict(data.mapping), dict(data.parameters)
    hook.terraform_action, hook.terraform_workspace = action, workspace
    hook.run_options = options


async def create(
    session: AsyncSession, actor: Actor, script_id: int, data: WebhookIn | Mapping[str, Any]
) -> tuple[WebhookTrigger, str]:
    """A new webhook owned by the caller: (the row, its token, shown once)."""
    user = require(actor.user, Permission.edit_scripts, MANAGE)
    script = await _script(session, script_id, held=True)
    token, digest, prefix = _new_token()
    hook = WebhookTrigger(script_id=script_id, name="", token_hash=digest, prefix=prefix, owner_id=user.id)
    await _apply(session, hook, script, data)
    await _check_name(session, hook)
    session.add(hook)
    await conflicts.flush(session)
    audit.record(
        session,
        actor,
        "webhook.create",
        "webhook",
        hook.id,
        script_id=script_id,
        name=hook.name,
        signed=hook.secret_id is not None,
        signature_scheme=hook.signature_scheme,
        terraform_action=hook.terraform_action,
        terraform_workspace=hook.terraform_workspace,
        run_options=hook.run_options,
    )
    await conflicts.commit(session)
    return hook, token


async def _check_name(session: AsyncSession, hook: WebhookTrigger) -> None:
    scope = [col(WebhookTrigger.script_id) == hook.script_id]
    await names.check_free(session, WebhookTrigger, hook.name, scope, names.WEBHOOK_TAKEN, except_id=hook.id)


def _new_token() -> tuple[str, str, str]:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, hash_personal_token(token), token[:12]


async def get(
    session: AsyncSession, actor: Actor, webhook_id: int, script_id: int | None = None
) -> WebhookTrigger:
    """A webhook by id (of `script_id` when given); needs view_scripts. Raises NotFound (404) for an unknown
    webhook or one of another script.
    """
    require(actor.user, Permission.view_scripts)
    hook = await session.get(WebhookTrigger, webhook_id)
    if hook is None or (script_id is not None and hook.script_id != script_id):
        raise NotFound.gone("webhook")
    return hook


async def list_for_script(
    session: AsyncSession, actor: Actor, script_id: int, *, skip: int = 0, limit: int = paging.DEFAULT_PAGE
) -> tuple[list[WebhookTrigger], int]:
    """A page (`paging.page`) of the script's webhooks, oldest first (by id), and how many there
    are; `NotFound` (404) for a missing or deleted script."""
    require(actor.user, Permission.view_scripts)
    await _script(session, script_id)
    query = select(WebhookTrigger).where(col(WebhookTrigger.script_id) == script_id)
    return await paging.page(session, query.order_by(col(WebhookTrigger.id)), skip, limit)


async def update_webhook(
    session: AsyncSession,
    actor: Actor,
    webhook_id: int,
    data: WebhookIn | Mapping[str, Any],
    script_id: int | None = None,
    base: Mapping[str, Any] | None = None,
) -> WebhookTrigger:
    """Change a webhook's settings (its URL stays); a field `data` leaves out keeps its stored
    value (`partial.over_stored`). The caller becomes its owner, unless the save changes nothing
    (`partial.unchanged`): then nothing is written or audited. `base` (field -> stored value
    when the edit started; else the body's `base`: `partial.split_base`): a field of `data`
    changed meanwhile by someone else is a `Conflict` (409 naming it, nothing written:
    `partial.three_way`)."""
    user = require(actor.user, Permission.edit_scripts, MANAGE)
    hook = await get(session, actor, webhook_id, script_id)
    data, base = partial.split_base(WebhookChanges, data, base)
    if base is not None:
        data = three_way(hook, data, base, "the webhook", user.id)
    body, data = data, over_stored(WebhookIn, data, hook)
    keep = parameters.keeps_stored_values(body, data)
    await _apply(session, hook, await _script(session, hook.script_id, held=True), data, keep_values=keep)
    await _check_name(session, hook)
    if unchanged(hook):
        await session.commit()
        return hook
    hook.owner_id = user.id
    audit.record(
        session,
        actor,
        "webhook.update",
        "webhook",
        hook.id,
        name=hook.name,
        signed=hook.secret_id is not None,
        signature_scheme=hook.signature_scheme,
        terraform_action=hook.terraform_action,
        terraform_workspace=hook.terraform_workspace,
        run_options=hook.run_options,
    )
    await conflicts.commit(session)
    return hook


async def delete(session: AsyncSession, actor: Actor, webhook_id: int, script_id: int | None = None) -> None:
    """Delete a webhook (audited as `webhook.delete`, committed); needs edit_scripts.

    Raises Forbidden (403) without the permission, NotFound (404) for an unknown webhook or one of another
    script.
    """
    require(actor.user, Permission.edit_scripts, MANAGE)
    hook = await get(session, actor, webhook_id, script_id)
    await session.delete(hook)
    audit.record(session, actor, "webhook.delete", "webhook", webhook_id, script_id=hook.script_id)
    await session.commit()


def hook_path(hook: WebhookTrigger, token: str) -> str:
    """The URL path a webhook is called at; it holds the token, so it is shown only when the webhook is
    created.
    """
    return f"/api/v1/hooks/{hook.id}/{token}"


# --- receiving -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """An inbound call as the API received it."""

    webhook_id: int
    token: str
    body: bytes
    headers: dict[str, str]  # lower-case names
    client_ip: str | None


def _signed_at(call: Call) -> tuple[str, int]:
    """(the call's signature in lower-case hex, its timestamp in Unix seconds) when it carries
    both headers in their form and the timestamp is in the window; `Unauthorized` otherwise,
    naming the header to fix (never repeating its value). Checked before the key is decrypted:
    a call without them never reaches the vault. A call that sent both headers, one of them
    malformed, was told "signature required", as if it had sent none."""
    signature = call.headers.get(SIGNATURE_HEADER)
    stamp = call.headers.get(TIMESTAMP_HEADER)
    if signature is None and stamp is None:
        other = next((h for h in (GITHUB_HEADER, GITLAB_HEADER) if h in call.headers), None)
        raise Unauthorized(
            f"signature required: send {TIMESTAMP_HEADER} (Unix seconds) and {SIGNATURE_HEADER}: sha256=<hex>"
            + (
                f" ({other} is another sender's form: save the webhook with signature_scheme "
                f"{'github' if other == GITHUB_HEADER else 'gitlab'} to take it)"
                if other
                else ""
            )
        )
    if stamp is None:
        raise Unauthorized(f"{TIMESTAMP_HEADER} is missing: send the Unix seconds the signature was made at")
    seconds = ascii_int(stamp, MAX_TIMESTAMP_DIGITS)
    if seconds is None:
        raise Unauthorized(
            f"{TIMESTAMP_HEADER} must be Unix seconds, 1 to {MAX_TIMESTAMP_DIGITS} ASCII digits "
            "(no sign, fraction or exponent), e.g. 1767225600"
        )
    if signature is None or not signature.startswith("sha256="):
        raise Unauthorized(
            f'{SIGNATURE_HEADER} must be sha256=<hex HMAC-SHA256 of "<timestamp>." + the body>'
            + (": it is missing" if signature is None else "")
        )
    # Judged in the database's clock (`utcnow`), as the replay records' age: every web process
    # agrees, whatever its own clock says.
    if abs(utcnow().timestamp() - seconds) > SIGNATURE_WINDOW:
        raise Unauthorized(f"timestamp outside the {SIGNATURE_WINDOW} s window: sign the call again")
    # Hex digits in either case: RFC 4648's base16 is upper case (.NET's Convert.ToHexString)
    return signature.removeprefix("sha256=").lower(), seconds


# Said when a call's proof is right for the signing key without the blanks or line breaks its
# stored value begins or ends with: they are part of the key, and no sender can include them.
BLANK_EDGES = (
    "it matches the webhook's signing secret without the blank or line break its stored value "
    "begins or ends with (pasted from a file?), which is part of the key: GitHub's and GitLab's "
    "secret fields, HTTP headers and a shell's $(cat FILE) leave it out, so edit the secret's "
    "value to remove it"
)


@dataclass(frozen=True)
class SigningKey:
    """A key a signed call may be verified with: the signing secret's current value, or its
    previous value while its rotation window lasts (services/secrets.py). `which` is what the
    audit says of it (`current` or `previous`), never the value."""

    which: str
    value: str


def _proof(
    keys: list[SigningKey], given: str, expected_for: Callable[[str], str], what: str
) -> tuple[str, str]:
    """(`expected_for(key)`, the proof a call must carry under a key of `keys` (an HMAC hex
    digest, or the key itself for GitLab), that key's `which`) for the first key whose proof
    `given` is; `Unauthorized` "WHAT does not match" otherwise, saying `BLANK_EDGES` when `given`
    is the proof under a key stripped of surrounding blanks and line breaks (a secret pasted from
    a file with its final line break could verify no call: a header cannot carry it, and GitHub's
    and GitLab's fields drop it). Only a caller who holds the key's text learns that; the proof
    under the stripped key is still refused."""
    for key in keys:
        expected = expected_for(key.value)
        if same_secret(expected, given):
            return expected, key.which
    for key in keys:
        stripped = key.value.strip()
        if stripped != key.value and same_secret(expected_for(stripped), given):
            raise Unauthorized(f"{what} does not match: {BLANK_EDGES}")
    raise Unauthorized(f"{what} does not match")


def _check_signature(keys: list[SigningKey], call: Call, signature: str) -> tuple[str, str]:
    """(the expected HMAC-SHA256 hex digest of the call, `timestamp.body` under a key of `keys`,
    that key's `which`) when `signature` (from `_signed_at`) is it; `Unauthorized` otherwise
    (`_proof`)."""
    signed = call.headers[TIMESTAMP_HEADER].encode() + b"." + call.body
    return _proof(keys, signature, lambda k: hmac.new(k.encode(), signed, "sha256").hexdigest(), "signature")


async def _first_use(
    session: AsyncSession,
    hook_id: int,
    digest: str,
    seconds: int,
    kept: int = 2 * SIGNATURE_WINDOW,
    advice: str = "sign each call with its own timestamp",
) -> None:
    """Record a signed call's signature (`seconds`: when it was signed, Unix seconds);
    `Unauthorized` when this webhook accepted it before (a replay; the message ends with
    `advice`). In the call's transaction: a refused or failed call leaves no row, and of two
    identical calls at once the second waits on the first's key and is refused. Drops this
    webhook's rows older than `kept` seconds (by default those no timestamp check can pass any
    more)."""
    cutoff = utcnow() - timedelta(seconds=kept)
    await session.exec(
        sql_delete(WebhookSignature).where(
            col(WebhookSignature.webhook_id) == hook_id, compared(col(WebhookSignature.signed_at), LT, cutoff)
        )
    )
    session.add(
        WebhookSignature(webhook_id=hook_id, signature=digest, signed_at=datetime.fromtimestamp(seconds, UTC))
    )
    try:
        await session.flush()
    except IntegrityError:
        raise Unauthorized(
            f"signature already used: this signed call was received before (a replay); {advice}"
        ) from None


def _github_signature(call: Call) -> str:
    """The lower-case hex of a `github` call's `X-Hub-Signature-256: sha256=<hex>`; `Unauthorized`
    naming the header when it is missing or not in that form (checked before the key is
    decrypted)."""
    signature = call.headers.get(GITHUB_HEADER)
    if signature is None or not signature.startswith("sha256="):
        raise Unauthorized(
            f"{GITHUB_HEADER} must be sha256=<hex HMAC-SHA256 of the body>"
            + (": it is missing (set the webhook's Secret on GitHub)" if signature is None else "")
        )
    return signature.removeprefix("sha256=").lower()


async def _check_proof(session: AsyncSession, hook: WebhookTrigger, call: Call) -> str:
    """Check a signed webhook's call carries the proof its `signature_scheme` asks for (the
    module's rules) under its signing secret's current value or, while its rotation window
    lasts, its previous one; returns which (`current` or `previous`). `Unauthorized` (401)
    naming what is missing or wrong, `Forbidden` when the key is gone from the vault. A header's
    form is checked before the key is decrypted."""
    assert hook.id is not None
    if hook.signature_scheme == SignatureScheme.gitlab:
        if GITLAB_HEADER not in call.headers:
            raise Unauthorized(f"{GITLAB_HEADER} is missing: set the webhook's Secret token on GitLab")
        keys = await _signing_keys(session, hook, call)
        return _proof(keys, call.headers[GITLAB_HEADER], lambda k: k, GITLAB_HEADER)[1]
    if hook.signature_scheme == SignatureScheme.github:
        signature = _github_signature(call)
        keys = await _signing_keys(session, hook, call)
        expected, which = _proof(
            keys, signature, lambda k: hmac.new(k.encode(), call.body, "sha256").hexdigest(), "signature"
        )
        advice = "a body is accepted once: a redelivery of a delivery OpsCraft accepted is refused"
        await _first_use(session, hook.id, expected, int(utcnow().timestamp()), GITHUB_REPLAY_SECONDS, advice)
        return which
    signature, seconds = _signed_at(call)
    keys = await _signing_keys(session, hook, call)
    expected, which = _check_signature(keys, call, signature)
    await _first_use(session, hook.id, expected, seconds)
    return which


FORM = "application/x-www-form-urlencoded"


def _document(body: bytes, content_type: str = "") -> Any:
    """The call's body as JSON (RFC 8259), read as every JSON body of the API is
    (`security.http.RequestLimitsMiddleware`): by the standard library's parser, every integer
    exact (orjson reads one past 64 bits as a float: 10**30 became 1e+30, so a long ID mapped to
    a text parameter lost its digits, and refuses one past a float's range outright: a valid
    call with a 400-digit integer was "must be JSON"), an object that writes a key twice refused
    naming it (`security.http.unique_keys`; a call sent as `text/plain`, which webhooks take, was
    read as its last value while the same call as `application/json` was a 422), and what no
    database stores or no float reads refused naming the field: a lone surrogate, `NaN`, `1e400`,
    and `1e-400`, which reached the parameter as 0 (`db.text.find_unstorable`,
    `find_unreadable_numbers`).
    The depth and key limits (`_check_shape`) are checked first on orjson's non-recursive reading
    when it has one, so a deep body never reaches the recursive parser; one orjson refuses that
    the standard library's parser finds too deep is refused as too deep.
    A leading UTF-8 byte order mark is dropped, as RFC 8259 section 8.1 lets a parser do (Windows
    PowerShell 5's `Invoke-RestMethod` sends one; it was "must be JSON").
    `Invalid` (field `body`) when it is not JSON. A body sent as a form (`content_type`) that is
    not JSON (`curl -d '{...}'` sends JSON as a form) is GitHub's form (`_form_payload`)."""
    body = body.removeprefix(codecs.BOM_UTF8)
    # What orjson refuses, the parser below reads (a long number) or says why it is not JSON.
    with contextlib.suppress(orjson.JSONDecodeError):
        _check_shape(orjson.loads(body))
    try:
        document = json.loads(body, object_pairs_hook=unique_keys, parse_float=read_float, parse_int=read_int)
    except RepeatedKey as repeated:
        raise Invalid.at(repeated.key[:64], REPEATED_KEY) from None
    except RecursionError:
        raise _too_deep() from None
    except ValueError as error:
        if content_type.split(";", 1)[0].strip().lower() == FORM:
            return _document(_form_payload(body))
        raise Invalid.at("body", f"must be JSON: {not_json_reason(error)}") from None
    _check_shape(document)
    for where, message in chain(find_unstorable(document), find_unreadable_numbers(document)):
        raise Invalid.at(where[:64], message)
    return document


def _form_payload(body: bytes) -> bytes:
    """The JSON of GitHub's form delivery (`payload=<percent-encoded JSON>`, the default Content
    type of a new GitHub webhook; its signature covers the form as sent): the `payload` field's
    value, UTF-8. `Invalid` (field `body`) for any other form (another field, two, none, or not
    ASCII and UTF-8 percent-encoding). It was refused, while GitHub's ping in that form passed:
    the webhook looked healthy on GitHub until its first push."""
    try:
        fields = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=True, errors="strict")
    except ValueError:  # UnicodeDecodeError too
        fields = []
    if len(fields) != 1 or fields[0][0] != "payload":
        raise Invalid.at("body", f"a form ({FORM}) must hold one field, payload=<JSON> (GitHub's form)")
    return fields[0][1].encode()


def _too_deep() -> Invalid:
    """The refusal of a body past `OPSCRAFT_MAX_JSON_DEPTH`."""
    depth = runtime.current().settings.max_json_depth
    return Invalid.at("body", f"nested too deeply: at most {depth} levels (OPSCRAFT_MAX_JSON_DEPTH)")


def _check_shape(document: Any) -> None:
    """`Invalid` (field `body`) past the limits of every JSON request body
    (`OPSCRAFT_MAX_JSON_DEPTH`, `OPSCRAFT_MAX_JSON_KEYS`): the API's middleware checks them for
    a body sent as JSON, and a call sent as `text/plain` (which webhooks take) passed unchecked.
    A body 1,000 levels deep holding a long integer then reached the standard library's
    recursive parser: a RecursionError, a 500."""
    settings = runtime.current().settings
    depth, keys = json_shape(document)
    if depth > settings.max_json_depth:
        raise _too_deep()
    if keys > settings.max_json_keys:
        raise Invalid.at("body", f"too many keys: at most {settings.max_json_keys} (OPSCRAFT_MAX_JSON_KEYS)")


def _values(hook: WebhookTrigger, call: Call) -> dict[str, Any]:
    """The run's parameter values: the webhook's fixed ones, overridden by what its mapping's
    pointers find in the call's JSON body (an empty body counts as `{}`). `Invalid` (field
    `body`) for a body that is not JSON (`_document`) or whose kind no pointer can read in
    (`_check_kind`)."""
    body = call.body
    document: Any = _document(body, call.headers.get("content-type", "")) if body.strip() else {}
    _check_kind(hook.mapping, document)
    values = dict(hook.parameters)
    for name, pointer in hook.mapping.items():
        found = resolve_pointer(document, pointer)
        if found is not _MISSING:
            values[name] = found
    return values


def _json_kind(document: Any) -> str:
    """What a JSON value that is not an object is, as a refusal names it (`a JSON array`)."""
    if document is None:
        return "JSON null"
    if isinstance(document, bool):  # before numbers: a bool is an int
        return "a JSON boolean"
    if isinstance(document, str):
        return "JSON text"
    return "a JSON array" if isinstance(document, list) else "a JSON number"


def _is_index(token: str) -> bool:
    """Whether a JSON pointer's token can name an array item (RFC 6901 section 4: ASCII digits,
    no leading zero)."""
    return token.isascii() and token.isdigit() and (token == "0" or not token.startswith("0"))


def _check_kind(mapping: Mapping[str, str], document: Any) -> None:
    """`Invalid` (field `body`) when `document`, a call's JSON body, is of a kind the mapping's
    pointers cannot read in: a pointer whose first token is a key (`/ref`) needs an object; one
    whose first is an index (`/0/ref`) an object or an array; the whole body (`""`) any value.
    A JSON array, text, number, boolean or null then started a run with the fixed values and
    defaults, as an object without the mapped keys does: the sender never learned that it sent
    the wrong thing. A webhook whose mapping is empty does not read its body: any JSON passes."""
    if isinstance(document, dict):
        return
    for name, pointer in sorted(mapping.items()):
        tokens = check_pointer(pointer)
        if not tokens or (isinstance(document, list) and _is_index(tokens[0])):
            continue
        needed = "a JSON object" if not _is_index(tokens[0]) else "a JSON object or array"
        sent = _json_kind(document)
        raise Invalid.at(
            "body", f"must be {needed}: the webhook maps {name} from {pointer}, and the body is {sent}"
        )


async def _refused_without_token(session: AsyncSession, call: Call, reason: str) -> None:
    """Audit a call refused before its token matched (404 or the address's 429) in the caller
    address's row of the current window (`REFUSED_WINDOW_SECONDS`, aligned to the clock): the
    first such call of the window writes `webhook.call` by `webhook:refused` with `count` 1,
    the next ones add to its `count` and set `last_at` and `reason` (the latest); `webhook_ids`
    lists the webhook ids they named (the first `REFUSED_LISTED_HOOKS`). Calls of one address
    take turns (PostgreSQL: a transaction lock on the address; SQLite: the write turn), so
    none is lost and a window has one row. The caller commits.
    The address is the one the rate limit counts (`ratelimit.address_key`: an IPv6 address's
    /64 network), the row's `client_ip`; `addresses` lists the addresses themselves (the first
    `REFUSED_LISTED_HOOKS`). A row per exact address let one IPv6 caller, who picks any of its
    /64's 2^64 addresses at will, write a row per call again, 429s included."""
    now = utcnow()
    start = now - timedelta(seconds=now.timestamp() % REFUSED_WINDOW_SECONDS)
    group = address_key(call.client_ip) if call.client_ip is not None else None
    address = col(AuditEvent.client_ip) == group if group is not None else col(AuditEvent.client_ip).is_(None)
    same_window = (
        col(AuditEvent.action) == "webhook.call",
        col(AuditEvent.actor_name) == REFUSED_ACTOR,
        address,
        compared(col(AuditEvent.time), GE, start),
    )
    if session.bind is not None and session.bind.dialect.name == "postgresql":
        digest = hashlib.sha256(f"webhook-refused:{group}".encode()).digest()
        key = int.from_bytes(digest[:8], "big", signed=True)
        await session.exec(select(sql_func.pg_advisory_xact_lock(key)))
    else:
        await take_write_turn(session, AuditEvent, *same_window)
    found = await session.exec(select(AuditEvent).where(*same_window).order_by(col(AuditEvent.id)).limit(1))
    row = found.first()
    if row is None:
        audit.record(
            session,
            Actor(None, group),
            "webhook.call",
            "webhook",
            call.webhook_id,
            actor_name=REFUSED_ACTOR,
            accepted=False,
            reason=reason,
            count=1,
            window_seconds=REFUSED_WINDOW_SECONDS,
            webhook_ids=[call.webhook_id],
            addresses=[call.client_ip] if call.client_ip is not None else [],
            last_at=utc_text(now),
        )
        return
    details = dict(row.details)
    row.details = details | {
        "count": int(details.get("count", 1)) + 1,
        "reason": reason,
        "webhook_ids": _listed(details.get("webhook_ids"), call.webhook_id),
        "addresses": _listed(details.get("addresses"), call.client_ip),
        "last_at": utc_text(now),
    }


def _listed(stored: Any, value: Any) -> list[Any]:
    """`stored` (a list of a window's row, or nothing: a row written before the list) with
    `value` added when it is new and the list holds fewer than `REFUSED_LISTED_HOOKS`."""
    listed = list(stored) if isinstance(stored, list) else []
    if value is not None and value not in listed and len(listed) < REFUSED_LISTED_HOOKS:
        listed.append(value)
    return listed


def _refused(session: AsyncSession, call: Call, script_id: int | None, reason: str) -> None:
    """Audit a refused call that carried the webhook's token (one row per call: the webhook's
    own rate limit bounds them)."""
    audit.record(
        session,
        Actor(None, call.client_ip),
        "webhook.call",
        "webhook",
        call.webhook_id,
        actor_name=f"webhook:{call.webhook_id}",
        accepted=False,
        reason=reason,
        script_id=script_id,
    )


async def _signing_keys(session: AsyncSession, hook: WebhookTrigger, call: Call) -> list[SigningKey]:
    """The webhook's signing keys, decrypted from the vault: the secret's current value, then its
    previous value while its rotation window lasts (`secrets.live_previous`; one whose window is
    over is deleted here). The decryption (`secret.use`, by `webhook:<id>`, `with_previous` when
    the previous value was decrypted too) is committed at once, so that the secret's audit log
    keeps it also when the call is refused next (a signature that does not match). `Forbidden`
    when the secret is gone or its current value does not decrypt; a previous value that does
    not decrypt is left out."""
    secret = await session.get(Secret, hook.secret_id) if hook.secret_id is not None else None
    if secret is not None:
        assert secret.id is not None
        previous = await live_previous(session, secret.id)
        try:
            key = reveal_for_use(
                session,
                secret,
                Actor(None, call.client_ip),
                f"webhook:{hook.id}",
                webhook_id=hook.id,
                script_id=hook.script_id,
                **({"with_previous": True} if previous is not None else {}),
            )
        except DecryptError:
            pass
        else:
            keys = [SigningKey("current", key)]
            if previous is not None:
                with contextlib.suppress(DecryptError):
                    value = keyring.reveal_previous(keyring.current_vault(), previous)
                    keys.append(SigningKey("previous", value))
            await session.commit()
            return keys
    raise Forbidden("the webhook's signing secret is missing from the vault: ask its owner")


async def receive(session: AsyncSession, call: Call) -> Execution | None:
    """Start the webhook's script for an inbound call; returns the queued execution, or None
    for GitHub's `ping` (`X-GitHub-Event: ping`, sent when the webhook is added on GitHub: it
    passed every check a call passes, and starts no run; audited as an accepted call).

    Raises 429 (past `OPSCRAFT_RATE_LIMIT_API` calls a minute: per webhook for calls with its
    token, per client address for the others), 404 (unknown webhook or wrong token:
    indistinguishable), 401 (bad
    or missing signature), 403 (the owner may not run it now), 422 (body, parameters, or the
    webhook's Terraform action or workspace the script refuses now: `executions.start_values`), 409
    (script not active, no runner). Every outcome is audited: a call without the webhook's
    token in its address's row of the minute (`_refused_without_token`).
    """
    rt = runtime.current()
    hook = await session.get(WebhookTrigger, call.webhook_id)
    script_id = hook.script_id if hook else None
    limit = rt.settings.rate_limit_api_per_minute
    with_token = False
    try:
        if (
            hook is None
            or not same_secret(hook.token_hash, hash_personal_token(call.token))
            or not hook.enabled
        ):
            # Counted against the caller's address, not the webhook: calls without its token
            # used up its limit, so anyone who knew an id (they are sequential) kept it at 429
            # for its real caller.
            quota = await ratelimit.count(rt.limiter, f"hook:ip:{address_key(call.client_ip)}", limit)
            if quota.exceeded:
                raise RateLimited(
                    "too many calls to unknown webhooks from this address", retry_after=quota.reset
                )
            raise NotFound("no such webhook (or it is disabled)")
        with_token = True
        quota = await ratelimit.count(rt.limiter, f"hook:{hook.id}", limit)
        if quota.exceeded:
            raise RateLimited("rate limit exceeded for this webhook: slow down", retry_after=quota.reset)
        key = await _check_proof(session, hook, call) if hook.secret_id is not None else None
        if call.headers.get(GITHUB_EVENT_HEADER) == "ping":
            hook.last_called_at = utcnow()
            _accepted(session, hook, call, key, ping=True)
            await session.commit()
            return None
        if (stored := stored_shapes.note(hook)) is not None:
            raise Conflict(
                f"the webhook's stored settings cannot be read: {stored}",
                details=unreadable(stored_shapes.problems(hook)),
            )
        values = _values(hook, call)
        try:
            execution = await start_for(
                session,
                hook.owner_id,
                f"webhook:{hook.id}",
                Trigger.webhook,
                hook.script_id,
                values,
                hook.terraform_action,
                hook.terraform_workspace,
                hook.run_options,
            )
        except OwnerRefused as exc:
            raise Forbidden(f"the webhook's owner may not run this script now: {exc}") from None
    except ServiceError as exc:
        await session.rollback()
        if with_token:
            _refused(session, call, script_id, exc.message)
        else:
            await _refused_without_token(session, call, exc.message)
        await session.commit()
        raise
    hook.last_called_at = utcnow()
    _accepted(session, hook, call, key, execution_id=execution.id, parameters=sorted(values))
    await session.commit()
    return execution


def _accepted(
    session: AsyncSession, hook: WebhookTrigger, call: Call, key: str | None, **details: Any
) -> None:
    """Audit an accepted call (`webhook.call`, `accepted` true) with `details` (the run it
    started and its parameter names, or `ping`) and, for a signed call, the `key` that verified
    it (`current`, or `previous` inside the signing secret's rotation window; never a value),
    never the payload."""
    if key is not None:
        details["key"] = key
    audit.record(
        session,
        Actor(None, call.client_ip),
        "webhook.call",
        "webhook",
        hook.id,
        actor_name=f"webhook:{hook.id}",
        accepted=True,
        script_id=hook.script_id,
        **details,
    )


async def previous_key_accepted_until(session: AsyncSession, hook: WebhookTrigger) -> datetime | None:
    """Until when the webhook still accepts calls signed with its signing secret's previous
    value (the secret's rotation window: services/secrets.py); None when it accepts the current
    value only, or is not signed."""
    if hook.secret_id is None:
        return None
    return (await previous_accepted_until(session, [hook.secret_id])).get(hook.secret_id)


async def owner_name(session: AsyncSession, hook: WebhookTrigger) -> str | None:
    """The username of the webhook's owner, None when it has none (deleted)."""
    owner = await session.get(User, hook.owner_id) if hook.owner_id else None
    return owner.username if owner else None
