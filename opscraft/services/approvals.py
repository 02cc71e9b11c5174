"""Approvals: runs of a script that requires them wait as `awaiting_approval` until enough people
approve; a rejection or the expiry ends them `rejected`.

Rules:
- operators and admins set a script's policy: `required` approvals (1-5) and an expiry (hours);
  lowering `required` or removing the policy needs an admin (`relax_approvals`), otherwise the
  operator a run waits on could switch the rule off and run again; runs already waiting keep
  the requirement they were held with (their request holds its own `required`);
- `executions.create` holds a run of such a script (no enqueue) and opens a request;
- people with `approve_executions` (operators, admins) other than the run's requester decide,
  with a comment; the requester can never decide on their own run, whichever way they are
  signed in (a personal token acts as its owner, and a schedule's or webhook's runs are
  requested by their owner); each person decides once;
- the author of the script version a run executes (`ScriptVersion.author_id`) may reject it but
  never approve it: an operator who edits a script and approves a run of his own edit would be
  the only pair of eyes on it (four-eyes, as GitLab's "prevent approvals by users who add
  commits" and GitHub's "approval of the most recent push"); a version whose author was deleted
  has no author to refuse; likewise the author of the "then run" link that started a chained
  run (`ChainRun.author_id`, recorded as it started: a later save or deletion of the link does
  not change it), who chose its target and values while its requester is the first run's user;
- a policy whose `required` is above what the team can give (`reach_warning`: the active
  operators and admins, less a run's requester) is saved with a warning, not refused: a rule may
  be set before the approvers are invited (GitHub and GitLab accept a reviewer count above the
  team's size too); a run that cannot be approved says so on its page (`_out_of_reach`);
- an approval is refused while the run could no longer start as requested (its script deleted
  or not active, its requester deactivated or deleted, or the saved Terraform plan it applies
  stale: the state changed since the plan was made): it would queue what `executions.create`
  refuses now, or what Terraform refuses as it starts;
- the run queues once `required` distinct approvals are in, counting only those whose givers
  may still approve (one since demoted, deactivated or deleted stays in the trail, uncounted);
  one rejection rejects it; a request past its expiry is rejected by `expire_due` (the scheduler
  loop calls it), or by the first decision that arrives after it (`_end_if_expired`: refused,
  never counted). Rejection writes the run event with the final status, like any end of a run.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NoReturn

from pydantic import Field
from sqlalchemy import ColumnElement, bindparam, exists, func, or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft import runtime
from opscraft.db import stored_shapes
from opscraft.db.engine import Database
from opscraft.db.models import (
    ApprovalDecision,
    ApprovalPolicy,
    ApprovalRequest,
    ChainRun,
    Execution,
    Role,
    RunEvent,
    Script,
    ScriptVersion,
    TerraformPlan,
    User,
)
from opscraft.db.models.executions import ExecutionStatus
from opscraft.db.models.scripts import ScriptStatus, ScriptType
from opscraft.db.models.workers import finished_event
from opscraft.db.turns import take_write_turn
from opscraft.db.types import LE, compared, utc_text, utcnow
from opscraft.services import audit, paging, run_environment, terraform_state
from opscraft.services.actor import Actor
from opscraft.services.bodies import Body
from opscraft.services.errors import Conflict, Forbidden, Invalid, NotFound
from opscraft.services.partial import over_stored, unchanged
from opscraft.services.permissions import ROLE_RANK, Permission, can, require, roles_with
from opscraft.services.scripts import get as get_script
from opscraft.services.scripts import parse

# What a refusal names (services/permissions.require; the routes' early check says the same).
SET_POLICY = "set an approval policy"
REMOVE_POLICY = "remove an approval policy"

MAX_REQUIRED = 5
MAX_EXPIRY_HOURS = 24 * 30
COMMENT_MAX = 2000
ALREADY_DECIDED = "you have already decided on this run"


class PolicyIn(Body):
    """An approval policy as set: how many approvals each run needs (from people other than who started
    it) and the hours a request waits before it expires.
    """

    required: int = Field(default=1, ge=1, le=MAX_REQUIRED)
    expires_after_hours: int = Field(default=24, ge=1, le=MAX_EXPIRY_HOURS)


async def get_policy(session: AsyncSession, actor: Actor, script_id: int) -> ApprovalPolicy | None:
    """The script's policy, None when its runs need no approval; `NotFound` (404) for a script
    that does not exist or was deleted."""
    await get_script(session, actor, script_id)
    return await session.get(ApprovalPolicy, script_id)


async def set_policy(session: AsyncSession, actor: Actor, script_id: int, data: PolicyIn) -> ApprovalPolicy:
    """Require approvals for a script's runs (operators and admins). A field `data` leaves out
    keeps its stored value (`partial.over_stored`; the model's default for a new policy), so an
    operator may change the expiry alone; `Forbidden` (403) when a non-admin lowers `required`.
    The values it already has, sent again, write nothing and are not audited (`partial.unchanged`)."""
    user = require(actor.user, Permission.edit_scripts, SET_POLICY)
    # One writer per script at a time (its row locked; SQLite: the write turn), so two requests
    # setting a first policy at once do not both insert one (the second was a 500 on the
    # primary key) and one that changes a field reads the other's before deciding.
    await take_write_turn(session, Script, col(Script.id) == script_id)
    locked = select(Script).where(col(Script.id) == script_id).with_for_update()
    script = (await session.exec(locked.execution_options(populate_existing=True))).first()
    if script is None or script.deleted_at is not None:
        raise NotFound.gone("script")
    policy = await session.get(ApprovalPolicy, script_id, populate_existing=True)
    if policy is None:
        policy = ApprovalPolicy(script_id=script_id)
        session.add(policy)
    else:
        data = parse(PolicyIn, over_stored(PolicyIn, data, policy))
    if data.required < policy.required:
        _require_relaxing(actor, f"lower the approvals script {script.name} requires ({policy.required})")
    policy.required, policy.expires_after_hours = data.required, data.expires_after_hours
    if policy not in session.new and unchanged(policy):
        await session.commit()
        return policy
    policy.updated_by, policy.updated_at = user.id, utcnow()
    audit.record(session, actor, "approval_policy.set", "script", script_id, **data.model_dump())
    await session.commit()
    return policy


def _require_relaxing(actor: Actor, what: str) -> None:
    """`Forbidden` (403) unless the actor may relax approval requirements (admins)."""
    if not can(actor.user, Permission.relax_approvals):
        raise Forbidden(
            f"only an admin may {what}: operators may add an approval requirement or raise it, "
            "never lower or remove it"
        )


async def remove_policy(session: AsyncSession, actor: Actor, script_id: int) -> None:
    """Let the script's runs start without approval (admins: `Forbidden` naming admin for the
    others, relax_approvals, so the operator a policy constrains cannot switch it off); runs
    already awaiting approval still need theirs. `NotFound` when the script requires no approval."""
    require(actor.user, Permission.relax_approvals, REMOVE_POLICY)
    policy = await session.get(ApprovalPolicy, script_id)
    if policy is None:
        raise NotFound("this script requires no approval")
    await session.delete(policy)
    audit.record(session, actor, "approval_policy.remove", "script", script_id)
    await session.commit()


_SCRIPTS = Script.__table__.c  # type: ignore[attr-defined]
_POLICIES = ApprovalPolicy.__table__.c  # type: ignore[attr-defined]
# Built once: every submission runs it (issue 15). A Core statement of the columns a submission
# reads, run on the session's connection: no ORM entity is loaded (the ORM's compile step, the
# row's identity and the columns it does not use cost about a third of the submission's
# statement time on the event loop).
# The columns of `ScriptFacts`, in its order.
_FACTS = (
    "name",
    "script_type",
    "status",
    "parameters",
    "current_version",
    "network_enabled",
    "viewers_choose_run_options",
    "deleted_at",
)
_SCRIPT_WITH_POLICY = (
    select(
        *(_SCRIPTS[name] for name in _FACTS),
        _POLICIES.required,
        _POLICIES.expires_after_hours,
        run_environment.secret_bytes(_SCRIPTS.id),
    )
    .select_from(Script.__table__)  # type: ignore[attr-defined]
    .outerjoin(ApprovalPolicy.__table__, _POLICIES.script_id == _SCRIPTS.id)  # type: ignore[attr-defined]
    .where(_SCRIPTS.id == bindparam("script_id"))
)


@dataclass(frozen=True, slots=True)
class ScriptFacts:
    """What a submission reads of its script row (`scripts`), with the row's column types:
    `parameters` the stored declarations, `deleted_at` None unless the script was deleted.
    Read as an ORM load reads them (`stored_shapes.read`): `problems` names each column stored
    in another shape (read as its empty value, as the script's pages show it)."""

    name: str
    script_type: ScriptType
    status: ScriptStatus
    parameters: list[dict[str, Any]]
    current_version: int
    network_enabled: bool
    viewers_choose_run_options: bool
    deleted_at: datetime | None
    problems: dict[str, str]


@dataclass(frozen=True, slots=True)
class PolicyTerms:
    """What a held run's request takes from its script's approval policy: how many approvals
    it needs and after how many hours it expires."""

    required: int
    expires_after_hours: int


@dataclass(frozen=True)
class ScriptToRun:
    """What `executions.create` reads of a script first: the row's facts (None when there is no
    such script), the policy its runs need (None: no approval) and the bytes its attached `env`
    secrets take in a run's environment (`run_environment.secret_bytes`)."""

    script: ScriptFacts | None
    policy: PolicyTerms | None = None
    secret_bytes: int = 0


async def script_with_policy(session: AsyncSession, script_id: int) -> ScriptToRun:
    """Script `script_id`, its approval policy and its secrets' size, read in one statement on
    `session`'s connection (in its transaction): the submit path's first query (issue 15). No
    permission check: the caller has made its own."""
    connection = await session.connection()
    row = (await connection.execute(_SCRIPT_WITH_POLICY, {"script_id": script_id})).first()
    if row is None:
        return ScriptToRun(None)
    policy = PolicyTerms(row.required, row.expires_after_hours) if row.required is not None else None
    values, problems = stored_shapes.read(Script, {name: row._mapping[name] for name in _FACTS})
    facts = ScriptFacts(*(values[name] for name in _FACTS), problems=problems)
    return ScriptToRun(facts, policy, int(row[len(_FACTS) + 2]))


def open_request(session: AsyncSession, execution_id: int, policy: PolicyTerms) -> None:
    """Add the request of a held run to the caller's transaction."""
    expires = utcnow() + timedelta(hours=policy.expires_after_hours)
    session.add(ApprovalRequest(execution_id=execution_id, required=policy.required, expires_at=expires))


@dataclass(frozen=True)
class Pending:
    """A run waiting for approval (or its ended request), with the approvals counted so far."""

    execution: Execution
    request: ApprovalRequest
    approvals: int
    # Whether the acting user has decided on it already (approved: a rejection ends the run);
    # they cannot decide again, it waits for the others.
    decided: bool = False

    @property
    def decided_by(self) -> str | None:
        """Who ended the request: the canceller of a `cancelled` one (the run's
        `cancelled_by_name`), else None (a rejecter and the approvers are in the trail)."""
        if self.request.outcome == "cancelled":
            return self.execution.cancelled_by_name
        return None


def _decided_by(user_id: int | None) -> ColumnElement[bool]:
    """Whether user `user_id` has decided on the execution of the enclosing query's row."""
    return exists().where(
        col(ApprovalDecision.execution_id) == col(Execution.id), col(ApprovalDecision.user_id) == user_id
    )


async def pending(
    session: AsyncSession, actor: Actor, *, skip: int = 0, limit: int = paging.DEFAULT_PAGE
) -> tuple[list[Pending], int]:
    """A page (`paging.page`) of the runs awaiting approval, oldest first (ties by run id), each
    with whether the actor decided on it already, and how many wait in all."""
    user = require(actor.user, Permission.view_scripts)
    query = (
        select(Execution, ApprovalRequest, _decided_by(user.id))
        .join(ApprovalRequest, col(ApprovalRequest.execution_id) == col(Execution.id))
        .where(col(Execution.status) == ExecutionStatus.awaiting_approval)
        .order_by(col(Execution.queued_at), col(Execution.id))
    )
    return await _with_counts(session, *await paging.page(session, query, skip, limit))


async def ended(
    session: AsyncSession, actor: Actor, *, skip: int = 0, limit: int = paging.DEFAULT_PAGE
) -> tuple[list[Pending], int]:
    """A page of the requests that ended, most recent first (ties by run id, newest first): each
    with its `outcome` (`approved`, `rejected`, `expired`, or `cancelled` while it waited) and
    `decided_at`, so a run that stopped waiting is not simply gone from the Approvals page."""
    user = require(actor.user, Permission.view_scripts)
    query = (
        select(Execution, ApprovalRequest, _decided_by(user.id))
        .join(ApprovalRequest, col(ApprovalRequest.execution_id) == col(Execution.id))
        .where(col(ApprovalRequest.outcome).is_not(None))
        .order_by(col(ApprovalRequest.decided_at).desc(), col(Execution.id).desc())
    )
    return await _with_counts(session, *await paging.page(session, query, skip, limit))


async def _with_counts(session: AsyncSession, found: list[Any], total: int) -> tuple[list[Pending], int]:
    """The (execution, request, decided) rows of a page as `Pending`s with their approval counts."""
    counts = await _counts_of(session, [r for _, r, _ in found])
    return [Pending(e, r, counts.get(e.id or 0, 0), bool(d)) for e, r, d in found], total


async def state_of(session: AsyncSession, actor: Actor, execution_id: int) -> Pending:
    """The approval request of run `execution_id` with its approvals so far and, once it ended,
    its outcome; `NotFound` (404) for a run that does not exist or never waited for approval."""
    user = require(actor.user, Permission.view_scripts)
    found = (
        await session.exec(
            select(Execution, ApprovalRequest, _decided_by(user.id))
            .join(ApprovalRequest, col(ApprovalRequest.execution_id) == col(Execution.id))
            .where(col(Execution.id) == execution_id)
        )
    ).first()
    if found is None:
        raise NotFound("no approval request: the execution does not exist or never waited for approval")
    execution, request, decided = found
    counts = await _counts_of(session, [request])
    return Pending(execution, request, counts.get(execution_id, 0), bool(decided))


async def pending_count(session: AsyncSession, actor: Actor) -> int:
    """How many runs wait for a decision this user can still give (the navigation badge): none
    for a user whose role may not decide (`approve_executions`), or who is inactive; of the
    waiting runs, not their own requests, nor those they have decided on already (one approved,
    waiting for another approver), nor those past their expiry (a decision would only end
    them: `_end_if_expired`). The author of the version a run executes may still reject it: it
    counts for them."""
    user = actor.user
    if user is None or not user.is_active or not can(user, Permission.approve_executions):
        return 0
    total = await session.exec(
        select(func.count())
        .select_from(Execution)
        .join(ApprovalRequest, col(ApprovalRequest.execution_id) == col(Execution.id))
        .where(
            col(Execution.status) == ExecutionStatus.awaiting_approval,
            col(ApprovalRequest.expires_at) > utcnow(),
            # a run whose requester was deleted (NULL) is anyone's to reject
            or_(col(Execution.triggered_by).is_(None), col(Execution.triggered_by) != user.id),
            ~_decided_by(user.id),
        )
    )
    return int(total.one())


def _counts_now() -> ColumnElement[bool]:
    """An approval counts while its giver may still approve: active, in a role holding
    `approve_executions` (a `User` join). One given by someone since demoted to viewer,
    deactivated or deleted (the decision's `user_id` is then NULL) stays in the trail but counts
    no more: "2 approvals by operators or admins" stays true however long the run waits."""
    return (col(User.is_active).is_(True)) & col(User.role).in_(roles_with(Permission.approve_executions))


async def _approval_counts(session: AsyncSession, ids: list[int], *, ended: bool = False) -> dict[int, int]:
    """Approvals per run id (a run with none is left out): those that count now (`_counts_now`),
    or with `ended` every approval given (whatever became of the approvers since)."""
    if not ids:
        return {}
    query = select(ApprovalDecision.execution_id, func.count()).where(
        col(ApprovalDecision.execution_id).in_(ids), col(ApprovalDecision.decision) == "approve"
    )
    if not ended:
        query = query.join(User, col(User.id) == col(ApprovalDecision.user_id)).where(_counts_now())
    rows = await session.exec(query.group_by(ApprovalDecision.execution_id))
    return {int(i): int(n) for i, n in rows.all()}


async def _counts_of(session: AsyncSession, requests: list[ApprovalRequest]) -> dict[int, int]:
    """The approvals of each request's run: while it waits, those that count now; once approved,
    its `required` (the run queued on the approval that reached it: an approver demoted since
    takes nothing back); otherwise (rejected, expired, cancelled) every approval given."""
    waiting = [r.execution_id for r in requests if r.outcome is None]
    other = [r.execution_id for r in requests if r.outcome not in (None, "approved")]
    approved = {r.execution_id: r.required for r in requests if r.outcome == "approved"}
    given = await _approval_counts(session, other, ended=True)
    return await _approval_counts(session, waiting) | given | approved


async def _lapsed_approvals(session: AsyncSession, execution_id: int) -> list[str]:
    """The names of those whose approval of the run no longer counts (`_counts_now`), in the
    order given."""
    rows = await session.exec(
        select(ApprovalDecision.username)
        .outerjoin(User, col(User.id) == col(ApprovalDecision.user_id))
        .where(
            col(ApprovalDecision.execution_id) == execution_id,
            col(ApprovalDecision.decision) == "approve",
            or_(col(ApprovalDecision.user_id).is_(None), ~_counts_now()),
        )
        .order_by(col(ApprovalDecision.created_at), col(ApprovalDecision.id))
    )
    return list(rows.all())


async def request_of(session: AsyncSession, actor: Actor, execution_id: int) -> ApprovalRequest | None:
    """The approval request of a run (how many approvals it needs, until when, its outcome), or
    None for a run that never waited for approval."""
    require(actor.user, Permission.view_scripts)
    return await session.get(ApprovalRequest, execution_id)


async def notes(session: AsyncSession, actor: Actor, execution: Execution) -> list[str]:
    """What an approver of a waiting run should know before deciding (empty for other runs): why
    it can no longer be approved (`_still_startable`'s reason), that its script changed since
    it was requested (it runs the version it was requested with, not the script's current one),
    and whose approvals no longer count (`_counts_now`)."""
    require(actor.user, Permission.view_scripts)
    if execution.status != ExecutionStatus.awaiting_approval:
        return []
    found: list[str] = []
    try:
        await _still_startable(session, execution)
    except Conflict as exc:
        found.append(exc.message)
    script = await session.get(Script, execution.script_id)
    if script is not None and not execution.draft and script.current_version != execution.script_version:
        found.append(
            f"the script changed since this run was requested: approved, it runs version "
            f"{execution.script_version}, as requested (the script is at version "
            f"{script.current_version} now)"
        )
    lapsed = await _lapsed_approvals(session, int(execution.id or 0))
    if lapsed:
        found.append(
            f"the approval of {', '.join(lapsed)} no longer counts: no longer an active operator or "
            f"admin (demoted, deactivated or deleted since approving)"
        )
    out_of_reach = await _out_of_reach(session, execution)
    if out_of_reach:
        found.append(out_of_reach)
    return found


async def _out_of_reach(session: AsyncSession, execution: Execution) -> str | None:
    """Why the waiting run can never get the approvals it needs as the team stands, or None: the
    approvals that count (`_counts_now`) and those the active operators and admins who have not
    decided yet, its requester aside, could give are fewer than its request's `required` (a
    small team whose policy asks for more approvers than it has, or whose approvers were
    deactivated or demoted while it waited: it waited until it expired, saying nothing)."""
    run_id = int(execution.id or 0)
    request = await session.get(ApprovalRequest, run_id)
    if request is None or request.outcome is not None:
        return None
    counted = (await _approval_counts(session, [run_id])).get(run_id, 0)
    decided = select(ApprovalDecision.user_id).where(
        col(ApprovalDecision.execution_id) == run_id, col(ApprovalDecision.user_id).is_not(None)
    )
    authors = (await version_author(session, execution), await link_author(session, execution))
    excluded = [i for i in (execution.triggered_by, *authors) if i]
    undecided = await session.exec(
        select(func.count())
        .select_from(User)
        .where(_counts_now(), col(User.id).not_in(excluded), col(User.id).not_in(decided))
    )
    could = counted + int(undecided.one())
    if could >= request.required:
        return None
    return (
        f"it can never be approved as the team stands: it needs {request.required} approvals by "
        f"active operators or admins other than its requester and the author of the version it "
        f"runs, and only {could} could be given ({counted} given so far): add or promote an "
        f"approver, or ask an admin to lower the script's requirement and request the run again"
    )


async def reach_warning(session: AsyncSession, required: int) -> str | None:
    """Why a policy requiring `required` approvals cannot be met as the team stands, or None.
    A run's requester may not approve it, nor may the author of the version it runs, so a run
    requested by an operator or admin can get at most the active operators and admins less one
    (`_counts_now`'s roles). Said when the policy is saved and shown (a warning, not a refusal:
    the approvers may be invited after the rule is set)."""
    approvers = await session.exec(select(func.count()).select_from(User).where(_counts_now()))
    active = int(approvers.one())
    could = max(active - 1, 0)
    if required <= could:
        return None
    names = " or ".join(r.value + "s" for r in roles_with(Permission.approve_executions))
    return (
        f"runs need {required} approval{'' if required == 1 else 's'}, but only {could} could be given "
        f"to a run an operator or admin requests: there are {active} active {names}, and neither a "
        f"run's requester nor the author of the version it runs may approve it; until more {names} "
        f"are added, such runs wait and expire"
    )


async def trail(
    session: AsyncSession, actor: Actor, execution_id: int, *, skip: int = 0, limit: int = paging.DEFAULT_PAGE
) -> tuple[list[ApprovalDecision], int]:
    """A page of the decisions on a run, in the order given (ties by id), and how many there are;
    `NotFound` (404) for a run that does not exist."""
    require(actor.user, Permission.view_scripts)
    if await session.get(Execution, execution_id) is None:
        raise NotFound.gone("execution")
    query = (
        select(ApprovalDecision)
        .where(col(ApprovalDecision.execution_id) == execution_id)
        .order_by(col(ApprovalDecision.created_at), col(ApprovalDecision.id))
    )
    return await paging.page(session, query, skip, limit)


async def _decidable(session: AsyncSession, actor: Actor, execution_id: int, comment: str) -> Execution:
    user = require(actor.user, Permission.approve_executions)
    if len(comment) > COMMENT_MAX:
        raise Invalid(
            f"comment: must be at most {COMMENT_MAX} characters, not {len(comment)}",
            details=[
                {
                    "field": "comment",
                    "message": f"must be at most {COMMENT_MAX} characters, not {len(comment)}",
                }
            ],
        )
    # Locked until the decision commits (PostgreSQL; SQLite has one writer): two decisions at
    # once each counted the approvals without the other's, and a quorum reached by both left
    # the run waiting. FOR NO KEY UPDATE: rows referring to the run (a decision) are not held up.
    execution = await session.get(
        Execution, execution_id, with_for_update={"key_share": True}, populate_existing=True
    )
    if execution is None:
        raise NotFound.gone("execution")
    if execution.status != ExecutionStatus.awaiting_approval:
        raise Conflict(f"execution {execution_id} is not awaiting approval ({execution.status})")
    await _end_if_expired(session, execution_id)
    if execution.triggered_by == user.id:
        raise Forbidden("you requested this run: someone else must approve or reject it")
    done = await session.exec(
        select(ApprovalDecision.id).where(
            col(ApprovalDecision.execution_id) == execution_id, col(ApprovalDecision.user_id) == user.id
        )
    )
    if done.first() is not None:
        raise Conflict(ALREADY_DECIDED)
    return execution


def _expired(request: ApprovalRequest | None, now: datetime) -> bool:
    """Whether `request` is past its `expires_at` (a time stored as no time reads as 1970:
    expired)."""
    return request is not None and request.expires_at <= now


async def _end_if_expired(session: AsyncSession, execution_id: int) -> None:
    """End a waiting run whose request is past its expiry as `expire_due` does (`rejected`,
    outcome `expired`, audited as `execution.approval_expired`; committed) and raise the
    `Conflict` of a run no longer waiting, saying when it expired. The expiry was the
    scheduler loop's alone (`expire_due`, each round): an approval arriving after the expiry
    and before the loop's next round (or while its rounds failed) queued the run."""
    request = await session.get(ApprovalRequest, execution_id)
    if request is None or not _expired(request, utcnow()):
        return
    expired_at = utc_text(request.expires_at)
    if await _end(session, execution_id, "approval expired", "expired"):
        _audit_expired(session, execution_id)
    await session.commit()
    _wake_events()
    raise Conflict(
        f"execution {execution_id} is not awaiting approval (rejected): its approval request expired "
        f"at {expired_at}"
    )


def _audit_expired(session: AsyncSession, execution_id: int) -> None:
    audit.record(
        session, Actor(None), "execution.approval_expired", "execution", execution_id, actor_name="system"
    )


async def _record_decision(
    session: AsyncSession, actor: Actor, execution_id: int, decision: str, comment: str
) -> None:
    """Write the actor's decision; `Conflict` (409) when the same person's other decision on
    this run got in first (two clicks at once: the unique key on run and user has the last
    word after `_decidable`'s check passed for both)."""
    assert actor.user is not None
    session.add(
        ApprovalDecision(
            execution_id=execution_id,
            user_id=actor.user.id,
            username=actor.user.username,
            decision=decision,
            comment=comment,
        )
    )
    try:
        await session.flush()
    except IntegrityError:
        await session.rollback()
        raise Conflict(ALREADY_DECIDED) from None


async def approve(session: AsyncSession, actor: Actor, execution_id: int, comment: str = "") -> Execution:
    """Record an approval; the run queues once enough are in. 403 self-approval, 409 not waiting
    (also when it was cancelled, rejected or expired as the decision arrived: nothing is kept),
    409 when it could no longer start (`_still_startable`: its script deleted or not active, its
    requester deactivated or deleted, its environment over budget)."""
    execution = await _decidable(session, actor, execution_id, comment)
    assert actor.user is not None
    if actor.user.id is not None and actor.user.id == await version_author(session, execution):
        raise Forbidden(
            f"you wrote version {execution.script_version} of this script, which this run executes: "
            "someone else must approve it (you may still reject it)"
        )
    if actor.user.id is not None and actor.user.id == await link_author(session, execution):
        raise Forbidden(
            'you saved the "then run" link that started this run, which chose what it runs: '
            "someone else must approve it (you may still reject it)"
        )
    await _still_startable(session, execution)
    await _record_decision(session, actor, execution_id, "approve", comment)
    request = await session.get(ApprovalRequest, execution_id)
    have = (await _approval_counts(session, [execution_id])).get(execution_id, 0)
    queued = request is None or have >= request.required
    # Conditional on the run still waiting (a no-op below the quorum): a run cancelled, rejected
    # or expired since it was read takes no decision.
    if not await _still_waiting(session, execution_id, queued):
        await _no_longer_waiting(session, execution)
    if queued and request is not None:
        request.decided_at, request.outcome = utcnow(), "approved"
    audit.record(
        session,
        actor,
        "execution.approve",
        "execution",
        execution_id,
        approvals=have,
        queued=queued,
        comment=comment[:200],
    )
    await session.commit()
    await session.refresh(execution)
    if queued:
        enqueue([execution_id])
    return execution


async def version_author(session: AsyncSession, execution: Execution) -> int | None:
    """The user id of who saved the script version `execution` runs (`ScriptVersion.author_id`
    of its script's `script_version`), None when that user was deleted or the version is gone,
    and for a test run (`draft`): it runs its requester's unsaved content, no saved version."""
    if execution.draft:
        return None
    found = await session.exec(
        select(ScriptVersion.author_id).where(
            col(ScriptVersion.script_id) == execution.script_id,
            col(ScriptVersion.number) == execution.script_version,
        )
    )
    return found.first()


async def link_author(session: AsyncSession, execution: Execution) -> int | None:
    """The user id of who saved the "then run" link that started `execution` when it started it
    (`ChainRun.author_id`), None for a run no link started or whose link's author was deleted."""
    if execution.id is None:
        return None
    found = await session.exec(select(ChainRun.author_id).where(col(ChainRun.execution_id) == execution.id))
    return found.first()


async def _still_waiting(session: AsyncSession, execution_id: int, queue: bool) -> bool:
    """Whether the run still waited (a conditional update: one cancelled, rejected or expired
    since it was read takes no decision); `queue`: it is queued now."""
    moved = await session.exec(
        update(Execution)
        .where(col(Execution.id) == execution_id, col(Execution.status) == ExecutionStatus.awaiting_approval)
        .values(status=ExecutionStatus.queued if queue else ExecutionStatus.awaiting_approval)
    )
    return bool(moved.rowcount == 1)


def enqueue(execution_ids: list[int]) -> None:
    """Hand runs queued by a committed transaction to the job queue."""
    client = runtime.current().executions
    if client is not None:
        for execution_id in execution_ids:
            client.enqueue(execution_id)


async def count_again(session: AsyncSession, actor: Actor, user: User) -> list[int]:
    """The waiting runs `user` approved that reach their `required` now that their approval
    counts again (`user` restored to a role that approves, or reactivated; flushed): each is
    queued (outcome `approved`, audited as `execution.approval_reached` with `restored` the
    user's name), unless it could no longer start (`_still_startable`: it keeps waiting, as an
    approval of it is refused). Before, such a run showed its approvals complete and waited
    until it expired `rejected`: no one was left to decide. Not committed: the caller hands
    the returned run ids to `enqueue` after its commit."""
    if not can(user, Permission.approve_executions):
        return []
    rows = await session.exec(
        select(ApprovalRequest)
        .join(ApprovalDecision, col(ApprovalDecision.execution_id) == col(ApprovalRequest.execution_id))
        .where(
            col(ApprovalDecision.user_id) == user.id,
            col(ApprovalDecision.decision) == "approve",
            col(ApprovalRequest.outcome).is_(None),
        )
    )
    requests = list(rows.all())
    counts = await _counts_of(session, requests)
    queued: list[int] = []
    for request in requests:
        have = counts.get(request.execution_id, 0)
        execution = await session.get(
            Execution, request.execution_id, with_for_update={"key_share": True}, populate_existing=True
        )
        if have < request.required or execution is None or _expired(request, utcnow()):
            continue  # an expired one is `expire_due`'s: it ends `rejected`, never queued
        try:
            await _still_startable(session, execution)
        except Conflict:
            continue
        if await _still_waiting(session, request.execution_id, True):
            request.decided_at, request.outcome = utcnow(), "approved"
            audit.record(
                session,
                actor,
                "execution.approval_reached",
                "execution",
                request.execution_id,
                approvals=have,
                restored=user.username,
            )
            queued.append(request.execution_id)
    return queued


async def _still_startable(session: AsyncSession, execution: Execution) -> None:
    """`Conflict` (409) when the waiting run could no longer be started as it was requested: its
    script was deleted, or is no longer active (a test run aside, which runs stored content of a
    script in any status), or its requester was deactivated or deleted, or (a local-runner run)
    no longer holds the role the local runner needs, or its parameter values no longer fit the
    run's environment with the secrets attached to the script now (`run_environment`). An
    approval would queue what `executions.create` now refuses; the run can still be rejected or
    expire."""
    script = await session.get(Script, execution.script_id)
    if script is None or script.deleted_at is not None:
        raise Conflict(
            "this run's script was deleted after the run was requested: the run can no longer be "
            "approved; reject it (or let it expire)"
        )
    if not execution.draft and script.status != ScriptStatus.active:
        raise Conflict(
            f"script {script.name!r} is {script.status} since this run was requested: only active "
            "scripts run; reactivate it first, or reject the run (or let it expire)"
        )
    # Secrets attached to the script, or grown, since the run was requested.
    secrets = await run_environment.attached_secret_bytes(session, execution.script_id)
    too_large = run_environment.problem(script.name, execution.parameters, secrets)
    if too_large is not None:
        raise Conflict(f"{too_large}. The run can no longer be approved: reject it (or let it expire)")
    requester = await session.get(User, execution.triggered_by) if execution.triggered_by else None
    who = execution.triggered_by_name or "the requester"
    if requester is None or not can(requester, Permission.execute_scripts):
        raise Conflict(
            f"{who}, who requested this run, may no longer run scripts (deactivated or deleted): the "
            "run can no longer be approved; reject it (or let it expire)"
        )
    await _plan_still_current(session, execution)
    if execution.runner == "local":
        from opscraft.services import executions  # executions builds on this module

        lowest = await executions.local_runner_role(session)
        if ROLE_RANK[Role(requester.role)] < ROLE_RANK[lowest]:
            raise Conflict(
                f"{who}, who requested this run on the local runner, is now {requester.role}: the "
                f"local runner is for {lowest.value}s and admins (setting local_runner_role); the run "
                "can no longer be approved; reject it (or let it expire)"
            )


async def _plan_still_current(session: AsyncSession, execution: Execution) -> None:
    """`Conflict` (409) when `execution` applies a saved plan (`apply_plan`) whose state changed
    since the plan was made (serial or lineage, as `terraform_plans.is_stale` compares): approved,
    Terraform refused it as it started ("Saved plan is stale") and the run failed. The cause and
    the way out are named; the run can still be rejected or expire."""
    if execution.terraform_action != "apply_plan":
        return
    # The columns compared, not the row: it holds the sealed plan file (megabytes)
    found = await session.exec(
        select(
            TerraformPlan.execution_id,
            TerraformPlan.script_id,
            TerraformPlan.workspace,
            TerraformPlan.prior_serial,
            TerraformPlan.prior_lineage,
        ).where(col(TerraformPlan.apply_execution_id) == execution.id)
    )
    plan = found.first()
    if plan is None:
        return  # the plan run was deleted: the worker says so when the run starts
    plan_run, script_id, workspace, prior_serial, prior_lineage = plan
    serial, lineage, version = await terraform_state.identity(session, script_id, workspace)
    if (serial, lineage) != (prior_serial, prior_lineage):
        raise Conflict(
            f"the plan this run applies is stale: the Terraform state of workspace {workspace!r} "
            f"changed since plan run {plan_run} made it (serial {prior_serial} -> {serial}, now "
            f"version {version}), and the run would be refused; reject this run, plan again and "
            "apply the new plan"
        )


async def reject(session: AsyncSession, actor: Actor, execution_id: int, comment: str = "") -> Execution:
    """Reject a waiting run: it ends `rejected` (a final state, with its run event). 403
    self-decision, 409 not waiting (also when it stopped waiting as the decision arrived)."""
    execution = await _decidable(session, actor, execution_id, comment)
    assert actor.user is not None
    await _record_decision(session, actor, execution_id, "reject", comment)
    reason = f"rejected by {actor.user.username}" + (f": {comment[:200]}" if comment else "")
    if not await _end(session, execution_id, reason, "rejected"):
        await _no_longer_waiting(session, execution)
    audit.record(session, actor, "execution.reject", "execution", execution_id, comment=comment[:200])
    await session.commit()
    _wake_events()
    await session.refresh(execution)
    return execution


async def _no_longer_waiting(session: AsyncSession, execution: Execution) -> NoReturn:
    """Undo a decision on a run that stopped waiting after `_decidable` read it (cancelled,
    rejected or expired meanwhile) and raise the Conflict `_decidable` would have raised."""
    await session.rollback()
    await session.refresh(execution)
    raise Conflict(f"execution {execution.id} is not awaiting approval ({execution.status})")


async def _end(session: AsyncSession, execution_id: int, reason: str, outcome: str) -> bool:
    now = utcnow()
    moved = await session.exec(
        update(Execution)
        .where(col(Execution.id) == execution_id, col(Execution.status) == ExecutionStatus.awaiting_approval)
        .values(status=ExecutionStatus.rejected, finished_at=now, error_message=reason)
    )
    if moved.rowcount != 1:
        return False
    execution = await session.get(Execution, execution_id)
    assert execution is not None
    await session.refresh(execution)
    session.add(RunEvent(**finished_event(execution.model_dump())))
    await close_request(session, execution_id, outcome, now)
    return True


async def close_request(session: AsyncSession, execution_id: int, outcome: str, at: datetime) -> None:
    """Give the request of a run that stopped waiting its `outcome` (`cancelled`: by whom is the
    run's `cancelled_by_name`) and time, in the caller's transaction; nothing when the run never
    waited for approval."""
    request = await session.get(ApprovalRequest, execution_id)
    if request is not None and request.outcome is None:
        request.decided_at, request.outcome = at, outcome


def _wake_events() -> None:
    dispatcher = runtime.current().run_events
    if dispatcher is not None:
        dispatcher.wake()


async def expire_due(db: Database, now: datetime | None = None) -> int:
    """Reject every waiting run whose request has expired; returns how many (any process may
    call it: the conditional update ends each run once)."""
    now = now or utcnow()
    async with db.session() as session:
        due = await session.exec(
            select(ApprovalRequest.execution_id)
            .join(Execution, col(Execution.id) == col(ApprovalRequest.execution_id))
            .where(
                compared(col(ApprovalRequest.expires_at), LE, now),
                col(Execution.status) == ExecutionStatus.awaiting_approval,
            )
        )
        ended = 0
        for execution_id in list(due.all()):
            if await _end(session, int(execution_id), "approval expired", "expired"):
                _audit_expired(session, int(execution_id))
                ended += 1
        await session.commit()
    if ended:
        _wake_events()
    return ended
