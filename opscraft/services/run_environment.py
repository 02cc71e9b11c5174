"""The budget of a run's environment: its parameter values and the `env` secrets attached to its
script (each secret's name and value) share `parameters.MAX_TOTAL_BYTES`. A process's whole
environment is limited (ARG_MAX: a run over it fails to start, "Argument list too long"), so a
run that would not fit is refused when it is requested, on every way a run starts
(`executions.create`: the UI, the API, schedules, webhooks, reruns, chained runs, saved plans) and
again when it is approved (`approvals.approve`: secrets may have grown while it waited).

A secret's size is read without decrypting it: its ciphertext is its value's UTF-8 bytes and the
AES-GCM tag (`security.vault.TAG_BYTES`). Messages give sizes and names, never a value.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, ScalarSelect
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.db.models import Script, ScriptSecret, Secret
from opscraft.db.models.secrets import SecretKind
from opscraft.security.vault import TAG_BYTES
from opscraft.services.errors import Conflict, Invalid
from opscraft.services.parameters import MAX_TOTAL_BYTES, values_size


def secret_bytes(script_id: ColumnElement[int] | int) -> ScalarSelect[int]:
    """SQL for the bytes the `env` secrets attached to script `script_id` take in a run's
    environment: each name and value in UTF-8 (0 when there are none). Names are ASCII, so
    their length in characters is their size. `file` secrets are written to files: only their
    path, a few dozen bytes, is in the environment, and is not counted."""
    size = func.length(col(Secret.name)) + func.length(col(Secret.ciphertext)) - TAG_BYTES
    return (
        select(func.coalesce(func.sum(size), 0))
        .join(ScriptSecret, col(ScriptSecret.secret_id) == col(Secret.id))
        .where(col(ScriptSecret.script_id) == script_id, col(Secret.kind) == SecretKind.env.value)
        .scalar_subquery()
    )


async def attached_secret_bytes(session: AsyncSession, script_id: int) -> int:
    """`secret_bytes` of script `script_id`, read now."""
    return int((await session.exec(select(secret_bytes(script_id)))).one())


def problem(script_name: str, values: dict[str, Any], secrets: int) -> str | None:
    """Why a run of script `script_name` with parameter `values` and attached secrets of
    `secrets` bytes (`secret_bytes`) would not fit its environment, or None when it fits."""
    used = values_size(values)
    if secrets + used <= MAX_TOTAL_BYTES:
        return None
    if secrets > MAX_TOTAL_BYTES:
        return (
            f"the secrets attached to script {script_name!r} take {secrets} bytes of a run's "
            f"environment (names and values), more than the {MAX_TOTAL_BYTES} bytes (1 MiB) a run's "
            "parameter values and secrets may take together: the run could not start. Detach "
            "some, or make large ones file secrets (only their path is in the environment)"
        )
    return (
        f"the parameter values take {used} bytes and the secrets attached to script "
        f"{script_name!r} {secrets} (names and values): together at most {MAX_TOTAL_BYTES} bytes "
        "(1 MiB), the room a run's environment has for them; shorten the values"
    )


def check(script_name: str, values: dict[str, Any], secrets: int) -> None:
    """Refuse a run that would not fit its environment (`problem`): `Conflict` (409) when the
    secrets alone are over the budget (no values could make it fit: the script's secrets must
    change), else `Invalid` (422, field `parameters`: shorter values fit)."""
    message = problem(script_name, values, secrets)
    if message is None:
        return
    if secrets > MAX_TOTAL_BYTES:
        raise Conflict(message)
    raise Invalid(
        f"invalid parameter values: parameters: {message}",
        details=[{"field": "parameters", "message": message}],
    )


async def refuse_overfull(
    session: AsyncSession, field: str, *, script_id: int | None = None, secret_id: int | None = None
) -> None:
    """After a change of script `script_id`'s attachments, or of secret `secret_id`'s value
    (attached to any scripts), written to `session` but not committed: `Conflict` (409, `field`)
    naming each live script whose `env` secrets alone now take more than `MAX_TOTAL_BYTES`, so
    that none of its runs could start; the session is rolled back first."""
    size = secret_bytes(col(Script.id))
    query = select(Script.name, size).where(col(Script.deleted_at).is_(None), size > MAX_TOTAL_BYTES)
    if script_id is not None:
        query = query.where(col(Script.id) == script_id)
    if secret_id is not None:
        attached = select(ScriptSecret.script_id).where(col(ScriptSecret.secret_id) == secret_id)
        query = query.where(col(Script.id).in_(attached))
    await session.flush()
    found = (await session.exec(query.order_by(col(Script.name)))).all()
    if not found:
        return
    await session.rollback()
    names = ", ".join(f"{name} ({size} bytes)" for name, size in found[:5])
    message = (
        f"the env secrets of script {names} would take more than the {MAX_TOTAL_BYTES} bytes (1 MiB) "
        "of a run's environment its parameter values and secrets share: none of its runs could "
        "start. Make large secrets file secrets (only their path is in the environment), or "
        "detach others"
    )
    raise Conflict(message, details=[{"field": field, "message": "the script's secrets would not fit a run"}])
