"""The master key's state in the database: the key check at start and key rotation.

The `app_settings` row `vault` holds `{"check": <key check value>, "key_version": n}`. It is
not one of the admin-editable settings (`app_settings.KNOWN`), so no API shows or changes it.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft import runtime
from opscraft.config import ConfigError, Settings
from opscraft.db.engine import Database
from opscraft.db.models import (
    AppSetting,
    NotificationChannel,
    Secret,
    SecretPreviousValue,
    TerraformPlan,
    TerraformStateVersion,
)
from opscraft.db.types import utcnow
from opscraft.security.vault import (
    STAGED_KEY_FILE,
    DecryptError,
    MasterKey,
    Sealed,
    Vault,
    finish_rotation,
    load_master_key,
)
from opscraft.services import audit
from opscraft.services.actor import Actor
from opscraft.services.errors import Conflict, Invalid

STATE_KEY = "vault"
log = logging.getLogger(__name__)


def current_vault() -> Vault:
    """The vault opened at start (`lifecycle.start`)."""
    vault = runtime.current().vault
    if vault is None:
        raise RuntimeError("the vault is not open")
    return vault


async def require_current(session: AsyncSession, vault: Vault) -> None:
    """Before sealing anything under `vault` in `session`'s transaction: `Conflict` (409) when
    the database's master key changed since this process opened the vault (`opscraft secrets
    rotate-key` ran beside it). A value sealed under the old key would never decrypt after the
    restart the rotation asks for: the old key file is replaced. On PostgreSQL the vault row is
    read FOR SHARE, so a rotation committing meanwhile waits for this transaction's end."""
    query = select(AppSetting).where(col(AppSetting.key) == STATE_KEY).with_for_update(read=True)
    state = (
        await session.exec(query.execution_options(populate_existing=True))
    ).one()  # open_vault stored it
    stored = int(state.value["key_version"])  # each rotation takes the next version
    if stored != vault.key_version:
        raise Conflict(
            f"the master key was rotated (key version {stored}) after this process started with key "
            f"version {vault.key_version}: restart it so that it reads the new key; nothing was saved"
        )


def reveal(vault: Vault, secret: Secret) -> str:
    """The plaintext of `secret`; `DecryptError` when it does not decrypt for this row and key."""
    assert secret.id is not None
    box = Sealed(secret.ciphertext, secret.salt, secret.nonce)
    return vault.open(box, secret_id=secret.id, name=secret.name, key_version=secret.key_version)


def seal_into(vault: Vault, secret: Secret, value: str) -> None:
    """Encrypt `value` for the (already inserted) row `secret` under `vault`'s key."""
    assert secret.id is not None
    box = vault.seal(value, secret_id=secret.id, name=secret.name)
    secret.ciphertext, secret.salt, secret.nonce = box.ciphertext, box.salt, box.nonce
    secret.key_version = vault.key_version


def _previous_aad_name(previous: SecretPreviousValue) -> str:
    # Not a secret name (those have no ':'): a previous value never opens as a current one.
    return f"secret-previous-value:{previous.secret_id}"


def reveal_previous(vault: Vault, previous: SecretPreviousValue) -> str:
    """The plaintext of a secret's previous value; `DecryptError` when it does not decrypt."""
    box = Sealed(previous.ciphertext, previous.salt, previous.nonce)
    name = _previous_aad_name(previous)
    return vault.open(box, secret_id=previous.secret_id, name=name, key_version=previous.key_version)


def seal_previous(vault: Vault, previous: SecretPreviousValue, value: str) -> None:
    """Encrypt `value` as the previous value of the secret `previous.secret_id` under `vault`'s key."""
    box = vault.seal(value, secret_id=previous.secret_id, name=_previous_aad_name(previous))
    previous.ciphertext, previous.salt, previous.nonce = box.ciphertext, box.salt, box.nonce
    previous.key_version = vault.key_version


def _state_aad_name(version: TerraformStateVersion) -> str:
    # Not a secret name (those have no ':'): a sealed state never opens as a secret, nor the reverse.
    return f"terraform-state:{version.state_id}:{version.number}"


def reveal_state(vault: Vault, version: TerraformStateVersion) -> str:
    """The plaintext Terraform state of `version`; `DecryptError` when it does not decrypt."""
    assert version.id is not None
    box = Sealed(version.ciphertext, version.salt, version.nonce)
    name = _state_aad_name(version)
    return vault.open(box, secret_id=version.id, name=name, key_version=version.key_version)


def seal_state(vault: Vault, version: TerraformStateVersion, text: str) -> None:
    """Encrypt the state `text` for the (already inserted) row `version`."""
    assert version.id is not None
    box = vault.seal(text, secret_id=version.id, name=_state_aad_name(version))
    version.ciphertext, version.salt, version.nonce = box.ciphertext, box.salt, box.nonce
    version.key_version = vault.key_version


def _plan_aad_name(plan: TerraformPlan) -> str:
    # Neither a secret name nor a state's: a sealed plan opens only as this plan.
    return f"terraform-plan:{plan.execution_id}"


def reveal_plan(vault: Vault, plan: TerraformPlan) -> bytes:
    """The plan file of `plan` (Terraform's zip, sealed as base64 text); `DecryptError` when it
    does not decrypt."""
    assert plan.id is not None
    box = Sealed(plan.ciphertext, plan.salt, plan.nonce)
    text = vault.open(box, secret_id=plan.id, name=_plan_aad_name(plan), key_version=plan.key_version)
    return base64.b64decode(text)


def seal_plan(vault: Vault, plan: TerraformPlan, data: bytes) -> None:
    """Encrypt the plan file `data` for the (already inserted) row `plan`."""
    assert plan.id is not None
    box = vault.seal(base64.b64encode(data).decode(), secret_id=plan.id, name=_plan_aad_name(plan))
    plan.ciphertext, plan.salt, plan.nonce = box.ciphertext, box.salt, box.nonce
    plan.key_version = vault.key_version


def _channel_aad_name(channel: NotificationChannel) -> str:
    # Neither a secret's, a state's nor a plan's: a sealed URL opens only as this channel's.
    return f"notification-channel-url:{channel.id}"


def reveal_channel_url(vault: Vault, channel: NotificationChannel) -> str:
    """The webhook URL sealed in `channel`; `DecryptError` when it does not decrypt (or none is
    sealed)."""
    assert channel.id is not None
    if channel.url_ciphertext is None or channel.url_salt is None or channel.url_nonce is None:
        raise DecryptError(f"notification channel {channel.id} has no sealed URL")
    box = Sealed(channel.url_ciphertext, channel.url_salt, channel.url_nonce)
    name = _channel_aad_name(channel)
    return vault.open(box, secret_id=channel.id, name=name, key_version=channel.url_key_version or 1)


def seal_channel_url(vault: Vault, channel: NotificationChannel, url: str) -> None:
    """Encrypt the webhook `url` for the (already inserted) row `channel`."""
    assert channel.id is not None
    box = vault.seal(url, secret_id=channel.id, name=_channel_aad_name(channel))
    channel.url_ciphertext, channel.url_salt, channel.url_nonce = box.ciphertext, box.salt, box.nonce
    channel.url_key_version = vault.key_version


def _mismatch(master: MasterKey) -> ConfigError:
    return ConfigError(
        f"{master.source}: this is not the master key the secrets in the database were encrypted with "
        "(key check failed); set the original key (after `opscraft secrets rotate-key`, the new one)"
    )


async def open_vault(db: Database, settings: Settings) -> Vault:
    """Load the master key and check it against the database; `ConfigError` if it does not fit."""
    async with db.session() as session:
        state = await session.get(AppSetting, STATE_KEY)
        if state is not None:
            master = load_master_key(settings, create=False)
            check = str(state.value.get("check", ""))
            if not master.matches(check):
                staged = finish_rotation(settings, check)
                if staged is None:
                    raise _mismatch(master)
                log.warning(
                    "%s: a key rotation was interrupted after the database was re-encrypted: its "
                    "new key (%s) now replaces the old one",
                    staged.source,
                    STAGED_KEY_FILE,
                )
                master = staged
            return Vault(master, int(state.value["key_version"]))
        return await _first_open(session, settings)


async def _first_open(session: AsyncSession, settings: Settings) -> Vault:
    """No key check stored yet: verify against an existing secret if any, then store the check."""
    existing = (await session.exec(select(Secret).order_by(col(Secret.id)).limit(1))).first()
    master = load_master_key(settings, create=existing is None)
    vault = Vault(master, existing.key_version if existing else 1)
    if existing is not None:
        try:
            reveal(vault, existing)
        except DecryptError:
            raise _mismatch(master) from None
    session.add(AppSetting(key=STATE_KEY, value=_state(vault)))
    try:
        await session.commit()
    except IntegrityError:  # another process stored it first: check against theirs
        await session.rollback()
        state = await session.get(AppSetting, STATE_KEY)
        if state is None or not master.matches(str(state.value.get("check", ""))):
            raise _mismatch(master) from None
    return vault


async def _reseal_each(
    session: AsyncSession,
    model: type[TerraformStateVersion]
    | type[TerraformPlan]
    | type[NotificationChannel]
    | type[SecretPreviousValue],
    old: Vault,
    new: Vault,
    reveal: Callable[[Vault, Any], Any],
    seal: Callable[[Vault, Any, Any], None],
    *where: Any,
) -> int:
    """Re-encrypt every row of `model` (matching `where`: Terraform state versions, saved plans,
    webhook channels' URLs, secrets' previous values: sealed by the vault like secrets) from `old`
    to `new`, one row at a
    time, each let go once flushed: a state may be 64 MiB and a script has a version per apply,
    so loading them all at once held every ciphertext twice over. The rows are locked first
    (PostgreSQL; on SQLite the rotation's first write is its turn). Returns how many; `Invalid`
    (after a rollback: nothing rotated) when one does not decrypt."""
    key = next(iter(model.__table__.primary_key.columns))  # type: ignore[attr-defined]
    query = select(key).where(*where).order_by(key).with_for_update()
    ids = (await session.exec(query)).all()
    for row_id in ids:
        row = await session.get(model, row_id)
        assert row is not None  # locked above
        try:
            seal(new, row, reveal(old, row))
        except DecryptError as exc:
            await session.rollback()
            raise Invalid(f"{exc}; nothing was rotated") from None
        await session.flush()
        session.expunge(row)
    return len(ids)


def _state(vault: Vault) -> dict[str, object]:
    return {"check": vault.master.check_value(), "key_version": vault.key_version}


async def rotate(session: AsyncSession, old: Vault, new_key: MasterKey) -> tuple[Vault, int]:
    """Re-encrypt every secret (and Terraform state, saved plan, webhook channel URL, previous
    value of a secret) under
    `new_key` in one transaction; the new vault and the count of secrets.

    Each secret gets the next key version and a fresh salt and nonce; the key check value is
    replaced, so after the commit only the new key opens the vault. Nothing changes on error.
    """
    if new_key.matches(old.master.check_value()):
        raise Invalid("the new master key is the same as the current one: give a different key")
    new = Vault(new_key, old.key_version + 1)
    actor = Actor(None)
    rows = (await session.exec(select(Secret).order_by(col(Secret.id)).with_for_update())).all()
    for secret in rows:
        try:
            value = reveal(old, secret)
        except DecryptError as exc:
            await session.rollback()
            raise Invalid(f"{exc}; nothing was rotated") from None
        seal_into(new, secret, value)
        audit.record(
            session,
            actor,
            "secret.rotate",
            "secret",
            secret.id,
            actor_name="cli",
            name=secret.name,
            key_version=new.key_version,
        )
    states = await _reseal_each(session, TerraformStateVersion, old, new, reveal_state, seal_state)
    plans = await _reseal_each(session, TerraformPlan, old, new, reveal_plan, seal_plan)  # plans too
    sealed_url = col(NotificationChannel.url_ciphertext).is_not(None)
    urls = await _reseal_each(
        session, NotificationChannel, old, new, reveal_channel_url, seal_channel_url, sealed_url
    )
    # Still accepted by webhooks (services/secrets.py, rotation window): left under the old key,
    # a previous value would no longer decrypt, and the callers still signing with it be refused.
    previous = await _reseal_each(session, SecretPreviousValue, old, new, reveal_previous, seal_previous)
    state = await session.get(AppSetting, STATE_KEY)
    assert state is not None, "the vault is opened at start, which stores its state"
    state.value = _state(new)
    state.updated_at = utcnow()
    audit.record(
        session,
        actor,
        "vault.rotate_key",
        "vault",
        None,
        actor_name="cli",
        key_version=new.key_version,
        secrets=len(rows),
        terraform_states=states,
        terraform_plans=plans,
        channel_urls=urls,
        previous_values=previous,
    )
    await session.commit()
    return new, len(rows)
