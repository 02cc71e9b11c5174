"""`/api/v1/notifications`: channels, rules and the delivery log (admins). Rules: services/notifications.py.

No response carries a credential: channels name the vault secret (`secret_id`) that holds it,
and a webhook channel's URL (sealed by the vault) is shown masked in `config.url`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from opscraft.api.deps import NO_BODY, CurrentActor, Session, permitted
from opscraft.api.schemas import AUTHED, CheckedByService, IdPath, IdQuery, Limit, Page, Skip, error_responses
from opscraft.api.stored_problem import StoredProblem
from opscraft.db import stored_shapes
from opscraft.db.models import NotificationChannel, NotificationDelivery, NotificationRule
from opscraft.db.models.automation import ChannelKind, DeliveryStatus
from opscraft.services import notifications
from opscraft.services.invisible import FilterText
from opscraft.services.notifications import ChannelChanges, ChannelIn, DeliveryQuery, RuleChanges, RuleIn
from opscraft.services.permissions import Permission

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


class ChannelOut(BaseModel):
    """A notification channel as the API shows it: a webhook's URL is stored sealed by the vault and
    shown masked, an email channel's host never with a login.
    """

    id: int
    name: str
    kind: ChannelKind
    config: dict[str, Any]
    secret_id: int | None
    enabled: bool
    created_at: datetime
    updated_at: datetime
    stored_problem: StoredProblem
    url_fingerprint: str | None = Field(
        description="A webhook channel's mark of its sealed URL (nothing of the URL itself; another "
        "at each save of the URL): an edit's `base.url_fingerprint`. null for other kinds."
    )

    @classmethod
    def of(cls, c: NotificationChannel) -> ChannelOut:
        """Build the API shape of a stored channel, with its config as notifications.shown_config shows it."""
        assert c.id is not None
        return cls(
            id=c.id,
            name=c.name,
            kind=c.kind,
            config=notifications.shown_config(c),
            secret_id=c.secret_id,
            enabled=c.enabled,
            created_at=c.created_at,
            updated_at=c.updated_at,
            stored_problem=stored_shapes.note(c),
            url_fingerprint=notifications.url_fingerprint(c),
        )


class RuleOut(BaseModel):
    """A notification rule: which run events (of one script, or of every script when `script_id` is null)
    go to a channel.
    """

    id: int
    channel_id: int
    script_id: int | None
    events: list[str]
    enabled: bool
    created_at: datetime
    stored_problem: StoredProblem

    @classmethod
    def of(cls, r: NotificationRule) -> RuleOut:
        """Build the API shape of a stored rule."""
        assert r.id is not None
        return cls(
            id=r.id,
            channel_id=r.channel_id,
            script_id=r.script_id,
            events=r.events,
            enabled=r.enabled,
            created_at=r.created_at,
            stored_problem=stored_shapes.note(r),
        )


class DeliveryOut(BaseModel):
    """One notification delivery attempt record: its status, attempts so far, next retry time and last
    error.
    """

    id: int
    channel_id: int
    event: str
    execution_id: int | None
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime | None = Field(
        description="When it is tried next while `pending` (or `sending`); null once delivered or failed"
    )
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    subject: str | None

    @classmethod
    def of(cls, d: NotificationDelivery) -> DeliveryOut:
        """Build the API shape of a stored delivery; `subject` comes from the stored payload."""
        assert d.id is not None
        return cls(
            id=d.id,
            channel_id=d.channel_id,
            event=d.event,
            execution_id=d.execution_id,
            status=d.status,
            attempts=d.attempts,
            next_attempt_at=notifications.next_attempt(d),
            last_error=d.last_error,
            created_at=d.created_at,
            delivered_at=d.delivered_at,
            subject=d.payload.get("subject"),
        )


@router.get(
    "/channels", response_model=Page[ChannelOut], summary="Channels", responses=error_responses(*AUTHED)
)
async def list_channels(
    session: Session, actor: CurrentActor, skip: Skip = 0, limit: Limit = 50
) -> Page[ChannelOut]:
    """Admin only (manage_settings). A page (`{items, total, skip, limit}`, `limit` at most 500)
    of the channels by name, each with its `config`; a credential is never returned: it lives in
    the vault secret named by `secret_id`, and a webhook's URL (sealed) is shown masked
    (`https://hooks.example/…`)."""
    rows, total = await notifications.list_channels(session, actor, skip=skip, limit=limit)
    return Page(items=[ChannelOut.of(c) for c in rows], total=total, skip=skip, limit=limit)


@router.post(
    "/channels",
    dependencies=[permitted(Permission.manage_settings)],
    response_model=ChannelOut,
    status_code=201,
    summary="Add a channel: webhook, slack or email",
    responses=error_responses(*AUTHED, 409),
)
async def create_channel(
    body: Annotated[ChannelIn, CheckedByService], session: Session, actor: CurrentActor
) -> ChannelOut:
    """Admin only (manage_settings). `kind` webhook (`config.url`, sealed by the vault and
    answered masked; signed when `secret_id` is set),
    slack (the vault secret holds the webhook URL) or email (`config`: host, port, security, from,
    to, username; the secret is the SMTP password). 422 naming every bad field and config key (a URL
    with `user:pass@` included; a URL or SMTP host that is an address OPSCRAFT_NOTIFY_NETWORKS
    refuses, in any spelling), or an unknown `secret_id`; 409 naming `name` when taken (ignoring
    case and width). Audited as `notification_channel.create`."""
    return ChannelOut.of(await notifications.create_channel(session, actor, body))


@router.get(
    "/channels/{channel_id}",
    response_model=ChannelOut,
    summary="A channel",
    responses=error_responses(*AUTHED, 404),
)
async def get_channel(channel_id: IdPath, session: Session, actor: CurrentActor) -> ChannelOut:
    """Admin only (manage_settings). 404 when no channel has this id. No credential is
    returned."""
    return ChannelOut.of(await notifications.get_channel(session, actor, channel_id))


@router.put(
    "/channels/{channel_id}",
    dependencies=[permitted(Permission.manage_settings)],
    response_model=ChannelOut,
    summary="Change a channel's settings (fields left out keep their values)",
    responses=error_responses(*AUTHED, 404, 409),
)
async def update_channel(
    channel_id: IdPath,
    body: Annotated[ChannelChanges, CheckedByService],
    session: Session,
    actor: CurrentActor,
) -> ChannelOut:
    """Admin only (manage_settings). Fields left out keep their stored values (a webhook's
    masked `config.url` sent back keeps its sealed URL); the result is
    checked as on create (422 naming each field or config key, 409 for a taken name or a `secret_id`
    deleted at the same moment). 404 when unknown. Audited as `notification_channel.update`; a
    body that changes nothing (`{}`, or the values it has) writes nothing and is not audited.
    409 naming each field changed since the edit's `base` (nothing written; no `base`: last
    write wins)."""
    return ChannelOut.of(await notifications.update_channel(session, actor, channel_id, body))


@router.delete(
    "/channels/{channel_id}",
    dependencies=[permitted(Permission.manage_settings), NO_BODY],
    status_code=204,
    summary="Delete a channel, its rules and its delivery log",
    responses=error_responses(*AUTHED, 404),
)
async def delete_channel(channel_id: IdPath, session: Session, actor: CurrentActor) -> Response:
    """Admin only (manage_settings). Deletes the channel together with its rules and its delivery
    log; its vault secret stays. 404 when unknown. Audited as `notification_channel.delete`."""
    await notifications.delete_channel(session, actor, channel_id)
    return Response(status_code=204)


@router.post(
    "/channels/{channel_id}/test",
    dependencies=[permitted(Permission.manage_settings), NO_BODY],
    status_code=204,
    summary="Send a test message now (409 with the receiver's error)",
    responses=error_responses(*AUTHED, 404, 409),
)
async def test_channel(channel_id: IdPath, session: Session, actor: CurrentActor) -> Response:
    """Admin only (manage_settings). Sends a test message at once (not through the delivery
    queue): 204 when the receiver took it, 409 with the receiver's error (HTTP status, Slack error
    code, SMTP reply). 404 when unknown. Audited as `notification_channel.test` with `ok`."""
    await notifications.send_test(session, actor, channel_id)
    return Response(status_code=204)


@router.get("/rules", response_model=Page[RuleOut], summary="Rules", responses=error_responses(*AUTHED))
async def list_rules(
    session: Session, actor: CurrentActor, script_id: IdQuery = None, skip: Skip = 0, limit: Limit = 50
) -> Page[RuleOut]:
    """Admin only (manage_settings). A page (`{items, total, skip, limit}`, `limit` at most 500)
    of the rules, oldest first, or with `script_id` of those of that script (rules for every script
    have `script_id: null`)."""
    rows, total = await notifications.list_rules(session, actor, script_id=script_id, skip=skip, limit=limit)
    return Page(items=[RuleOut.of(r) for r in rows], total=total, skip=skip, limit=limit)


@router.post(
    "/rules",
    dependencies=[permitted(Permission.manage_settings)],
    response_model=RuleOut,
    status_code=201,
    summary="Send events (failure, success, recovery, approval_pending) of a script or all to a channel",
    responses=error_responses(*AUTHED, 409),
)
async def create_rule(body: RuleIn, session: Session, actor: CurrentActor) -> RuleOut:
    """Admin only (manage_settings). `events`: failure (failed, timed_out, error), success,
    recovery, approval_pending; `script_id` null means every script. 422 naming `events`,
    `channel_id` or `script_id` when unknown; 409 naming `events` when a rule of the channel
    already sends these events of the same scripts. A channel gets one message per run and event.
    Audited as `notification_rule.create`."""
    return RuleOut.of(await notifications.create_rule(session, actor, body))


@router.put(
    "/rules/{rule_id}",
    dependencies=[permitted(Permission.manage_settings)],
    response_model=RuleOut,
    summary="Change a rule: switch it off and on (fields left out keep their values)",
    responses=error_responses(*AUTHED, 404, 409),
)
async def update_rule(
    rule_id: IdPath,
    body: Annotated[RuleChanges, CheckedByService],
    session: Session,
    actor: CurrentActor,
) -> RuleOut:
    """Admin only (manage_settings). `{"enabled": false}` stops the rule sending (no delivery is
    queued for it) and `{"enabled": true}` resumes it; `channel_id`, `script_id` and `events` may
    change too. Fields left out keep their stored values; the result is checked as on create (422
    naming each field, 409 naming `events` when another rule already sends the same). 404 when
    unknown. Audited as `notification_rule.update`; a body that changes nothing (`{}`, or the
    values it has) writes nothing and is not audited. 409 naming each field changed since the
    edit's `base` (nothing written; no `base`: last write wins)."""
    return RuleOut.of(await notifications.update_rule(session, actor, rule_id, body))


@router.delete(
    "/rules/{rule_id}",
    status_code=204,
    summary="Delete a rule",
    responses=error_responses(*AUTHED, 404),
    dependencies=[permitted(Permission.manage_settings), NO_BODY],
)
async def delete_rule(rule_id: IdPath, session: Session, actor: CurrentActor) -> Response:
    """Admin only (manage_settings). 404 when no rule has this id.
    Audited as `notification_rule.delete`."""
    await notifications.delete_rule(session, actor, rule_id)
    return Response(status_code=204)


@router.get(
    "/deliveries",
    response_model=Page[DeliveryOut],
    summary="The delivery log, newest first",
    responses=error_responses(*AUTHED),
)
async def list_deliveries(
    session: Session,
    actor: CurrentActor,
    channel_id: IdQuery = None,
    execution_id: IdQuery = None,
    status: Annotated[
        FilterText | None,
        Query(
            max_length=16,
            description="pending, sending, delivered, failed",
            json_schema_extra={"enum": [s.value for s in DeliveryStatus]},
        ),
    ] = None,
    skip: Skip = 0,
    limit: Limit = 50,
) -> Page[DeliveryOut]:
    """Admin only (manage_settings). Newest first, filtered by `channel_id`, `execution_id` and
    `status` (pending, sending, delivered, failed; another value is 422); `{items, total, skip,
    limit}`. A failed send is retried with backoff (5 s doubling, at most an hour; a 429's
    `Retry-After` within those bounds) up to 8 attempts, then `failed` with `last_error`; one no
    retry can mend (a receiver's HTTP 3xx or 4xx other than Request Timeout and Too Many
    Requests, an SMTP 5xx, a receiver address `OPSCRAFT_NOTIFY_NETWORKS` refuses) is `failed` at
    once, its `last_error` ending "(permanent: not retried)"."""
    rows, total = await notifications.list_deliveries(
        session,
        actor,
        DeliveryQuery(
            channel_id=channel_id, execution_id=execution_id, status=status, skip=skip, limit=limit
        ),
    )
    return Page(items=[DeliveryOut.of(d) for d in rows], total=total, skip=skip, limit=limit)
