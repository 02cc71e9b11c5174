"""Notifications: channels and rules (admins), the messages for run events, and their delivery.

- A channel is a generic webhook (its URL sealed by the vault, `config.url` only its masked
  form: `masked_url`; optional vault secret = HMAC signing key), a
  Slack incoming webhook (the vault secret's value is the webhook URL: it is the credential) or
  SMTP email (`config`: host, port, security none|starttls|ssl, from, to, username; the vault
  secret is the password). No credential is stored outside the vault or shown by the API.
- A rule sends the events of one script (or of all, `script_id` None) to a channel. Events:
  `failure` (failed, timed_out, error), `success`, `recovery` (a success whose script's
  previous finished run was a failure; test runs of unsaved content are neither), `approval_pending`.
- `enqueue_for_execution` turns a finished run (or a run awaiting approval) into one delivery
  row per matching channel, idempotently (unique channel + event key), so a run event delivered
  twice produces no second message. `deliver_due` sends due rows: claimed by a conditional
  update (any number of processes), retried with exponential backoff (a 429's `Retry-After`,
  within 5 s and an hour, instead), at most `MAX_ATTEMPTS` times, and failed at once when
  sending again cannot help (`SendError.permanent`: a 3xx or a 4xx other than 408 and 429, an
  address `OPSCRAFT_NOTIFY_NETWORKS` refuses, an SMTP 5xx reply); every attempt is in the
  delivery log. Sending happens outside any run's path, so a
  slow or dead receiver never delays a run.
- Message content: the run's facts and an excerpt of its stored output, which passed the masker
  before it was stored (docs/secrets.md): no secret value can be in it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import Field
from sqlalchemy import func
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft import runtime
from opscraft.db import read_as, stored_shapes
from opscraft.db.engine import Database
from opscraft.db.models import (
    Execution,
    NotificationChannel,
    NotificationDelivery,
    NotificationRule,
    Script,
    Secret,
)
from opscraft.db.models.automation import ChannelKind, DeliveryStatus
from opscraft.db.models.executions import FINAL_STATUSES, ExecutionStatus
from opscraft.db.turns import take_write_turn
from opscraft.db.types import LE, MAX_ID, compared, utc_text, utcnow
from opscraft.db.unreachable import RoundFailures
from opscraft.execution import log_pages
from opscraft.execution.run_events import RunEventMessage
from opscraft.security.vault import DecryptError
from opscraft.services import audit, conflicts, email_addresses, escapes, keyring, names, paging
from opscraft.services.actor import Actor
from opscraft.services.bodies import Body
from opscraft.services.errors import Conflict, Invalid, NotFound, Problems, sent_kind, unreadable
from opscraft.services.invisible import Label
from opscraft.services.notification_senders import (
    MASK_PATH,
    PLAINTEXT_LOGIN,
    SMTP_SECURITY,
    EmailSettings,
    PartlyDelivered,
    SendError,
    host_name_problem,
    host_refusal,
    http_url_problem,
    literal_address,
    masked_url,
    send_email,
    send_slack,
    send_webhook,
    url_host,
)
from opscraft.services.partial import (
    BASE_DESCRIPTION,
    CHANGES,
    RELOAD,
    BaseObject,
    changed_meanwhile,
    over_stored,
    split_base,
    three_way,
    unchanged,
)
from opscraft.services.permissions import Permission, require
from opscraft.services.secrets import reveal_for_use
from opscraft.services.storable import Text

log = logging.getLogger(__name__)

EVENTS = ("failure", "success", "recovery", "approval_pending")
FAILURE_STATUSES = frozenset({ExecutionStatus.failed, ExecutionStatus.timed_out, ExecutionStatus.error})
MAX_ATTEMPTS = 8
NOT_RETRIED = " (permanent: not retried)"  # after a delivery's error that retrying cannot help
FIRST_RETRY_SECONDS = 5.0
MAX_RETRY_SECONDS = 3600.0
LEASE = timedelta(seconds=60)
BATCH = 20  # sends of one round, at once: within notification_senders.SMTP_THREADS
EXCERPT_LINES = 20
EXCERPT_CHARS = 2000
# The characters of the newest chunks `_excerpt` reads at most (a chunk holds up to 128 Ki).
EXCERPT_READ_CHARS = 256 * 1024
_NEWEST_CHUNKS = log_pages.page_statement(newest_first=True)


# --- channels --------------------------------------------------------------------------------


class ChannelIn(Body):
    """A channel as submitted; `config` is checked per kind by `create_channel`/`update_channel`."""

    name: Label = Field(min_length=1, max_length=64)
    kind: ChannelKind
    config: dict[str, Any] = Field(default_factory=dict)
    secret_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    enabled: bool = True


class ChannelBase(Body):
    """What a channel held when an edit started (`ChannelChanges.base`), as `GET` returned it: a
    webhook channel's `config.url` in its masked form (`masked_url`), and its `url_fingerprint`
    (`url_fingerprint`), which stands for the sealed URL itself: one changed meanwhile to another
    of the same host has the same masked form, not the same fingerprint (`_url_kept_meanwhile`)."""

    name: Text = ""
    kind: Text = ""
    config: BaseObject = Field(default_factory=dict)
    secret_id: int | None = None
    enabled: bool = True
    url_fingerprint: Text | None = None


def url_fingerprint(channel: NotificationChannel) -> str | None:
    """An opaque mark of a webhook channel's sealed URL as it is sealed now (16 hex digits of the
    SHA-256 of its nonce and ciphertext), None when none is sealed. It tells nothing of the URL
    (the ciphertext is the vault's; the nonce is random) and changes each time the URL is sealed:
    a URL saved again, even the same, or sealed anew by a key rotation (`keyring`), has another.
    `GET` shows it so that an edit's `base` can stand for the URL, whose masked form hides its
    path and query."""
    if channel.url_ciphertext is None or channel.url_nonce is None:
        return None
    return hashlib.sha256(channel.url_nonce + channel.url_ciphertext).hexdigest()[:16]


def _url_kept_meanwhile(
    channel: NotificationChannel, data: Any, base: Mapping[str, Any], editor: int | None
) -> None:
    """`Conflict` (409 naming `config.url`) when `data` (a `PUT` body, after `three_way`) gives a
    webhook URL other than the stored one (its masked form, sent back, keeps it) while the sealed
    URL is no longer the one `base`'s `url_fingerprint` marks: someone saved another meanwhile,
    perhaps of the same host, which the masked `config` of `base` cannot tell. Nothing when `base`
    has no `url_fingerprint` (the last write wins, as without `base`)."""
    config = data.get("config") if isinstance(data, Mapping) else None
    if "url_fingerprint" not in base or not isinstance(config, Mapping):
        return
    if config.get("url") == channel.config.get("url") or url_fingerprint(channel) == base["url_fingerprint"]:
        return
    message = f"{changed_meanwhile(channel, editor)}: {RELOAD}"  # `editor`: the user editing (id)
    details = [{"field": "config.url", "message": message}]
    raise Conflict(f"config.url of the channel: {message}", details=details)


class ChannelChanges(ChannelIn):
    """`ChannelIn` as a `PUT` body, every field optional (`partial.CHANGES`), and what the fields
    held when the edit started (`base`: `partial.three_way`)."""

    model_config = CHANGES

    base: ChannelBase | None = Field(
        default=None,
        description=f"{BASE_DESCRIPTION} A webhook's `config.url` compares as GET shows it, masked; "
        "`url_fingerprint` (GET's) stands for the sealed URL: a new URL sent while another was "
        "saved meanwhile, even of the same host, is a 409 naming `config.url`.",
        examples=[{"enabled": True}],
    )


REFUSED = "refused: "  # how `_refused_host` begins its message


def _refused_host(host: str | None, field: str) -> None:
    """`Invalid` at `field` when `host` is an address (in any spelling: `literal_address`) in a
    network OPSCRAFT_NOTIFY_NETWORKS does not allow: such a channel could never send, and was
    saved only to fail at its first message. A host name passes: its addresses are checked when
    each message is sent (a DNS answer may change), and so is this address again."""
    refused = host_refusal(host, runtime.current().settings.notify_networks) if host else None
    if refused is not None:
        raise Invalid.at(field, f"{REFUSED}{refused}")


def _http_url(value: Any, field: str) -> str:
    """A webhook URL as given, without the spaces or line break around it (a URL pasted from a
    chat or read from a file brings them; the SMTP host and recipients were trimmed already, the
    URL was refused as "holds a space"); `Invalid` at `field` saying what is wrong."""
    value = value.strip() if isinstance(value, str) else value
    if not isinstance(value, str) or not value:
        raise Invalid.at(field, "required: an http:// or https:// URL")
    _refused_host(url_host(value), field)
    problem = http_url_problem(value)
    if problem:
        raise Invalid.at(field, f"must be an http:// or https:// URL: {problem}")
    if "@" in urlsplit(value).netloc:  # http_url_problem: it parses
        raise Invalid.at(
            field,
            "must not hold a user name or password (user:pass@): its masked form would show them; "
            "put a token in the path or query, or sign the messages with a vault secret",
        )
    return value


def _not_a_masked_form(url: str, kept_url: str | None) -> None:
    """`Invalid` at `config.url` for a URL whose whole path is `/…` (no query): the masked form
    `masked_url` shows of a saved URL, not the URL. Sent back unchanged it keeps the saved URL
    (`_clean_config`); with its scheme, host or port edited, or on a channel that has no saved
    URL (another kind until now), it was saved as typed and every message went to the path
    `/…`: the saved path and query, which hold the receiver's token, were silently dropped."""
    parts = urlsplit(url)
    if unquote(parts.path) != MASK_PATH or parts.query or parts.fragment:
        return
    keep = (
        f"send {kept_url} unchanged to keep the saved URL, or"
        if kept_url is not None
        else "this channel has no saved URL:"
    )
    raise Invalid.at(
        "config.url",
        f"ends in {MASK_PATH}, the masked form of a saved URL (its path and query hidden), not a "
        f"URL: {keep} give the whole URL, path and query included",
    )


def _email(value: Any, field: str) -> str:
    try:
        return email_addresses.checked(str(value))
    except ValueError as exc:
        raise Invalid.at(field, str(exc)) from None


def _recipients(values: list[Any]) -> list[str]:
    """The recipient addresses, normalized, each once (a repeated one was given to the server twice).
    `Invalid` (field `config.to`) naming the first that is no address, and why: "must be an
    email address" left an admin guessing which of 20 was wrong."""
    clean: dict[str, None] = {}
    for value in values:
        try:
            clean[email_addresses.normalized(str(value))] = None
        except email_addresses.EmailNotValidError as exc:
            raise Invalid.at("config.to", f"{str(value)[:100]!r} is not an email address: {exc}") from None
    return list(clean)


def smtp_host_problem(host: str) -> str | None:
    """Why `host` (stripped) is no SMTP server's host name or address alone, in words that never
    repeat it, or None. `user:pw@smtp.example` was saved and shown by every answer (a password
    outside the vault), and `smtp.example:587` or `[fd00::1]` were saved and could only fail
    as "does not resolve" when sending; each was refused as "required" when the name was too
    long or held a space, as though none was given."""
    if "@" in host:
        return "it must not hold a user name or password (user:pass@): they go in username and the secret"
    if host.startswith("[") or host.endswith("]"):
        return "an IPv6 address goes without brackets here (fd00::1)"
    if ":" in host and literal_address(host) is None:
        return "it must be the host alone: the port goes in port"
    problem = host_name_problem(host)
    return f"it {problem}" if problem else None


def shown_config(channel: NotificationChannel) -> dict[str, Any]:
    """`channel.config` as answers and pages show it. An email channel saved before
    `smtp_host_problem` held its rule may hold a login in its host (`ops:pw@smtp.example`): it is
    shown as the host alone (`smtp.example`), never the password. Such a row still lists and
    reads; a change to it is refused (422 naming `config.host`, saying why) until a host alone
    is sent, and sending through it fails at once saying the same (`send_to_channel`)."""
    host = channel.config.get("host")
    if channel.kind != ChannelKind.email or not isinstance(host, str) or "@" not in host:
        return channel.config
    return {**channel.config, "host": host.rpartition("@")[2]}


MAX_SMTP_USERNAME = 255
"""The most characters of an e-mail channel's SMTP user name."""


def _clean_email_config(config: dict[str, Any], has_secret: bool, problems: Problems) -> dict[str, Any]:
    host = config.get("host")
    host = host.strip() if isinstance(host, str) else ""
    with problems.check():
        if not host:
            raise Invalid.at("config.host", "required: the SMTP server's host name")
        _refused_host(host, "config.host")  # first: `[::1]` is refused as loopback
        if problem := smtp_host_problem(host):
            raise Invalid.at("config.host", f"must be the SMTP server's host name or address: {problem}")
    security = config.get("security", "starttls")
    if security not in SMTP_SECURITY:
        problems.add("config.security", f"must be one of: {', '.join(SMTP_SECURITY)}")
        security = "starttls"
    port = config.get("port", {"none": 25, "starttls": 587, "ssl": 465}[security])
    if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
        problems.add("config.port", "must be a port number (1-65535)")
    recipients = config.get("to")
    if isinstance(recipients, str):
        recipients = [r.strip() for r in recipients.split(",") if r.strip()]
    if not isinstance(recipients, list) or not recipients or len(recipients) > 50:
        given = f"not {len(recipients)}" if isinstance(recipients, list) else f"it is {sent_kind(recipients)}"
        problems.add("config.to", f"must list one to 50 recipient addresses ({given})")
        recipients = []
    username = config.get("username") or None
    if username is not None and not isinstance(username, str):
        problems.add("config.username", f"must be text (it is {sent_kind(username)})")
    elif username is not None and len(username) > MAX_SMTP_USERNAME:
        problems.add(
            "config.username", f"must be at most {MAX_SMTP_USERNAME} characters, not {len(username)}"
        )
    if username and not has_secret:
        problems.add("secret_id", "a login needs the vault secret holding the SMTP password")
    if username and security == "none" and not runtime.current().settings.smtp_plaintext_login:
        problems.add("config.security", PLAINTEXT_LOGIN)
    clean: dict[str, Any] = {"host": host, "port": port, "security": security, "username": username}
    with problems.check():
        clean["from"] = _email(config.get("from"), "config.from")
    with problems.check():
        clean["to"] = _recipients(recipients)
    return clean


@dataclass(frozen=True)
class CheckedChannel:
    """A channel body checked: its clean `config` (a webhook's URL masked) and `url`, the new
    webhook URL to seal (None: none given, or the stored one kept)."""

    body: ChannelIn
    config: dict[str, Any]
    url: str | None = None


def _clean_config(
    kind: ChannelKind, config: dict[str, Any], has_secret: bool, problems: Problems, kept_url: str | None
) -> tuple[dict[str, Any], str | None]:
    """The stored config for `kind` (known keys only, each checked) and a webhook's new URL
    (None when `config.url` is `kept_url`, the masked form of the URL sealed already: the
    stored one is kept); every problem (naming `config.<key>`, or `secret_id` when the kind
    needs a vault secret) goes to `problems`."""
    clean: dict[str, Any] = {}
    url: str | None = None
    if kind == ChannelKind.webhook:
        unknown = set(config) - {"url"}
        if kept_url is not None and config.get("url") == kept_url:
            clean = {"url": kept_url}
        else:
            with problems.check():
                url = _http_url(config.get("url"), "config.url")
                _not_a_masked_form(url, kept_url)
                clean = {"url": masked_url(url)}
    elif kind == ChannelKind.slack:
        unknown = set(config)
        if not has_secret:
            problems.add(
                "secret_id", "a Slack channel needs the vault secret holding its incoming webhook URL"
            )
    else:
        unknown = set(config) - {"host", "port", "security", "from", "to", "username"}
        clean = _clean_email_config(config, has_secret, problems)
    if unknown:
        problems.add("config", f"unknown keys for {kind.value} channels: {', '.join(sorted(unknown))}")
    return clean, url


def stored_config(channel: NotificationChannel) -> dict[str, Any]:
    """The channel's stored config as today's checks (`_clean_config`, as a save runs them) read
    it: recipients given as text as a list, every key there. A `SendError` (permanent) naming
    each problem (`config.host: ...; config.port: ...`) and saying to edit the channel when they
    refuse it: a row saved before a rule (a login in an SMTP host, a port as text, a key missing)
    was sent as stored, a 500 at every test message and delivery (a missing key, recipients as
    text read letter by letter) or only "does not resolve". An address `OPSCRAFT_NOTIFY_NETWORKS`
    refuses is left to the send, which says so naming the setting (it may have changed since the
    save: no edit is needed)."""
    if (stored := stored_shapes.note(channel)) is not None:
        raise SendError(
            f"the channel's stored settings cannot be read ({stored})",
            permanent=True,
            details=unreadable(stored_shapes.problems(channel)),
        )
    problems = Problems()
    kept = channel.config.get("url") if channel.url_ciphertext is not None else None
    clean, _ = _clean_config(
        channel.kind, dict(channel.config), channel.secret_id is not None, problems, kept
    )
    refused = [d for d in problems.details if not d["message"].startswith(REFUSED)]
    if refused:
        found = "; ".join(f"{d['field']}: {d['message']}" for d in refused)
        raise SendError(
            f"the channel's settings are refused today ({found}): edit the channel",
            permanent=True,
            details=refused,
        )
    return clean


def _checked_channel(data: ChannelIn | Mapping[str, Any], kept_url: str | None = None) -> CheckedChannel:
    """The body, its clean config and new webhook URL (`_clean_config`; `kept_url`: the masked
    URL of the one sealed already); one `Invalid` (422) naming every problem, the config's
    checked even when the body refuses another field (the name, say) as long as its kind and
    config were accepted."""
    problems = Problems()
    body, sent = problems.body(ChannelIn, data)
    refused = problems.fields()
    config: dict[str, Any] = {}
    url: str | None = None
    if "kind" in sent and "config" not in refused and isinstance(sent.get("config", {}), dict):
        has_secret = "secret_id" in refused or sent.get("secret_id") is not None  # a bad id is named
        kind = ChannelKind(sent["kind"])
        config, url = _clean_config(kind, sent.get("config", {}), has_secret, problems, kept_url)
    problems.raise_if_any()
    assert body is not None  # else raised above
    return CheckedChannel(body, config, url)


async def _keep_url(session: AsyncSession, channel: NotificationChannel, url: str | None) -> None:
    """Seal a webhook channel's new `url` (after `require_current`: never under a rotated key);
    drop the sealed one of a channel that is no longer a webhook. The flushed row has its id."""
    if channel.kind != ChannelKind.webhook:
        channel.url_ciphertext = channel.url_salt = channel.url_nonce = None
        channel.url_key_version = None
    elif url is not None:
        vault = keyring.current_vault()
        # Not flushed here: the caller's `conflicts` flush or commit says a `secret_id` deleted
        # meanwhile as the 409 it is (an autoflush by this query raised it as a 500)
        with session.no_autoflush:
            await keyring.require_current(session, vault)
        keyring.seal_channel_url(vault, channel, url)


async def _check_secret(session: AsyncSession, secret_id: int | None) -> None:
    if secret_id is not None and await session.get(Secret, secret_id) is None:
        raise Invalid.at("secret_id", f"no vault secret with id {secret_id}")


async def _name_free(session: AsyncSession, name: str, own_id: int | None = None) -> None:
    await names.check_free(session, NotificationChannel, name, [], names.CHANNEL_TAKEN, except_id=own_id)


async def list_channels(
    session: AsyncSession, actor: Actor, *, skip: int = 0, limit: int = paging.DEFAULT_PAGE
) -> tuple[list[NotificationChannel], int]:
    """A page (`paging.page`) of the channels by name (ignoring case and width; ties by id), and
    how many there are. Admins only (manage_settings)."""
    require(actor.user, Permission.manage_settings)
    by_name = (col(NotificationChannel.name_key), col(NotificationChannel.id))
    return await paging.page(session, select(NotificationChannel).order_by(*by_name), skip, limit)


async def get_channel(session: AsyncSession, actor: Actor, channel_id: int) -> NotificationChannel:
    """A notification channel by id; needs manage_settings. Raises NotFound (404) for an unknown id."""
    require(actor.user, Permission.manage_settings)
    channel = await session.get(NotificationChannel, channel_id)
    if channel is None:
        raise NotFound.gone("notification channel")
    return channel


async def create_channel(
    session: AsyncSession, actor: Actor, data: ChannelIn | Mapping[str, Any]
) -> NotificationChannel:
    """A new channel (admins). 422 naming every bad field and config key, 409 for a taken name."""
    user = require(actor.user, Permission.manage_settings)
    checked = _checked_channel(data)
    data = checked.body
    name = data.name
    await _check_secret(session, data.secret_id)
    await _name_free(session, name)
    channel = NotificationChannel(
        name=name,
        kind=data.kind,
        config=checked.config,
        secret_id=data.secret_id,
        enabled=data.enabled,
        created_by=user.id,
    )
    session.add(channel)
    await conflicts.flush(session)
    await _keep_url(session, channel, checked.url)
    audit.record(
        session,
        actor,
        "notification_channel.create",
        "notification_channel",
        channel.id,
        name=name,
        kind=data.kind.value,
    )
    await conflicts.commit(session)
    return channel


async def update_channel(
    session: AsyncSession,
    actor: Actor,
    channel_id: int,
    data: ChannelIn | Mapping[str, Any],
    base: Mapping[str, Any] | None = None,
) -> NotificationChannel:
    """Change a channel's settings (admins; a field `data` leaves out keeps its stored value:
    `partial.over_stored`); same checks as `create_channel`. A save that changes nothing
    (`partial.unchanged`) writes nothing and is not audited; a URL sent again is a change (it is
    sealed anew). `base` (field -> value when the edit started; else the body's:
    `partial.split_base`): a field changed meanwhile is a `Conflict` (409 naming it, nothing
    written: `partial.three_way`), and so is a new webhook URL when the sealed one changed since
    `base`'s `url_fingerprint` (`_url_kept_meanwhile`)."""
    channel = await get_channel(session, actor, channel_id)
    data, base = split_base(ChannelChanges, data, base)
    if base is not None:
        if base.get("config") == shown_config(channel):  # as GET showed it: a login in its host hidden
            base = {**base, "config": channel.config}
        data = three_way(channel, data, base, "the channel", actor.user.id)
        _url_kept_meanwhile(channel, data, base, actor.user.id)
    # The masked URL of the sealed one, sent back unchanged (a form, a PUT of what GET gave): kept
    kept = channel.config.get("url") if channel.url_ciphertext is not None else None
    checked = _checked_channel(over_stored(ChannelIn, data, channel), kept)
    data = checked.body
    name = data.name
    await _check_secret(session, data.secret_id)
    await _name_free(session, name, channel.id)
    channel.name, channel.kind, channel.config = name, data.kind, checked.config
    channel.secret_id, channel.enabled = data.secret_id, data.enabled
    await _keep_url(session, channel, checked.url)
    if unchanged(channel):
        await session.commit()
        return channel
    channel.updated_at = utcnow()
    audit.record(
        session,
        actor,
        "notification_channel.update",
        "notification_channel",
        channel.id,
        name=name,
        kind=data.kind.value,
        url_changed=checked.url is not None,
    )
    await conflicts.commit(session)
    return channel


async def delete_channel(session: AsyncSession, actor: Actor, channel_id: int) -> None:
    """Delete a channel with its rules and delivery log (admins)."""
    channel = await get_channel(session, actor, channel_id)
    await session.delete(channel)
    audit.record(
        session, actor, "notification_channel.delete", "notification_channel", channel_id, name=channel.name
    )
    await session.commit()


# --- rules -----------------------------------------------------------------------------------


class RuleIn(Body):
    """A rule as submitted: which events (`EVENTS`) of which script (None: every script) go to
    which channel, and whether it sends at all (`enabled`)."""

    channel_id: int = Field(ge=1, le=MAX_ID)
    script_id: int | None = Field(default=None, ge=1, le=MAX_ID, description="None: every script")
    events: list[str] = Field(
        min_length=1, json_schema_extra={"items": {"type": "string", "enum": list(EVENTS)}}
    )
    enabled: bool = True


class RuleBase(Body):
    """What a rule held when an edit started (`RuleChanges.base`), as `GET` returned it."""

    channel_id: int = 0
    script_id: int | None = None
    events: list[Text] = Field(default_factory=list)
    enabled: bool = True


class RuleChanges(RuleIn):
    """`RuleIn` as a `PUT` body, every field optional (`partial.CHANGES`), and what the fields
    held when the edit started (`base`: `partial.three_way`)."""

    model_config = CHANGES

    base: RuleBase | None = Field(default=None, description=BASE_DESCRIPTION, examples=[{"enabled": True}])


async def list_rules(
    session: AsyncSession,
    actor: Actor,
    *,
    script_id: int | None = None,
    skip: int = 0,
    limit: int = paging.DEFAULT_PAGE,
) -> tuple[list[NotificationRule], int]:
    """A page (`paging.page`) of the rules (or those of `script_id`), oldest first (by id), and how
    many there are. Admins only (manage_settings)."""
    require(actor.user, Permission.manage_settings)
    query = select(NotificationRule)
    if script_id is not None:
        query = query.where(col(NotificationRule.script_id) == script_id)
    return await paging.page(session, query.order_by(col(NotificationRule.id)), skip, limit)


async def _checked_rule(
    session: AsyncSession, data: RuleIn, own: NotificationRule | None = None
) -> list[str]:
    """The rule's events, each once in `EVENTS` order, after the checks of a rule saved by
    `create_rule` or `update_rule` (`own`: the rule being changed): 422 naming `events`,
    `channel_id` or `script_id` when wrong, 409 when another rule sends the same (`_refuse_a_second`).
    A changed rule that keeps its script is not refused for that script having been deleted since:
    it could not be switched off."""
    bad = [e for e in data.events if e not in EVENTS]
    if bad:
        raise Invalid.at("events", f"each must be one of: {', '.join(EVENTS)}")
    if await _channel_turn(session, data.channel_id) is None:
        raise Invalid.at("channel_id", f"no notification channel with id {data.channel_id}")
    if data.script_id is not None and (own is None or data.script_id != own.script_id):
        script = await session.get(Script, data.script_id)
        if script is None or script.deleted_at is not None:
            raise Invalid.at("script_id", f"no script with id {data.script_id}")
    events = sorted(set(data.events), key=EVENTS.index)
    await _refuse_a_second(session, data.channel_id, data.script_id, events, own.id if own else None)
    return events


def _rule_facts(rule: NotificationRule) -> dict[str, Any]:
    """What an audit event of a rule records of it."""
    return {
        "channel_id": rule.channel_id,
        "script_id": rule.script_id,
        "events": rule.events,
        "enabled": rule.enabled,
    }


async def create_rule(session: AsyncSession, actor: Actor, data: RuleIn) -> NotificationRule:
    """A new rule (admins): 422 naming `events`, `channel_id` or `script_id` when wrong, 409
    when a rule of the channel already sends these events of the same scripts."""
    user = require(actor.user, Permission.manage_settings)
    events = await _checked_rule(session, data)
    rule = NotificationRule(
        channel_id=data.channel_id,
        script_id=data.script_id,
        events=events,
        enabled=data.enabled,
        created_by=user.id,
    )
    session.add(rule)
    await session.flush()
    audit.record(
        session, actor, "notification_rule.create", "notification_rule", rule.id, **_rule_facts(rule)
    )
    await session.commit()
    return rule


async def get_rule(session: AsyncSession, actor: Actor, rule_id: int) -> NotificationRule:
    """A rule (admins); 404 when no rule has this id."""
    require(actor.user, Permission.manage_settings)
    rule = await session.get(NotificationRule, rule_id) if 1 <= rule_id <= MAX_ID else None
    if rule is None:
        raise NotFound.gone("notification rule")
    return rule


async def update_rule(
    session: AsyncSession,
    actor: Actor,
    rule_id: int,
    data: RuleIn | Mapping[str, Any],
    base: Mapping[str, Any] | None = None,
) -> NotificationRule:
    """Change a rule (admins): switch it off and on (`enabled`), or change its channel, script or
    events; a field `data` leaves out keeps its stored value (`partial.over_stored`). The result
    is checked as `create_rule` checks a new rule (422 naming the field, 409 when another rule
    already sends the same), 404 when unknown. A save that changes nothing (`partial.unchanged`)
    writes nothing and is not audited; a change is audited as `notification_rule.update`.
    `base` as in `update_channel`."""
    rule = await get_rule(session, actor, rule_id)
    data, base = split_base(RuleChanges, data, base)
    if base is not None:
        data = three_way(rule, data, base, "the rule", actor.user.id)
    problems = Problems()
    body, _sent = problems.body(RuleIn, over_stored(RuleIn, data, rule))
    problems.raise_if_any()
    assert body is not None  # else raised above
    events = await _checked_rule(session, body, rule)
    rule.channel_id, rule.script_id, rule.events, rule.enabled = (
        body.channel_id,
        body.script_id,
        events,
        body.enabled,
    )
    if unchanged(rule):
        await session.commit()
        return rule
    audit.record(
        session, actor, "notification_rule.update", "notification_rule", rule.id, **_rule_facts(rule)
    )
    await session.commit()
    return rule


async def _channel_turn(session: AsyncSession, channel_id: int) -> NotificationChannel | None:
    """The channel (None when there is none), locked until the transaction ends, so that rules
    of one channel are added one at a time and `_refuse_a_second` sees those saved meanwhile
    (`db.turns`: the write turn on SQLite, `FOR UPDATE` on PostgreSQL). Without it, a rule saved
    several times at once (a double-click, a retrying client) was stored each time."""
    ident = col(NotificationChannel.id) == channel_id
    await take_write_turn(session, NotificationChannel, ident)
    locked = select(NotificationChannel).where(ident).with_for_update()
    return (await session.exec(locked.execution_options(populate_existing=True))).first()


async def _refuse_a_second(
    session: AsyncSession,
    channel_id: int,
    script_id: int | None,
    events: list[str],
    own_id: int | None = None,
) -> None:
    """Raise Conflict when a rule of `channel_id` for `script_id` (None: every script), other
    than `own_id`, already names exactly `events`: a second one sent nothing more (deliveries are
    unique per channel and run event) but was listed twice, and deleting one of them seemed to
    change nothing."""
    script = col(NotificationRule.script_id)
    same_script = script.is_(None) if script_id is None else script == script_id
    rules = await session.exec(
        select(NotificationRule).where(NotificationRule.channel_id == channel_id, same_script)
    )
    for rule in rules.all():
        if rule.id != own_id and set(rule.events) == set(events):  # a list of texts (its stored shape)
            disabled = " (disabled: enable it instead)" if not rule.enabled else ""
            message = (
                f"notification rule {rule.id} already sends these events of "
                f"{'every script' if script_id is None else 'this script'} to this channel{disabled}"
            )
            raise Conflict(message, details=[{"field": "events", "message": message}])


async def delete_rule(session: AsyncSession, actor: Actor, rule_id: int) -> None:
    """Delete a rule (admins); 404 when unknown."""
    rule = await get_rule(session, actor, rule_id)
    await session.delete(rule)
    audit.record(session, actor, "notification_rule.delete", "notification_rule", rule_id)
    await session.commit()


# --- messages --------------------------------------------------------------------------------


TITLES = {
    "failure": "failed",
    "success": "succeeded",
    "recovery": "recovered",
    "approval_pending": "is waiting for approval",
}
# An event's title once the run's status has changed since (`_at_delivery`): a run no longer waits.
TITLES_SINCE = {**TITLES, "approval_pending": "was waiting for approval"}


def execution_url(execution_id: int) -> str | None:
    """The link to a run's page under OPSCRAFT_PUBLIC_URL, or None when no public URL is set."""
    base = runtime.current().settings.public_url
    return f"{base}/executions/{execution_id}" if base else None


async def _excerpt(session: AsyncSession, execution_id: int) -> str:
    """The last lines of the stored (already masked) output, as plain text: no escape sequences
    (Ansible's runs are always in colour: a Slack message or an email showed `[0;31mfatal`), each
    line as a terminal shows it after its carriage returns (a progress bar's last state). Read
    from the newest chunks: at most EXCERPT_LINES of them and EXCERPT_READ_CHARS characters (at
    least one chunk; 20 chunks were up to 2.5 M characters)."""
    params = log_pages.values(execution_id, 0, EXCERPT_LINES, EXCERPT_READ_CHARS)
    rows = await session.exec(_NEWEST_CHUNKS, params=params)  # type: ignore[call-overload]
    chunks = log_pages.page_of(list(rows.all())).chunks
    plain = escapes.PlainText()  # a sequence cut between two chunks of a stream: completed
    text = "".join(plain.add(chunk.stream, chunk.content) for chunk in reversed(chunks)) + plain.rest()
    lines = escapes.screen_lines(text)[-EXCERPT_LINES:]
    return "\n".join(lines)[-EXCERPT_CHARS:]


async def build_message(
    session: AsyncSession, event: str, execution: Execution, status_at_event: str | None = None
) -> dict[str, Any]:
    """The JSON facts of a run event, with a one-line `text` and a `subject` for people.
    `status_at_event`: the run's status when the event happened, when it has changed since (a
    run held for approval and cancelled before the message went out): the subject says both
    ("was waiting for approval, now cancelled") and the JSON keeps it (`status_at_event`)."""
    assert execution.id is not None
    duration = (
        round((execution.finished_at - execution.started_at).total_seconds(), 3)
        if execution.finished_at and execution.started_at
        else None
    )
    url = execution_url(execution.id)
    # A test run of unsaved content is marked as everywhere else (README: "marked Test run").
    what = f"test run of {execution.script_name}" if execution.draft else execution.script_name
    if status_at_event is None:
        subject = f"[OpsCraft] {what} {TITLES[event]} (run #{execution.id})"
    else:
        now = str(execution.status).replace("_", " ")
        subject = f"[OpsCraft] {what} {TITLES_SINCE[event]}, now {now} (run #{execution.id})"
    text = f"{subject}: status {execution.status}"
    if execution.exit_code is not None:
        text += f", exit code {execution.exit_code}"
    if execution.triggered_by_name:
        text += f", started by {execution.triggered_by_name}"
    if url:
        text += f"\n{url}"
    excerpt = await _excerpt(session, execution.id) if execution.status in FINAL_STATUSES else ""
    since = {} if status_at_event is None else {"status_at_event": status_at_event}
    return {
        **since,
        "event": event,
        "subject": subject,
        "text": text,
        "execution": {
            "id": execution.id,
            "script_id": execution.script_id,
            "script_name": execution.script_name,
            "script_version": execution.script_version,
            "test_run": execution.draft,
            "status": str(execution.status),
            "exit_code": execution.exit_code,
            "error_message": execution.error_message,
            "triggered_by": execution.triggered_by_name,
            "queued_at": utc_text(execution.queued_at),
            "started_at": utc_text(execution.started_at),
            "finished_at": utc_text(execution.finished_at),
            "duration_seconds": duration,
            "url": url,
        },
        "output_excerpt": excerpt,
    }


# --- run events -> deliveries ----------------------------------------------------------------


async def events_for(session: AsyncSession, execution: Execution) -> list[str]:
    """The notification events a run's current state stands for. `recovery` compares saved
    content only: a test run (unsaved editor content) recovers nothing, and is not the previous
    run a real run's success recovers from."""
    status = ExecutionStatus(execution.status)
    if status in FAILURE_STATUSES:
        return ["failure"]
    if status == ExecutionStatus.success and execution.draft:
        return ["success"]
    if status == ExecutionStatus.success:
        previous = (
            await session.exec(
                select(Execution.status)
                .where(
                    col(Execution.script_id) == execution.script_id,
                    col(Execution.id) != execution.id,
                    col(Execution.draft).is_(False),
                    col(Execution.status).in_([*FAILURE_STATUSES, ExecutionStatus.success]),
                    col(Execution.finished_at) <= (execution.finished_at or utcnow()),
                )
                .order_by(col(Execution.finished_at).desc(), col(Execution.id).desc())
                .limit(1)
            )
        ).first()
        return ["success", "recovery"] if previous in FAILURE_STATUSES else ["success"]
    if status.value == "awaiting_approval":
        return ["approval_pending"]
    return []


async def enqueue_for_execution(session: AsyncSession, execution_id: int) -> int:
    """Write the delivery rows for a run's current state (idempotent) and commit; returns how
    many are new. A repeated call adds nothing."""
    added = await _enqueue(session, execution_id)
    await session.commit()
    if added:
        wake()
    return added


SUBSCRIBER = "notifications"


async def on_run_events(session: AsyncSession, events: list[RunEventMessage]) -> None:
    """Run-event subscriber (`lifecycle.start` registers it): the deliveries of each finished run,
    written inside the dispatcher's transaction (so exactly once per event); the sender loop
    sends them afterwards, outside the run's path. The enabled rules are read once per batch:
    with none (the common case), a batch costs that one query."""
    rules = await _enabled_rules(session)
    added = 0
    if rules:
        for event in events:
            added += await _enqueue(session, event.execution_id, rules)
    if added:  # after the dispatcher's commit, not before
        asyncio.get_running_loop().call_later(0.2, wake)


# Built once: the run-event delivery runs it for every batch of finished runs (issue 15).
_ENABLED_RULES = (
    select(NotificationRule)
    .join(NotificationChannel, col(NotificationChannel.id) == col(NotificationRule.channel_id))
    .where(col(NotificationRule.enabled), col(NotificationChannel.enabled))
)


async def _enabled_rules(session: AsyncSession) -> list[NotificationRule]:
    """Every enabled rule whose channel is enabled too."""
    return list((await session.exec(_ENABLED_RULES)).all())


async def _enqueue(
    session: AsyncSession, execution_id: int, enabled: list[NotificationRule] | None = None
) -> int:
    """Write the delivery rows of run `execution_id`'s current state for the rules that want
    them (`enabled`: the enabled rules, read here when not given); returns how many are new."""
    if enabled is None:
        enabled = await _enabled_rules(session)
    execution = await session.get(Execution, execution_id) if enabled else None
    if execution is None:
        return 0
    rules = [rule for rule in enabled if rule.script_id in (None, execution.script_id)]
    events = await events_for(session, execution) if rules else []
    if not events:
        return 0
    wanted: dict[tuple[int, str], None] = {}
    for rule in rules:
        for event in events:
            if event in rule.events:
                wanted[(rule.channel_id, event)] = None
    # A recovery is a success said more precisely: a channel that wants both gets one message.
    for channel_id, event in list(wanted):
        if event == "success" and (channel_id, "recovery") in wanted:
            del wanted[(channel_id, event)]
    added = 0
    dialect = session.bind.dialect.name if session.bind else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    for channel_id, event in wanted:
        message = await build_message(session, event, execution)
        now = utcnow()
        statement = (
            insert(NotificationDelivery)
            .values(
                channel_id=channel_id,
                event_key=f"execution:{execution_id}:{event}",
                event=event,
                execution_id=execution_id,
                payload=message,
                status=DeliveryStatus.pending,
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
            .on_conflict_do_nothing()
        )
        result = await session.exec(statement)  # type: ignore[call-overload]
        added += result.rowcount or 0
    return added


# --- delivery --------------------------------------------------------------------------------


def next_attempt(delivery: NotificationDelivery) -> datetime | None:
    """When a delivery is tried next: its `next_attempt_at` while it is `pending` (or `sending`:
    a claim's end, when another sender takes it over), None once it is `delivered` or `failed`
    (the column then still holds the last claim's end, which no sender acts on)."""
    if delivery.status in (DeliveryStatus.pending, DeliveryStatus.sending):
        return delivery.next_attempt_at
    return None


def retry_delay(attempts: int, retry_after: float | None = None) -> timedelta:
    """The wait before the next try after `attempts` failed ones: the receiver's `retry_after`
    (seconds, a 429's `Retry-After`) within `FIRST_RETRY_SECONDS` and `MAX_RETRY_SECONDS` when it
    gave one, else exponential backoff: 5 s, 10 s, 20 s ... at most an hour."""
    if retry_after is not None:
        return timedelta(seconds=min(max(retry_after, FIRST_RETRY_SECONDS), MAX_RETRY_SECONDS))
    return timedelta(seconds=min(FIRST_RETRY_SECONDS * 2 ** max(attempts - 1, 0), MAX_RETRY_SECONDS))


async def send_to_channel(
    session: AsyncSession, channel: NotificationChannel, message: dict[str, Any], actor: Actor | None = None
) -> None:
    """Send one message through one channel, as `actor` (None: the notification sender). Its
    vault secret's decryption is audited (`secrets.reveal_for_use`); the caller commits. Raises
    SendError."""
    secret = await session.get(Secret, channel.secret_id) if channel.secret_id else None
    user = actor if actor is not None else Actor(None)

    def reveal() -> str:
        if secret is None:
            raise SendError("the channel's vault secret was deleted: choose another secret")
        name = user.user.username if user.user else "notifications"
        try:
            return reveal_for_use(session, secret, user, name, channel_id=channel.id)
        except DecryptError:
            raise SendError("the channel's vault secret does not decrypt") from None

    c = stored_config(channel)  # a row saved before a rule: refused naming what to edit
    config = runtime.current().settings
    networks = config.notify_networks
    if channel.kind == ChannelKind.webhook:
        key = reveal() if channel.secret_id else None
        await send_webhook(_webhook_url(session, channel, user), message, networks, key)
    elif channel.kind == ChannelKind.slack:
        url = reveal().strip()
        problem = http_url_problem(url)  # the same rule as a webhook channel's saved URL
        if problem:
            raise SendError(
                f"the channel's vault secret is not a valid http:// or https:// webhook URL: {problem}",
                permanent=True,
            )
        await send_slack(url, message["text"] + _excerpt_block(message), networks)
    else:
        password = reveal() if c.get("username") else None
        settings = EmailSettings(
            host=c["host"],
            port=int(c["port"]),
            security=c["security"],
            sender=c["from"],
            recipients=list(c["to"]),
            username=c.get("username"),
            password=password,
            networks=networks,
            plaintext_login=config.smtp_plaintext_login,
        )
        await send_email(settings, message["subject"], message["text"] + _excerpt_block(message, fence=False))


def _webhook_url(session: AsyncSession, channel: NotificationChannel, actor: Actor) -> str:
    """A webhook channel's URL, decrypted for a send: audited as `notification_channel.url_use`
    (by `actor`, "notifications" for the sender loop), as a vault secret's use is; the caller
    commits. A row from before migration 0031 not sealed yet (`seal_plain_urls` does it at
    start) has it in `config.url`. A permanent `SendError` when it does not decrypt."""
    if channel.url_ciphertext is None:
        return str(channel.config["url"])
    try:
        url = keyring.reveal_channel_url(keyring.current_vault(), channel)
    except DecryptError:
        raise SendError(
            "the channel's URL does not decrypt: save the channel's URL again", permanent=True
        ) from None
    name = actor.user.username if actor.user else "notifications"
    audit.record(
        session, actor, "notification_channel.url_use", "notification_channel", channel.id, actor_name=name
    )
    return url


async def seal_plain_urls(db: Database) -> int:
    """Seal the URL of every webhook channel that still has it in plain text in `config.url`
    (rows from before migration 0031) and keep only its masked form there; each audited as
    `notification_channel.url_sealed`. Run at start once the vault is open (`lifecycle.start`):
    a migration has no master key. Returns how many."""
    async with db.session() as session:
        plain = select(NotificationChannel).where(
            col(NotificationChannel.kind) == ChannelKind.webhook,
            col(NotificationChannel.url_ciphertext).is_(None),
        )
        rows = list((await session.exec(plain)).all())
        if not rows:
            return 0
        vault = keyring.current_vault()
        await keyring.require_current(session, vault)
        for channel in rows:
            url = str(channel.config.get("url", ""))
            keyring.seal_channel_url(vault, channel, url)
            channel.config = {**channel.config, "url": masked_url(url)}
            audit.record(
                session,
                Actor(None),
                "notification_channel.url_sealed",
                "notification_channel",
                channel.id,
                actor_name="system",
            )
        await session.commit()
        return len(rows)


def _excerpt_block(message: dict[str, Any], *, fence: bool = True) -> str:
    excerpt = message.get("output_excerpt") or ""
    if not excerpt:
        return ""
    return f"\n```\n{excerpt}\n```" if fence else f"\n\nLast output:\n{excerpt}\n"


async def _claim(session: AsyncSession, now: datetime) -> list[int]:
    due = await session.exec(
        select(NotificationDelivery.id, NotificationDelivery.status, NotificationDelivery.next_attempt_at)
        .where(
            col(NotificationDelivery.status).in_([DeliveryStatus.pending, DeliveryStatus.sending]),
            compared(col(NotificationDelivery.next_attempt_at), LE, now),
        )
        .order_by(col(NotificationDelivery.next_attempt_at))
        .limit(BATCH)
    )
    claimed = []
    for delivery_id, status, due_at in due.all():
        result = await session.exec(
            update(NotificationDelivery)
            .where(
                col(NotificationDelivery.id) == delivery_id,
                col(NotificationDelivery.status) == status,
                col(NotificationDelivery.next_attempt_at) == due_at,
            )
            .values(status=DeliveryStatus.sending, next_attempt_at=now + LEASE)
        )
        if result.rowcount == 1:
            claimed.append(int(delivery_id))
    await session.commit()
    return claimed


async def _at_delivery(session: AsyncSession, delivery: NotificationDelivery) -> dict[str, Any]:
    """`delivery`'s message as its run stands now: built anew (`build_message`'s
    `status_at_event`) when the run's status has changed since the event was queued (a run held
    for approval, then cancelled, approved or rejected before the sender's round: it was
    announced as still waiting), else as queued (a run deleted meanwhile, a channel's test)."""
    queued = delivery.payload
    facts = queued.get("execution")
    then = facts.get("status") if isinstance(facts, dict) else None
    execution = await session.get(Execution, delivery.execution_id) if delivery.execution_id else None
    if execution is None or then is None or str(execution.status) == then or delivery.event not in TITLES:
        return queued
    return await build_message(
        session, delivery.event, execution, status_at_event=str(queued.get("status_at_event", then))
    )


async def _deliver_one(db: Database, delivery_id: int) -> None:
    async with db.session() as session:
        delivery = await session.get(NotificationDelivery, delivery_id)
        if delivery is None:
            return
        channel = await session.get(NotificationChannel, delivery.channel_id)
        error: str | None = None
        partly: str | None = None
        permanent = False  # the receiver's refusal: no retry can help
        wait: float | None = None
        if channel is None or not channel.enabled:
            error = "the channel is disabled"
        else:
            try:
                payload = await _at_delivery(session, delivery)
                if payload is not delivery.payload:
                    delivery.payload = payload  # the log keeps what was sent
                await send_to_channel(session, channel, payload)
            except PartlyDelivered as exc:  # delivered, not to everyone: said, not sent again
                partly = str(exc)
            except SendError as exc:
                error, permanent, wait = str(exc), exc.permanent, exc.retry_after
            except Exception as exc:  # a bug must not stop the other deliveries
                log.exception("notification %s: unexpected error", delivery_id)
                error = f"internal error ({type(exc).__name__})"
        delivery.attempts += 1
        now = utcnow()
        if error is None:
            delivery.status, delivery.delivered_at = DeliveryStatus.delivered, now
            delivery.last_error = partly[:500] if partly else None
        else:
            delivery.last_error = error[:470] + (NOT_RETRIED if permanent else "")
            if permanent or delivery.attempts >= MAX_ATTEMPTS or channel is None or not channel.enabled:
                delivery.status = DeliveryStatus.failed
            else:
                delivery.status = DeliveryStatus.pending
                delivery.next_attempt_at = now + retry_delay(delivery.attempts, wait)
        await session.commit()


async def deliver_due(db: Database) -> int:
    """Send every delivery that is due now (claimed first, so each is sent by one process);
    returns how many were attempted. Sends run concurrently: one slow receiver does not hold
    up the others past the transport timeout."""
    async with db.session() as session:
        claimed = await _claim(session, utcnow())
    await asyncio.gather(*(_deliver_one(db, i) for i in claimed))
    return len(claimed)


async def send_test(session: AsyncSession, actor: Actor, channel_id: int) -> None:
    """Send a test message through a channel now (admins); 409 with the transport's error."""
    channel = await get_channel(session, actor, channel_id)
    message = {
        "event": "test",
        "subject": "[OpsCraft] test notification",
        "text": f"[OpsCraft] test notification for channel {channel.name!r}",
        "execution": None,
        "output_excerpt": "",
    }
    try:
        await send_to_channel(session, channel, message, actor)
    except SendError as exc:
        audit.record(
            session, actor, "notification_channel.test", "notification_channel", channel_id, ok=False
        )
        await session.commit()
        raise Conflict(f"the test message was not delivered: {exc}", details=exc.details) from None
    audit.record(session, actor, "notification_channel.test", "notification_channel", channel_id, ok=True)
    await session.commit()


@dataclass(frozen=True)
class DeliveryQuery:
    """Filters (combined with AND) and paging of a notification delivery listing."""

    channel_id: int | None = None
    execution_id: int | None = None
    status: str | None = None
    skip: int = 0
    limit: int = 50


async def list_deliveries(
    session: AsyncSession, actor: Actor, query: DeliveryQuery
) -> tuple[list[NotificationDelivery], int]:
    """The delivery log, newest first (admins)."""
    require(actor.user, Permission.manage_settings)
    conditions = []
    if query.channel_id is not None:
        conditions.append(col(NotificationDelivery.channel_id) == query.channel_id)
    if query.execution_id is not None:
        conditions.append(col(NotificationDelivery.execution_id) == query.execution_id)
    if query.status:
        if query.status not in DeliveryStatus.__members__:
            raise Invalid.input("status", f"must be one of: {', '.join(DeliveryStatus.__members__)}")
        conditions.append(await read_as.reading_as(session, col(NotificationDelivery.status), query.status))
    total = (
        await session.exec(select(func.count()).select_from(NotificationDelivery).where(*conditions))
    ).one()
    rows = await session.exec(
        select(NotificationDelivery)
        .where(*conditions)
        .order_by(col(NotificationDelivery.created_at).desc(), col(NotificationDelivery.id).desc())
        .offset(query.skip)
        .limit(query.limit)
    )
    return list(rows.all()), int(total)


# --- the sender loop -------------------------------------------------------------------------

# The wake-up of each sender loop running in this process (one per runtime): a loop's end
# removes its own only. One shared event, emptied by whichever loop ended, left the other loop of
# a process running two runtimes (the tests' module runtime and a test's own) deaf to `wake()`,
# and its next idle wait failed on None (an AttributeError at its runtime's stop).
_wakeups: set[asyncio.Event] = set()


def wake() -> None:
    """Tell this process's sender loops that new deliveries are due."""
    for wakeup in _wakeups:
        wakeup.set()


async def run_sender(db: Database, *, idle_seconds: float = 2.0) -> None:
    """Deliver due notifications until cancelled; woken at once by `wake()` in this process,
    else polls every `idle_seconds` (rows written by other processes, retries coming due).

    The first round comes at the first wake-up or after `idle_seconds`, not at the start: what
    is due then (retries, deliveries a stopped process left) waits at most `idle_seconds`, as
    any row another process writes does, and a start (or a test's runtime) that is over before
    pays no round (docs/benchmarks.md, session 54). The wake-up is registered at the task's first
    step, the event loop's next turn after `automation.start`: before any request can write a
    delivery (that takes a database round trip)."""
    wakeup = asyncio.Event()
    _wakeups.add(wakeup)
    failures = RoundFailures(log, "notification delivery round")
    sent = 0
    try:
        while True:
            if not sent:  # a round that sent something is followed by the next one at once
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(idle_seconds):
                        await wakeup.wait()
                wakeup.clear()
            try:
                sent = await deliver_due(db)
                failures.succeeded()
            except Exception as exc:
                failures.failed(exc)
                sent = 0
    finally:
        _wakeups.discard(wakeup)
