"""Inbound webhooks: `/api/v1/scripts/{id}/webhooks` (manage) and `POST /api/v1/hooks/{id}/{token}`
(call, no login: the token in the URL is the credential). Rules: services/webhooks.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from opscraft.api.deps import NO_BODY, CurrentActor, Session, client_ip, permitted
from opscraft.api.executions_schemas import StoredRunOptions
from opscraft.api.schemas import AUTHED, CheckedByService, IdPath, Limit, Page, Skip, error_responses
from opscraft.api.stored_problem import StoredProblem
from opscraft.db import stored_shapes
from opscraft.db.models import WebhookTrigger
from opscraft.services import webhooks
from opscraft.services.permissions import Permission
from opscraft.services.webhooks import (
    GITHUB_HEADER,
    GITLAB_HEADER,
    SIGNATURE_HEADER,
    SIGNATURE_WINDOW,
    TIMESTAMP_HEADER,
    Call,
    WebhookChanges,
    WebhookIn,
)

router = APIRouter(tags=["webhooks"])
PATH = "/api/v1/scripts/{script_id}/webhooks"


class WebhookOut(BaseModel):
    """A webhook as the API shows it: only the token's prefix, whether calls must be signed, and how a
    call's JSON maps to the script's parameters.
    """

    id: int
    script_id: int
    name: str
    prefix: str = Field(description="The token's first characters")
    secret_id: int | None
    signed: bool
    signature_scheme: str = Field(
        description="The form of a signed call's proof: `opscraft`, `github` (X-Hub-Signature-256) "
        "or `gitlab` (X-Gitlab-Token); see docs/automation.md"
    )
    mapping: dict[str, str]
    parameters: dict[str, Any]
    enabled: bool
    terraform_action: str | None = Field(
        description="Terraform scripts only: the action of the runs it starts (`plan` or `apply`); "
        "null for other script types"
    )
    terraform_workspace: str | None = Field(
        description="Terraform scripts only: the workspace of the runs it starts; null for other script types"
    )
    run_options: StoredRunOptions
    owner_id: int | None
    owner_name: str | None
    last_called_at: datetime | None
    previous_key_accepted_until: datetime | None = Field(
        description="Until when calls signed with the signing secret's previous value are still "
        "accepted (the secret's rotation window after a new value: docs/secrets.md); null when only "
        "its current value is"
    )
    created_at: datetime
    stored_problem: StoredProblem

    @classmethod
    def of(
        cls, hook: WebhookTrigger, owner_name: str | None, previous_key_accepted_until: datetime | None
    ) -> WebhookOut:
        """Build the API shape of a stored webhook, given its owner's name (None once deleted)
        and until when its signing secret's previous value is accepted
        (`webhooks.previous_key_accepted_until`)."""
        assert hook.id is not None
        return cls(
            id=hook.id,
            script_id=hook.script_id,
            name=hook.name,
            prefix=hook.prefix,
            secret_id=hook.secret_id,
            signed=hook.secret_id is not None,
            signature_scheme=hook.signature_scheme,
            mapping=hook.mapping,
            parameters=hook.parameters,
            enabled=hook.enabled,
            terraform_action=hook.terraform_action,
            terraform_workspace=hook.terraform_workspace,
            run_options=hook.run_options,
            owner_id=hook.owner_id,
            owner_name=owner_name,
            last_called_at=hook.last_called_at,
            previous_key_accepted_until=previous_key_accepted_until,
            created_at=hook.created_at,
            stored_problem=stored_shapes.note(hook),
        )


class WebhookCreated(WebhookOut):
    """The answer to a webhook creation: the webhook, the token and the URL path to call, shown only this
    once.
    """

    url_path: str = Field(description="POST here; contains the token: shown this once")
    token: str


class HookAccepted(BaseModel):
    """The answer to a webhook call: the id and status of the run it started (202), or, to
    GitHub's `ping`, no run and the status `ping` (200)."""

    execution_id: int | None
    status: str


async def _shown(session: Session, hook: WebhookTrigger) -> WebhookOut:
    """The API shape of `hook`, with its owner's name and its signing secret's rotation window as
    stored now."""
    owner = await webhooks.owner_name(session, hook)
    return WebhookOut.of(hook, owner, await webhooks.previous_key_accepted_until(session, hook))


@router.get(
    PATH,
    response_model=Page[WebhookOut],
    summary="A script's webhooks",
    responses=error_responses(*AUTHED, 404),
)
async def list_webhooks(
    script_id: IdPath, session: Session, actor: CurrentActor, skip: Skip = 0, limit: Limit = 50
) -> Page[WebhookOut]:
    """Needs view_scripts (every role). A page (`{items, total, skip, limit}`, `limit` at most
    500) of the script's webhooks, oldest first; 404 when the script is unknown or deleted.
    The token is never returned (only its `prefix`: it is stored as a SHA-256), nor the signing
    secret's value (`secret_id` names the vault secret)."""
    rows, total = await webhooks.list_for_script(session, actor, script_id, skip=skip, limit=limit)
    items = [await _shown(session, h) for h in rows]
    return Page(items=items, total=total, skip=skip, limit=limit)


@router.post(
    PATH,
    dependencies=[permitted(Permission.edit_scripts, webhooks.MANAGE)],
    response_model=WebhookCreated,
    status_code=201,
    summary="Add a webhook (its URL and token are in this response only); runs start on your behalf",
    responses=error_responses(*AUTHED, 404, 409),
)
async def create_webhook(
    script_id: IdPath, body: Annotated[WebhookIn, CheckedByService], session: Session, actor: CurrentActor
) -> WebhookCreated:
    """Operator or admin (edit_scripts). `url_path` and `token` are in this answer only. `mapping`
    takes parameters from the call's JSON body by JSON pointer (RFC 6901), `parameters` holds fixed
    values; `terraform_action` (`plan`, `apply`) and `terraform_workspace` choose what the runs of
    a Terraform script do, `run_options` (`limit`, `tags`, `skip_tags`, `check`, `diff`) those of
    an Ansible script, checked as a manual run's (a call's body never sets them); 422 naming each
    bad pointer, fixed value, parameter, Terraform field, `run_options.KEY`, or an unknown
    `secret_id`; 409
    naming `name` when the script has a webhook of that name, or `secret_id` when that secret is
    deleted at the same moment; 404 for an unknown script. Calls start runs on your behalf. Audited
    as `webhook.create`."""
    hook, token = await webhooks.create(session, actor, script_id, body)
    out = await _shown(session, hook)
    return WebhookCreated(**out.model_dump(), url_path=webhooks.hook_path(hook, token), token=token)


@router.get(
    PATH + "/{webhook_id}",
    response_model=WebhookOut,
    summary="A webhook",
    responses=error_responses(*AUTHED, 404),
)
async def get_webhook(
    script_id: IdPath, webhook_id: IdPath, session: Session, actor: CurrentActor
) -> WebhookOut:
    """Needs view_scripts (every role). 404 when unknown or of another script. No token or
    secret value is returned."""
    hook = await webhooks.get(session, actor, webhook_id, script_id)
    return await _shown(session, hook)


@router.put(
    PATH + "/{webhook_id}",
    dependencies=[permitted(Permission.edit_scripts, webhooks.MANAGE)],
    response_model=WebhookOut,
    summary="Change a webhook (fields left out keep their values; the URL stays; you own it)",
    responses=error_responses(*AUTHED, 404, 409),
)
async def update_webhook(
    script_id: IdPath,
    webhook_id: IdPath,
    body: Annotated[WebhookChanges, CheckedByService],
    session: Session,
    actor: CurrentActor,
) -> WebhookOut:
    """Operator or admin (edit_scripts). Fields left out keep their stored values (the URL and
    token stay; `secret_id: null` removes the signature); checked as on create (422, 409). You
    become its owner. 404 when unknown or of another script. Audited as `webhook.update`; a body
    that changes nothing (`{}`, or the values it has) writes nothing: no new owner, no event.
    409 naming each field changed since the edit's `base` (nothing written; no `base`: last
    write wins)."""
    hook = await webhooks.update_webhook(session, actor, webhook_id, body, script_id)
    return await _shown(session, hook)


@router.delete(
    PATH + "/{webhook_id}",
    dependencies=[permitted(Permission.edit_scripts, webhooks.MANAGE), NO_BODY],
    status_code=204,
    summary="Delete a webhook",
    responses=error_responses(*AUTHED, 404),
)
async def delete_webhook(
    script_id: IdPath, webhook_id: IdPath, session: Session, actor: CurrentActor
) -> Response:
    """Operator or admin (edit_scripts). Its URL answers 404 from now on; runs it started are
    kept. 404 when unknown or of another script. Audited as `webhook.delete`."""
    await webhooks.delete(session, actor, webhook_id, script_id)
    return Response(status_code=204)


@router.post(
    "/api/v1/hooks/{webhook_id}/{token}",
    response_model=HookAccepted,
    status_code=202,
    summary="Call a webhook: starts its script (JSON body mapped to parameters)",
    description=(
        "No login: the token in the URL is the credential. A signed webhook needs "
        f"`{TIMESTAMP_HEADER}: <unix seconds>` (within {SIGNATURE_WINDOW} s) and "
        f'`{SIGNATURE_HEADER}: sha256=<hex HMAC-SHA256 of "<timestamp>." + body>`; each signature '
        f"is accepted once. With `signature_scheme` `github`: `{GITHUB_HEADER}: sha256=<hex "
        f"HMAC-SHA256 of body>` (a body is accepted once); `gitlab`: `{GITLAB_HEADER}: <the key>`. "
        "202 with the run's id; 404 for an unknown or paused webhook or a wrong "
        "token (one answer, so ids cannot be probed); 401 for a missing, wrong, stale or reused "
        "signature; 403 when the webhook's owner may not run the script now; 422 for the body, "
        "the parameters or the webhook's Terraform choice the script refuses now; "
        "409 when the script cannot run (not active, no runner); 429 past "
        "`OPSCRAFT_RATE_LIMIT_API` calls a minute per webhook (calls without its token count per "
        "client address instead). An empty body counts as `{}`. GitHub's `ping` (`X-GitHub-Event: "
        "ping`, sent when the webhook is added there) passes the same checks and starts no run: "
        '200 `{"execution_id": null, "status": "ping"}`. '
        "Audited as `webhook.call` (never with the payload). Rules: docs/automation.md."
    ),
    responses={
        200: {"model": HookAccepted, "description": "GitHub's ping (`X-GitHub-Event: ping`): no run started"},
        **error_responses(401, 403, 404, 409, 422, 429),
    },
)
async def call_webhook(
    webhook_id: IdPath, token: str, request: Request, response: Response, session: Session
) -> HookAccepted:
    """Start a webhook's script from an outside call authenticated by the token in the URL (and a signature
    when signed).

    The route description lists the rules and error codes; the payload is never logged nor audited.
    """
    call = Call(
        webhook_id=webhook_id,
        token=token[:256],
        body=await request.body(),
        headers={k.lower(): v for k, v in request.headers.items()},
        client_ip=client_ip(request),
    )
    execution = await webhooks.receive(session, call)
    if execution is None:
        response.status_code = 200
        return HookAccepted(execution_id=None, status="ping")
    assert execution.id is not None
    return HookAccepted(execution_id=execution.id, status=str(execution.status))
