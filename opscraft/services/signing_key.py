"""SECRET_KEY's check value in the database: a worker whose SECRET_KEY is not the web
processes' refuses to start, instead of failing every Terraform run it takes.

A worker signs the Terraform state backend credentials of its runs with its SECRET_KEY
(`execution/terraform_backend.py`, when `OPSCRAFT_STATE_BACKEND_URL` is set) and the web process
serving the backend checks them with its own. A worker started without the web's key (in `dev`
it then generates one in its own data directory) started, said "ready", and each Terraform run
it took failed with "HTTP remote state endpoint requires auth", on that worker only.

The `app_settings` row `signing` holds `{"check": HMAC-SHA256(SECRET_KEY, label)}`: it tells
keys apart without revealing one (the key's own tokens, HMACs of it, are in every client's
hands). Not one of the admin-editable settings (`app_settings.KNOWN`): no API shows or changes
it. Web processes write it at start (`record`): changing SECRET_KEY is allowed (it signs
everybody out, docs/configuration.md), so the web's key is the installation's. Workers compare
with it (`require_same`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from sqlalchemy.exc import IntegrityError

from opscraft.config import ConfigError, Settings
from opscraft.db.engine import Database
from opscraft.db.models import AppSetting
from opscraft.db.types import utcnow

STATE_KEY = "signing"
_LABEL = b"opscraft-secret-key-check"
log = logging.getLogger(__name__)


def check_value(secret_key: str) -> str:
    """64 hex characters that identify `secret_key` without revealing it."""
    return hmac.new(secret_key.encode(), _LABEL, hashlib.sha256).hexdigest()


def _matches(row: AppSetting, secret_key: str) -> bool:
    stored = str((row.value or {}).get("check", ""))
    return hmac.compare_digest(stored, check_value(secret_key))


async def record(db: Database, secret_key: str) -> None:
    """For a web process at start: store its SECRET_KEY's check value. A different stored one is
    a changed key (or a web process started with another key: each start of one logs it), said
    once at WARNING: workers started with the previous key are refused from then on."""
    check = check_value(secret_key)
    async with db.session() as session:
        row = await session.get(AppSetting, STATE_KEY)
        if row is None:
            session.add(AppSetting(key=STATE_KEY, value={"check": check}))
        elif _matches(row, secret_key):
            return
        else:
            log.warning(
                "SECRET_KEY is not the key the web processes of this database used until now: if it "
                "was changed, everybody signs in again and workers need the new key (a worker with "
                "another SECRET_KEY and OPSCRAFT_STATE_BACKEND_URL is refused at start); if not, give "
                "this process the other web processes' SECRET_KEY"
            )
            row.value, row.updated_at = {"check": check}, utcnow()
        try:
            await session.commit()
        except IntegrityError:  # another web process started at the same moment stored its key first
            await session.rollback()


async def require_same(db: Database, settings: Settings) -> None:
    """For an `opscraft worker` at start: `ConfigError` when its runs would use a SECRET_KEY (a
    Terraform state backend is configured) that is not the one the web processes recorded. No
    check happens without a backend URL (the worker signs nothing with the key) or before a web
    process of this version recorded one."""
    if not settings.state_backend_url or not settings.secret_key:
        return
    async with db.session() as session:
        row = await session.get(AppSetting, STATE_KEY)
    if row is None or _matches(row, settings.secret_key):
        return
    raise ConfigError(
        "SECRET_KEY: this is not the SECRET_KEY of the web processes (key check failed; unset, it is "
        f"the one generated in {settings.data_dir / 'secret_key'}): this worker signs the Terraform "
        "state backend credentials of its runs (OPSCRAFT_STATE_BACKEND_URL) with it, and the web "
        "process would refuse them; set the web process's SECRET_KEY"
    )
