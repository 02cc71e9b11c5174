"""Approvals: `/api/v1/approvals` (pending), `/api/v1/executions/{id}/approve|reject|approvals`,
`/api/v1/scripts/{id}/approval` (policy). Rules: services/approvals.py."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft.api.deps import NO_BODY, CurrentActor, Session, permitted
from opscraft.api.executions_schemas import ExecutionOut
from opscraft.api.schemas import AUTHED, IdPath, Limit, Page, Skip, error_responses
from opscraft.db.models import ApprovalDecision, ApprovalPolicy
from opscraft.services import approvals
from opscraft.services.approvals import COMMENT_MAX, PolicyIn
from opscraft.services.bodies import Body
from opscraft.services.permissions import Permission

router = APIRouter(tags=["approvals"])


class Decision(Body):
    """Body of an approve or reject decision: an optional comment, kept with the decision."""

    comment: str = Field(default="", max_length=COMMENT_MAX)


class DecisionOut(BaseModel):
    """One user's decision on an approval request, as the API shows it (`user_id` is null once the user
    is deleted).
    """

    user_id: int | None
    username: str
    decision: str
    comment: str
    created_at: datetime

    @classmethod
    def of(cls, d: ApprovalDecision) -> DecisionOut:
        """Build the API shape of a stored decision."""
        return cls(
            user_id=d.user_id,
            username=d.username,
            decision=d.decision,
            comment=d.comment,
            created_at=d.created_at,
        )


class PendingOut(BaseModel):
    """A run's approval request: waiting (`outcome` null) or ended."""

    execution: ExecutionOut
    required: int
    approvals: int
    expires_at: datetime
    decided_by_you: bool = Field(
        description="You decided on it already (while it waits: it waits for the others, not you)"
    )
    outcome: Literal["approved", "rejected", "expired", "cancelled"] | None = Field(
        default=None,
        description="null while it waits; `cancelled`: the run was cancelled while it waited",
    )
    decided_at: datetime | None = Field(default=None, description="When it got its outcome")
    decided_by: str | None = Field(
        default=None,
        description="Who cancelled it (outcome `cancelled`); the decisions are in .../approvals",
    )

    @classmethod
    def of(cls, p: approvals.Pending) -> PendingOut:
        """Build the API shape of a pending approval: the run, the approvals counted so far and the caller's
        own decision.
        """
        return cls(
            execution=ExecutionOut.of(p.execution),
            required=p.request.required,
            approvals=p.approvals,
            expires_at=p.request.expires_at,
            decided_by_you=p.decided,
            outcome=p.request.outcome,  # type: ignore[arg-type]
            decided_at=p.request.decided_at,
            decided_by=p.decided_by,
        )


class PolicyOut(BaseModel):
    """A script's approval policy: how many approvals its runs need and how many hours a request waits
    before it expires.
    """

    script_id: int
    required: int
    expires_after_hours: int
    warning: str | None = Field(
        default=None,
        description="Why runs cannot get `required` approvals as the team stands (too few active "
        "operators and admins besides a run's requester and the version's author); null when they can",
    )

    @classmethod
    async def of(cls, session: AsyncSession, p: ApprovalPolicy) -> PolicyOut:
        """Build the API shape of a stored approval policy, with `approvals.reach_warning`."""
        warning = await approvals.reach_warning(session, p.required)
        return cls(
            script_id=p.script_id,
            required=p.required,
            expires_after_hours=p.expires_after_hours,
            warning=warning,
        )


@router.get(
    "/api/v1/approvals",
    response_model=Page[PendingOut],
    summary="Runs awaiting approval, oldest first (`ended=true`: the requests that ended, newest first)",
    responses=error_responses(*AUTHED),
)
async def pending(
    session: Session,
    actor: CurrentActor,
    ended: Annotated[
        bool,
        Query(description="true: the requests that ended, the most recent first"),
    ] = False,
    skip: Skip = 0,
    limit: Limit = 50,
) -> Page[PendingOut]:
    """Needs view_scripts (every role). A page (`{items, total, skip, limit}`, `limit` at most
    500) of the runs in `awaiting_approval`, oldest first, each with its approvals so far,
    `required`, `expires_at` and `decided_by_you`; with `ended=true` the requests that ended, most
    recent first, with their `outcome` and `decided_at`."""
    found, total = await (approvals.ended if ended else approvals.pending)(
        session, actor, skip=skip, limit=limit
    )
    return Page(items=[PendingOut.of(p) for p in found], total=total, skip=skip, limit=limit)


@router.post(
    "/api/v1/executions/{execution_id}/approve",
    dependencies=[permitted(Permission.approve_executions)],
    response_model=ExecutionOut,
    summary="Approve a waiting run (not your own); it queues once enough approvals are in",
    responses=error_responses(*AUTHED, 404, 409),
)
async def approve(
    execution_id: IdPath, body: Decision, session: Session, actor: CurrentActor
) -> ExecutionOut:
    """Operator or admin (approve_executions), other than the run's requester (403, however you
    sign in). Each person decides once (409, also for two decisions at the same moment); 409 when
    the run is not awaiting approval, or could no longer start as requested (script deleted or not
    active, requester deactivated, environment over budget: it keeps waiting). The run is queued once
    `required` approvals are in. 404 when unknown. Audited as `execution.approve`."""
    return ExecutionOut.of(await approvals.approve(session, actor, execution_id, body.comment))


@router.post(
    "/api/v1/executions/{execution_id}/reject",
    dependencies=[permitted(Permission.approve_executions)],
    response_model=ExecutionOut,
    summary="Reject a waiting run (not your own): it ends `rejected`",
    responses=error_responses(*AUTHED, 404, 409),
)
async def reject(execution_id: IdPath, body: Decision, session: Session, actor: CurrentActor) -> ExecutionOut:
    """Operator or admin (approve_executions), other than the run's requester (403). The run ends
    `rejected` at once (a final state, with its run event and notifications). 409 when it is not
    awaiting approval or you decided already; 404 when unknown. Audited as `execution.reject`."""
    return ExecutionOut.of(await approvals.reject(session, actor, execution_id, body.comment))


@router.get(
    "/api/v1/executions/{execution_id}/approvals",
    response_model=Page[DecisionOut],
    summary="The decision trail of a run",
    responses=error_responses(*AUTHED, 404),
)
async def decisions(
    execution_id: IdPath, session: Session, actor: CurrentActor, skip: Skip = 0, limit: Limit = 50
) -> Page[DecisionOut]:
    """Needs view_scripts (every role). A page (`{items, total, skip, limit}`) of the approves and
    rejects with their comments, in the order given; no items for a run without decisions. 404
    when the execution is unknown."""
    found, total = await approvals.trail(session, actor, execution_id, skip=skip, limit=limit)
    return Page(items=[DecisionOut.of(d) for d in found], total=total, skip=skip, limit=limit)


@router.get(
    "/api/v1/executions/{execution_id}/approval",
    response_model=PendingOut,
    summary="A run's approval request: approvals so far, and its outcome once it ended",
    responses=error_responses(*AUTHED, 404),
)
async def request_state(execution_id: IdPath, session: Session, actor: CurrentActor) -> PendingOut:
    """Needs view_scripts (every role). `outcome` null while the run waits, else approved,
    rejected, expired or cancelled with `decided_at` (and `decided_by` for a cancel). 404 when the
    execution is unknown or never waited for approval."""
    return PendingOut.of(await approvals.state_of(session, actor, execution_id))


@router.get(
    "/api/v1/scripts/{script_id}/approval",
    response_model=PolicyOut | None,
    summary="The script's approval policy (null: runs need none)",
    responses=error_responses(*AUTHED, 404),
)
async def get_policy(script_id: IdPath, session: Session, actor: CurrentActor) -> PolicyOut | None:
    """Needs view_scripts (every role). `{script_id, required, expires_after_hours, warning}`, or null
    when the script's runs need no approval. 404 when the script is unknown or deleted."""
    policy = await approvals.get_policy(session, actor, script_id)
    return await PolicyOut.of(session, policy) if policy else None


@router.put(
    "/api/v1/scripts/{script_id}/approval",
    dependencies=[permitted(Permission.edit_scripts, approvals.SET_POLICY)],
    response_model=PolicyOut,
    summary="Require approvals for the script's runs",
    responses=error_responses(*AUTHED, 404),
)
async def put_policy(script_id: IdPath, body: PolicyIn, session: Session, actor: CurrentActor) -> PolicyOut:
    """Operator or admin (edit_scripts); only an admin may lower `required` (403 for an operator:
    the rule must not be switched off by whom it constrains). `required` 1-5, `expires_after_hours`
    1-720; fields left out keep their stored values (a new policy takes the defaults 1 and 24).
    Runs already waiting keep their requirement. A `required` above what the team can give is
    saved with a `warning` saying so (the approvers may be invited later). 404 for an unknown
    script. Audited as
    `approval_policy.set`; the values the policy has, sent again, write nothing and are not audited."""
    return await PolicyOut.of(session, await approvals.set_policy(session, actor, script_id, body))


@router.delete(
    "/api/v1/scripts/{script_id}/approval",
    dependencies=[permitted(Permission.relax_approvals, approvals.REMOVE_POLICY), NO_BODY],
    status_code=204,
    summary="Stop requiring approvals",
    responses=error_responses(*AUTHED, 404),
)
async def delete_policy(script_id: IdPath, session: Session, actor: CurrentActor) -> Response:
    """Admin only: removing a policy needs relax_approvals (403 for a viewer or an operator,
    naming admin). Runs started from now on need no
    approval; runs already waiting still need theirs. 404 when the script requires no approval.
    Audited as `approval_policy.remove`."""
    await approvals.remove_policy(session, actor, script_id)
    return Response(status_code=204)
