"""`/api/v1/secrets` and `/api/v1/scripts/{id}/secrets`: the vault (operators and admins).

No response carries a secret's value or ciphertext: only metadata.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from opscraft.api.deps import NO_BODY, CurrentActor, Session, permitted
from opscraft.api.schemas import AUTHED, IdPath, Limit, Page, Skip, error_responses, filter_query
from opscraft.db.models import AuditEvent
from opscraft.db.models.secrets import SecretKind
from opscraft.services import secrets
from opscraft.services.invisible import FilterText
from opscraft.services.permissions import Permission
from opscraft.services.secrets import Attachment, SecretCreate, SecretInfo, SecretUpdate

router = APIRouter(tags=["secrets"])
PREFIX = "/api/v1/secrets"
SCRIPT_PATH = "/api/v1/scripts/{script_id}/secrets"


class ScriptRefOut(BaseModel):
    """A script named by id and name."""

    id: int
    name: str


class SecretOut(BaseModel):
    """A secret's metadata as the API shows it: never the value, only who made and changed it, when it was
    used and which scripts have it attached.
    """

    id: int
    name: str
    description: str
    kind: SecretKind
    key_version: int
    created_by: int | None
    created_by_name: str | None
    updated_by: int | None
    updated_by_name: str | None
    created_at: datetime
    updated_at: datetime
    last_used_at: datetime | None
    previous_accepted_until: datetime | None = Field(
        default=None,
        description="Until when webhooks signed with this secret still accept the value its last "
        "new value replaced (its rotation window: `previous_accepted_seconds` of the PUT); null when "
        "they accept the current value only. Never the previous value itself",
    )
    scripts: list[ScriptRefOut]
    warnings: list[str] = Field(
        default_factory=list,
        description="Create and update answers only: what the value just saved will do that you "
        "may not expect (shorter than 4 characters: not masked in output); it was saved. Never "
        "quotes the value; empty in listings",
    )

    @classmethod
    def of(cls, info: SecretInfo) -> SecretOut:
        """Build the API shape of a secret from the services' SecretInfo (metadata only)."""
        s = info.secret
        assert s.id is not None
        return cls(
            id=s.id,
            name=s.name,
            description=s.description,
            kind=SecretKind(s.kind),
            key_version=s.key_version,
            created_by=s.created_by,
            created_by_name=info.created_by_name,
            updated_by=s.updated_by,
            updated_by_name=info.updated_by_name,
            created_at=s.created_at,
            updated_at=s.updated_at,
            last_used_at=s.last_used_at,
            previous_accepted_until=info.previous_accepted_until,
            scripts=[ScriptRefOut(id=r.id, name=r.name) for r in info.scripts],
            warnings=info.warnings,
        )


class SecretAuditOut(BaseModel):
    """One audit event about a secret (created, updated, used by a run...), with the run's id when a run
    used it.
    """

    id: int
    time: datetime
    actor_id: int | None
    actor_name: str | None
    action: str
    execution_id: int | None
    details: dict[str, Any]

    @classmethod
    def of(cls, event: AuditEvent) -> SecretAuditOut:
        """Build the API shape of a secret's audit event; `execution_id` is taken from the details when it
        is an integer.
        """
        assert event.id is not None
        execution_id = event.details.get("execution_id")
        return cls(
            id=event.id,
            time=event.time,
            actor_id=event.actor_id,
            actor_name=event.actor_name,
            action=event.action,
            execution_id=execution_id if isinstance(execution_id, int) else None,
            details=event.details,
        )


class AttachmentOut(BaseModel):
    """A secret attached to a script under `name` (the environment variable a run sees it as), and who
    attached it when.
    """

    script_id: int
    secret_id: int
    name: str
    attached_by: int | None
    attached_by_name: str | None
    attached_at: datetime

    @classmethod
    def of(cls, script_id: int, a: Attachment) -> AttachmentOut:
        """Build the API shape of an attachment of a secret to a script."""
        return cls(
            script_id=script_id,
            secret_id=a.secret_id,
            name=a.name,
            attached_by=a.attached_by,
            attached_by_name=a.attached_by_name,
            attached_at=a.attached_at,
        )


@router.post(
    PREFIX,
    dependencies=[permitted(Permission.manage_secrets)],
    response_model=SecretOut,
    status_code=201,
    summary="Create a secret (the value is encrypted and never returned)",
    responses=error_responses(*AUTHED, 409),
)
async def create_secret(body: SecretCreate, session: Session, actor: CurrentActor) -> SecretOut:
    """Operator or admin (manage_secrets). `name` is an environment variable name (case-sensitive;
    reserved names such as PATH or OPSCRAFT_* are 422); `value` at most 64 KiB of UTF-8, not only
    blanks; `kind` env (default) or file, fixed at creation. Encrypted with AES-256-GCM under the
    master key; the answer and every later one carry metadata only, never the value. 409 naming
    `name` when that exact name exists, or when the master key was rotated beside this process.
    Audited as `secret.create` (without the value). A value shorter than 4 characters (blanks
    at its edges aside) is saved but not masked in output: the answer's `warnings` says so."""
    return SecretOut.of(await secrets.create(session, actor, body))


@router.get(
    PREFIX,
    response_model=Page[SecretOut],
    summary="List secrets (metadata only)",
    responses=error_responses(*AUTHED),
)
async def list_secrets(
    session: Session,
    actor: CurrentActor,
    search: Annotated[
        FilterText | None, filter_query(secrets.MAX_SEARCH, "Part of the name or description")
    ] = None,
    skip: Skip = 0,
    limit: Limit = 50,
) -> Page[SecretOut]:
    """Operator or admin (manage_secrets). Metadata only (never values or ciphertext), by name,
    with the scripts each is attached to; `search` matches name or description (any case, at most
    100 characters; 422 over it or with a control character). `{items, total, skip, limit}`."""
    rows, total = await secrets.list_secrets(session, actor, search=search, skip=skip, limit=limit)
    return Page(items=[SecretOut.of(i) for i in rows], total=total, skip=skip, limit=limit)


@router.get(
    PREFIX + "/{secret_id}",
    response_model=SecretOut,
    summary="Get a secret's metadata",
    responses=error_responses(*AUTHED, 404),
)
async def get_secret(secret_id: IdPath, session: Session, actor: CurrentActor) -> SecretOut:
    """Operator or admin (manage_secrets). Metadata only: never the value or ciphertext. 404 when
    no secret has this id."""
    return SecretOut.of(await secrets.get(session, actor, secret_id))


@router.put(
    PREFIX + "/{secret_id}",
    dependencies=[permitted(Permission.manage_secrets)],
    response_model=SecretOut,
    summary="Change the description and/or replace the value",
    responses=error_responses(*AUTHED, 404, 409),
)
async def update_secret(
    secret_id: IdPath, body: SecretUpdate, session: Session, actor: CurrentActor
) -> SecretOut:
    """Operator or admin (manage_secrets). A new `description` and/or `value` (422 when neither
    is sent); the name and kind stay. 409 naming `description` when `base` says the edit started
    from a description someone changed since. 409 naming `value` when the new value would make the
    environment of a script it is attached to too large for a run, or when the master key was
    rotated beside this process. 404 when unknown. Audited as `secret.update_value` /
    `secret.update_description` (an unchanged description records nothing). A new value shorter
    than 4 characters is saved with a `warnings` entry, as on create. A new value of a secret
    that signs webhooks keeps the value it replaces accepted by their signature check for
    `previous_accepted_seconds` (default 3600, 0 to 604800; 0 ends it at once; 422 above 0 for a
    secret that signs no webhook, or without a value): the answer's `previous_accepted_until`."""
    return SecretOut.of(await secrets.update(session, actor, secret_id, body))


@router.delete(
    PREFIX + "/{secret_id}/previous-value",
    dependencies=[permitted(Permission.manage_secrets), NO_BODY],
    status_code=204,
    summary="End a rotation window now: webhooks accept the secret's current value only",
    responses=error_responses(*AUTHED, 404),
)
async def end_previous_value(secret_id: IdPath, session: Session, actor: CurrentActor) -> Response:
    """Operator or admin (manage_secrets). Deletes the value the secret's last new value
    replaced, which webhooks signed with it still accepted: calls signed with it are refused from
    then on. 404 when the secret is unknown or has no previous value still accepted. Audited as
    `secret.end_previous`."""
    await secrets.end_previous(session, actor, secret_id)
    return Response(status_code=204)


@router.delete(
    PREFIX + "/{secret_id}",
    dependencies=[permitted(Permission.manage_secrets), NO_BODY],
    status_code=204,
    summary="Delete a secret (refused while attached to a script unless force=true)",
    responses=error_responses(*AUTHED, 404, 409),
)
async def delete_secret(
    secret_id: IdPath,
    session: Session,
    actor: CurrentActor,
    force: Annotated[bool, Query(description="Detach it from every script and delete it")] = False,
) -> Response:
    """Operator or admin (manage_secrets). 409 naming the scripts while live scripts have it
    attached (`force=true` detaches it from them first), and naming the webhooks or notification
    channels that use it (`force` does not override that: change those first). 404 when unknown.
    Past runs keep their masked output. Audited as `secret.delete`."""
    await secrets.delete(session, actor, secret_id, force=force)
    return Response(status_code=204)


@router.get(
    PREFIX + "/{secret_id}/audit-logs",
    response_model=Page[SecretAuditOut],
    summary="Who created, changed, attached, detached, injected or rotated the secret (newest first)",
    responses=error_responses(*AUTHED, 404),
)
async def secret_audit_logs(
    secret_id: IdPath, session: Session, actor: CurrentActor, skip: Skip = 0, limit: Limit = 50
) -> Page[SecretAuditOut]:
    """Operator or admin (manage_secrets). The secret's audit events, newest first: created,
    changed, attached, detached, injected into a run (with `execution_id`) or re-encrypted; never the
    value. `{items, total, skip, limit}`; 404 when the secret is unknown."""
    rows, total = await secrets.audit_logs(session, actor, secret_id, skip=skip, limit=limit)
    return Page(items=[SecretAuditOut.of(e) for e in rows], total=total, skip=skip, limit=limit)


@router.get(
    SCRIPT_PATH,
    response_model=Page[AttachmentOut],
    summary="Names of the secrets attached to a script (never values)",
    responses=error_responses(*AUTHED, 404),
)
async def script_secrets(
    script_id: IdPath, session: Session, actor: CurrentActor, skip: Skip = 0, limit: Limit = 50
) -> Page[AttachmentOut]:
    """Needs view_scripts (every role: whoever sees the script). A page (`{items, total, skip,
    limit}`, `limit` at most 500) of the names of the secrets attached to it, by name, with who
    attached them and when; never values. 404 when the script is unknown or deleted."""
    rows, total = await secrets.list_for_script(session, actor, script_id, skip=skip, limit=limit)
    return Page(items=[AttachmentOut.of(script_id, a) for a in rows], total=total, skip=skip, limit=limit)


@router.post(
    SCRIPT_PATH + "/{secret_id}",
    dependencies=[permitted(Permission.manage_secrets), NO_BODY],
    response_model=AttachmentOut,
    status_code=201,
    summary="Attach a secret to a script: it is injected as an environment variable into every run",
    responses=error_responses(*AUTHED, 404, 409),
)
async def attach_secret(
    script_id: IdPath, secret_id: IdPath, session: Session, actor: CurrentActor
) -> AttachmentOut:
    """Operator or admin (manage_secrets). Every later run of the script gets it as the
    environment variable of its name (kind env) or as a file whose path is in it (kind file). 409
    naming `secret_id` when already attached, when it would shadow a parameter of the script, or
    when the script's secrets would no longer fit a run's environment. 404 for either id. Audited as
    `secret.attach`."""
    return AttachmentOut.of(script_id, await secrets.attach(session, actor, script_id, secret_id))


@router.delete(
    SCRIPT_PATH + "/{secret_id}",
    dependencies=[permitted(Permission.manage_secrets), NO_BODY],
    status_code=204,
    summary="Detach a secret from a script",
    responses=error_responses(*AUTHED, 404),
)
async def detach_secret(
    secret_id: IdPath, script_id: IdPath, session: Session, actor: CurrentActor
) -> Response:
    """Operator or admin (manage_secrets). Later runs no longer get it; the secret itself stays.
    404 when either id is unknown or it is not attached to that script. Audited as
    `secret.detach`."""
    await secrets.detach(session, actor, script_id, secret_id)
    return Response(status_code=204)
