"""Executions: start, list, inspect, read output, cancel, follow live, dashboard figures.

Anyone who may view scripts may view every execution; starting one needs `execute_scripts`;
cancelling is for the user who started it and for roles with `cancel_any_execution`.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import partial
from typing import Annotated, Any

from pydantic import Field
from sqlalchemy import case, func
from sqlmodel import col, select, update
from sqlmodel.ext.asyncio.session import AsyncSession

from opscraft import runtime
from opscraft.db import clock, read_as, stored_shapes
from opscraft.db.models import (
    Execution,
    ExecutionDraft,
    Role,
    RunEvent,
    Script,
    ScriptVersion,
    TerraformPlan,
    User,
)
from opscraft.db.models.executions import CANCELLED_BY, FINAL_STATUSES, ExecutionStatus, Trigger
from opscraft.db.models.scripts import ScriptStatus, ScriptType
from opscraft.db.models.workers import finished_event
from opscraft.db.rows import new_row
from opscraft.db.types import MAX_ID, read_time, within
from opscraft.execution import ansible_options, terraform_backend, terraform_plan
from opscraft.execution.client import ExecutionClient, stored_after
from opscraft.execution.events import Event
from opscraft.execution.log_pages import StoredChunk
from opscraft.services import (
    app_settings,
    approvals,
    audit,
    execution_counts,
    history_cursor,
    host_filter,
    instants,
    notifications,
    parameters,
    run_environment,
    run_option_rights,
    secrets,
)
from opscraft.services.actor import Actor
from opscraft.services.bodies import Body
from opscraft.services.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    Problems,
    Unauthorized,
    Unavailable,
    unreadable,
)
from opscraft.services.names import trimmed
from opscraft.services.paging import MAX_PAGE
from opscraft.services.permissions import ROLE_RANK, Permission, can, require

RUNNERS = ("docker", "local")
TERRAFORM_ACTIONS = ("plan", "apply", "destroy")
# The actions a schedule, webhook or chain step may start: never destroy (`automation_terraform`).
AUTOMATION_ACTIONS = ("plan", "apply")
STATUS_ALIASES = {"pending": ExecutionStatus.queued}
STATUS_FILTERS = [*STATUS_ALIASES, *(s.value for s in ExecutionStatus)]
MAX_LOG_PAGE = 1000
# Triggers only a system actor (acting on a user's behalf) may use; people use the others.
SYSTEM_TRIGGERS = frozenset({Trigger.schedule, Trigger.webhook, Trigger.retry, Trigger.chain})


@dataclass(frozen=True)
class RunnerOptions:
    """Which runners a user may choose for a run now: docker, local (with why local is refused for them)."""

    docker: bool
    local: bool
    # Why the local runner, though enabled, is not for this user (their role), else None.
    local_refusal: str | None = None

    @property
    def default(self) -> str | None:
        """The runner chosen when none is given: docker when offered, else local, else None."""
        return "docker" if self.docker else "local" if self.local else None


@dataclass(frozen=True)
class LogPage:
    """One page of a run's stored output chunks; `next_offset` is the last `seq` returned and `complete` is
    true once the run has ended and nothing follows.
    """

    items: list[StoredChunk]
    next_offset: int
    complete: bool
    more: bool
    """More chunks are stored after this page now: it ended at `limit` or at
    `log_pages.PAGE_CHARS` characters."""
    output_removed_at: datetime | None = None
    """When output retention removed the run's stored output (as read with this page)."""


@dataclass(frozen=True)
class DailyRate:
    """Runs that finished on `day` (a UTC day), and how many of them succeeded."""

    day: date
    total: int
    success: int


@dataclass(frozen=True)
class DashboardStats:
    """`counts`: runs per status, all time (every status, 0 when none; `counts["running"]` is how
    many run now); `running`: the most recently started of them, at most the `running` asked for;
    `recent`: the latest runs, newest first; `daily`: one `DailyRate` per day, oldest first."""

    counts: dict[str, int]
    running: list[Execution]
    recent: list[Execution]
    daily: list[DailyRate]


def _client() -> ExecutionClient:
    """The execution client of this process (`lifecycle.start` builds it, worker or not)."""
    client = runtime.current().executions
    if client is None:
        raise RuntimeError("the execution client is not started")
    return client


async def runner_options(
    session: AsyncSession, user: User | None = None, offered: frozenset[str] | None = None
) -> RunnerOptions:
    """Which runners can take a new execution now: some live worker offers it (Docker answering
    that worker), and for the local runner, an admin (or `OPSCRAFT_LOCAL_RUNNER`) allows it and,
    when `user` is given, their role is at least `local_runner_role`. `offered`: the runners
    already read for this decision (`ExecutionClient.offered`), else read now."""
    if offered is None:
        offered = await _client().runners()
    local = "local" in offered and await _local_enabled(session)
    refusal = await _local_refusal(session, user) if local and user is not None else None
    return RunnerOptions(docker="docker" in offered, local=local and refusal is None, local_refusal=refusal)


async def _local_enabled(session: AsyncSession) -> bool:
    settings = runtime.current().settings
    return settings.local_runner or bool(await app_settings.get(session, "local_runner_enabled"))


async def local_runner_role(session: AsyncSession) -> Role:
    """The lowest role that may run on the local runner: `OPSCRAFT_LOCAL_RUNNER_ROLE` when set,
    else the `local_runner_role` setting (default operator)."""
    forced = runtime.current().settings.local_runner_role
    return Role(forced or await app_settings.get(session, "local_runner_role"))


async def _local_refusal(session: AsyncSession, user: User) -> str | None:
    """Why `user` may not run scripts on the local runner, or None when they may."""
    lowest = await local_runner_role(session)
    if ROLE_RANK[Role(user.role)] >= ROLE_RANK[lowest]:
        return None
    allowed = "admins" if lowest == Role.admin else f"{lowest.value}s and admins"
    return (
        f"only {allowed} may run scripts on the local runner (setting local_runner_role); your role "
        f"is {user.role}: a local run is a process of the server's own user and could read the "
        f"server's secret key and master key. Run it in Docker, or ask one of the {allowed} to run it"
    )


def no_runner(user: User | None) -> str:
    """Why no run can start when Docker is not reachable and the local runner is disabled, and
    what `user` can do about it (one sentence, lower case: the API's `detail`; the UI
    capitalises it). Someone who may change the settings (`manage_settings`: an admin, such as
    the desktop window's local administrator) is told to enable it themselves: "have an admin
    enable the local runner" sent the only admin of a laptop looking for another one."""
    if user is not None and can(user, Permission.manage_settings):
        return (
            "no runner is available: start the Docker engine, or enable the local runner under "
            "Settings (it runs scripts as plain processes of this server's user, not isolated)"
        )
    return "no runner is available: start the Docker engine, or have an admin enable the local runner"


QUEUE_RETRY_SECONDS = 5
"""`Retry-After` of a submission refused because no worker can read the job queue."""


async def _choose_runner(session: AsyncSession, requested: str | None, user: User) -> str:
    offer = await _client().offered()  # one answer: runners and queue error of the same moment
    if offer.queue_error is not None:  # the workers offer no runner meanwhile: saying so is the answer
        raise Unavailable(
            f"runs cannot start now: no worker can read the job queue ({offer.queue_error}); Redis is "
            "stopped or not answering. Nothing was queued: send the run again once it answers "
            "(GET /api/v1/workers shows each worker's queue_error)",
            retry_after=QUEUE_RETRY_SECONDS,
        )
    if requested == "docker":
        if "docker" not in offer.runners:
            raise Conflict("the Docker engine is not reachable: start it, or choose the local runner")
        return requested
    if requested == "local":
        if not await _local_enabled(session):
            raise Conflict("the local runner is disabled: an admin can enable it under Settings")
        refusal = await _local_refusal(session, user)
        if refusal is not None:
            raise Forbidden(refusal)
        if "local" not in offer.runners:
            raise Conflict(
                "no live worker offers the local runner: start `opscraft serve` or an execution worker "
                "(a running worker offers it within OPSCRAFT_WORKER_HEARTBEAT_SECONDS of its enabling)"
            )
        return requested
    if requested is not None:
        raise Invalid(
            f"runner must be one of: {', '.join(RUNNERS)}",
            details=[{"field": "runner", "message": f"must be one of: {', '.join(RUNNERS)}"}],
        )
    options = await runner_options(session, user, offer.runners)
    if options.default is None:
        if options.local_refusal is not None:
            raise Forbidden(f"the Docker engine is not reachable, and {options.local_refusal}")
        raise Conflict(no_runner(user))
    return options.default


NO_NETWORK_FOR_STATE = (
    "this Terraform script keeps its state in OpsCraft, which a Docker run reaches over the "
    "network, and the script's network is off (its run would fail at `terraform init`: network is "
    "unreachable): enable Network in the script's run settings, or choose the local runner"
)


async def _check_state_reachable(session: AsyncSession, script_id: int, version: int) -> None:
    """A Docker run of a Terraform script reaches OpsCraft's state backend (when
    OPSCRAFT_STATE_BACKEND_URL is set) over the network, so the run settings of the version it
    runs must enable it; `Conflict` naming `runner` otherwise (docs/executions.md, "How the run
    reaches the server"). Such a run used to start and fail at `terraform init`."""
    if not runtime.current().settings.state_backend_url:
        return
    run_settings = (
        await session.exec(
            select(ScriptVersion.run_settings).where(
                col(ScriptVersion.script_id) == script_id, col(ScriptVersion.number) == version
            )
        )
    ).first()
    if docker_cannot_reach_state(ScriptType.terraform, bool((run_settings or {}).get("network_enabled"))):
        raise Conflict(NO_NETWORK_FOR_STATE, details=[{"field": "runner", "message": NO_NETWORK_FOR_STATE}])


def docker_cannot_reach_state(script_type: str, network_enabled: bool) -> bool:
    """Whether a Docker run of a script of `script_type` with its network on or off
    (`network_enabled`) could not reach OpsCraft's Terraform state backend: a Terraform script,
    the backend configured (OPSCRAFT_STATE_BACKEND_URL), the network off. The run dialog says so
    before the run is asked for; `create` refuses such a run (`NO_NETWORK_FOR_STATE`)."""
    return (
        script_type == ScriptType.terraform
        and bool(runtime.current().settings.state_backend_url)
        and not network_enabled
    )


def _terraform_action(script_type: str, action: str | None, confirm_destroy: bool) -> str | None:
    if script_type != ScriptType.terraform:
        if action is not None:
            raise Invalid(
                "terraform_action applies only to terraform scripts: leave it out",
                details=[{"field": "terraform_action", "message": "only for terraform scripts"}],
            )
        return None
    action = action or "plan"
    if action == terraform_plan.APPLY_PLAN:
        raise Invalid(
            "a saved plan is applied from its plan run ('Apply this plan'), not started directly",
            details=[{"field": "terraform_action", "message": "apply a saved plan from its plan run"}],
        )
    if action not in TERRAFORM_ACTIONS:
        raise Invalid(
            "terraform_action must be 'plan', 'apply' or 'destroy'",
            details=[{"field": "terraform_action", "message": "must be 'plan', 'apply' or 'destroy'"}],
        )
    if action == "destroy" and not confirm_destroy:
        raise Invalid(
            "destroy removes every resource the state holds: confirm it (confirm_destroy: true)",
            details=[{"field": "confirm_destroy", "message": "must be true to destroy"}],
        )
    return action


def workspaces_kept() -> bool:
    """Whether Terraform runs may name a workspace other than `default`: OpsCraft keeps their
    state (its state backend is configured, OPSCRAFT_STATE_BACKEND_URL)."""
    return bool(runtime.current().settings.state_backend_url)


def _terraform_workspace(script_type: str, workspace: str | None) -> str | None:
    """The workspace a run of a `script_type` script uses: `default` for a Terraform script unless
    `workspace` names another, None for any other type. Raises `Invalid` naming
    `terraform_workspace` for a workspace given to another type, a name outside
    `terraform_backend.WORKSPACE_RE` (it becomes a path segment of the state's address), or a
    workspace other than `default` without OpsCraft's state backend (OPSCRAFT_STATE_BACKEND_URL):
    a run's local state is gone with its work directory, so another name would change nothing."""
    if script_type != ScriptType.terraform:
        if workspace is not None:
            raise Invalid(
                "terraform_workspace applies only to terraform scripts: leave it out",
                details=[{"field": "terraform_workspace", "message": "only for terraform scripts"}],
            )
        return None
    if workspace is None or workspace == terraform_backend.DEFAULT_WORKSPACE:
        return terraform_backend.DEFAULT_WORKSPACE
    if not terraform_backend.WORKSPACE_RE.fullmatch(workspace):
        message = "1-64 ASCII letters, digits, '_', '.' or '-', starting with a letter or digit"
        raise Invalid(
            f"terraform_workspace must be {message}",
            details=[{"field": "terraform_workspace", "message": message}],
        )
    if not workspaces_kept():
        raise Invalid(
            "workspaces other than 'default' need OpsCraft's state backend "
            "(OPSCRAFT_STATE_BACKEND_URL): without it a run's state is not kept",
            details=[{"field": "terraform_workspace", "message": "needs OpsCraft's state backend"}],
        )
    return workspace


TerraformWorkspace = Annotated[
    str | None,
    Field(
        description="Terraform scripts only: the workspace whose state the run uses (default "
        "`default`; 1-64 ASCII letters, digits, `_`, `.` or `-`, starting with a letter or digit; another "
        "than `default` needs OpsCraft's state backend, OPSCRAFT_STATE_BACKEND_URL)",
        examples=["prod"],
        json_schema_extra={
            "pattern": terraform_backend.WORKSPACE_RE.pattern,
            "maxLength": terraform_backend.WORKSPACE_CHARS,
        },
    ),
]

AutomationAction = Annotated[
    str | None,
    Field(
        max_length=16,
        description="Terraform scripts only: the action of the runs it starts, `plan` (default) or "
        "`apply` (held for approval like a manual apply when the script requires approvals); "
        "automation never destroys",
        examples=["apply"],
        json_schema_extra={"enum": [*AUTOMATION_ACTIONS, None]},
    ),
]


def automation_terraform(
    script_type: str, action: str | None, workspace: str | None
) -> tuple[str | None, str | None]:
    """The Terraform action and workspace a schedule, webhook or chain step stores for the runs it
    starts of a `script_type` script: for a Terraform script the values a manual run with them
    would get (`_terraform_action`, `_terraform_workspace`: `plan` and `default` when left out),
    for another type (None, None). Raises one `Invalid` naming each refused field
    (`terraform_action`, `terraform_workspace`) as a manual run would be refused, and also for
    `destroy`: nobody confirms an unattended destroy (a manual one needs `confirm_destroy`).
    `plan` in `default` named for another type is no choice (what every row of a Terraform script
    stores, kept when its type changed: `start_values`), so it is accepted as (None, None)."""
    problems = Problems()
    if action is not None and action not in AUTOMATION_ACTIONS:
        problems.add(
            "terraform_action",
            "must be 'plan' or 'apply': automation never destroys (destroy from the run dialog or "
            "POST /api/v1/executions, where it is confirmed)",
        )
        action = None
    if script_type != ScriptType.terraform and start_values(action, workspace) == (None, None):
        problems.raise_if_any()
        return None, None
    chosen_action = chosen_workspace = None
    with problems.check():
        chosen_action = _terraform_action(script_type, action, confirm_destroy=False)
    with problems.check():
        chosen_workspace = _terraform_workspace(script_type, workspace)
    problems.raise_if_any()
    return chosen_action, chosen_workspace


def start_values(action: str | None, workspace: str | None) -> tuple[str | None, str | None]:
    """What a schedule, webhook or chain step storing `action` and `workspace` hands `create`:
    None for `plan` and for `default` (what `create` uses when none is named), so a row of a
    script whose type changed away from Terraform since it was saved starts its runs as before;
    a named `apply` or another workspace is passed on, and `create` refuses it for a script that
    is no Terraform script any more (`Invalid` naming the field: no run starts)."""
    return (
        None if action == "plan" else action,
        None if workspace == terraform_backend.DEFAULT_WORKSPACE else workspace,
    )


# The schema states `ansible_options`' own rules (Python `re`, whose `\w` is every script's
# letters and digits: a tag `déploiement`, a host `主机-1`); the lengths are checked there too, so
# a refusal names the list (`run_options.tags`), the field a form shows it under.
TagName = Annotated[
    str,
    Field(
        json_schema_extra={
            "pattern": f"^{ansible_options.TAG_RE.pattern}$",
            "maxLength": ansible_options.MAX_TAG,
        }
    ),
]


class AnsibleRunOptions(Body):
    """Ansible run options, each passed to `ansible-playbook` as one argument (never through a
    shell); judged by `ansible_options.normalize` (a manual run's and a trigger's alike)."""

    model_config = {"extra": "forbid"}

    limit: str | None = Field(
        default=None,
        max_length=ansible_options.MAX_LIMIT,
        description="Host pattern (--limit); not starting with '-' or '@'",
        json_schema_extra={"pattern": f"^(?![-@]){ansible_options.LIMIT_RE.pattern}$"},
    )
    tags: list[TagName] | None = Field(
        default=None, max_length=ansible_options.MAX_TAGS, description="--tags"
    )
    skip_tags: list[TagName] | None = Field(
        default=None, max_length=ansible_options.MAX_TAGS, description="--skip-tags"
    )
    check: bool = Field(default=False, description="--check: dry run, change nothing")
    diff: bool = Field(default=False, description="--diff: show what changes in files and templates")


def automation_run_options(script_type: str, options: dict[str, Any] | None) -> dict[str, Any] | None:
    """The Ansible run options a schedule, webhook or chain step stores for the runs it starts of
    a `script_type` script: for an Ansible script the normalized form a manual run with them
    would get (`_run_options`, `ansible_options.normalize`; None when none is set), for another
    type None. Raises `Invalid` naming the refused field (`run_options.limit`...) as a manual run
    would be refused; for another script type, one naming each option set
    (`run_options.<key>`: only for Ansible scripts). Unset options (null, empty, false) are no
    choice, so a form can clear those of a script whose type changed since they were saved."""
    if not options:
        return None
    if script_type != ScriptType.ansible and isinstance(options, dict):
        chosen = [key for key, value in options.items() if value not in (None, "", [], False)]
        problems = Problems()
        for key in chosen:
            problems.add(f"run_options.{key}", "only for ansible scripts: leave it out")
        problems.raise_if_any()
        return None
    return _run_options(ScriptType.ansible, options)


def _trimmed_option(value: Any) -> Any:
    """A run option without the blanks around it (`names.trimmed`), each item of a list alike."""
    return [trimmed(item) for item in value] if isinstance(value, list) else trimmed(value)


def _run_options(script_type: str, options: dict[str, Any] | None) -> dict[str, Any] | None:
    """Ansible's `--limit`, `--tags`, `--skip-tags`, `--check`, `--diff` (see ansible_options)."""
    if not options:
        return None
    if script_type != ScriptType.ansible:
        raise Invalid(
            "run_options apply only to ansible scripts: leave them out",
            details=[{"field": "run_options", "message": "only for ansible scripts"}],
        )
    if isinstance(options, dict):  # blanks around the limit and each tag dropped, as the run form does
        options = {key: _trimmed_option(value) for key, value in options.items()}
    try:
        return ansible_options.normalize(options) or None
    except ansible_options.OptionError as exc:
        raise Invalid(str(exc), details=[{"field": exc.field, "message": exc.message}]) from None


@dataclass(frozen=True)
class DraftRun:
    """Unsaved editor content to run instead of the script's saved version (a test run), already
    through the save-time checks (`scripts.check_content`): `content` normalised, `schema` the
    normalised parameter declaration, `findings` the acknowledged dangerous patterns."""

    script_type: ScriptType
    content: str
    schema: list[dict[str, Any]]
    findings: list[dict[str, Any]]


async def create(
    session: AsyncSession,
    actor: Actor,
    script_id: int,
    parameters_in: dict[str, Any] | None,
    terraform_action: str | None = None,
    *,
    terraform_workspace: str | None = None,
    runner: str | None = None,
    trigger: Trigger = Trigger.api,
    run_options: dict[str, Any] | None = None,
    confirm_destroy: bool = False,
    saved_plan: TerraformPlan | None = None,
    draft: DraftRun | None = None,
    rerun_of: int | None = None,
    script_field: str | None = None,
) -> Execution:
    """Queue a run of an active script with validated parameters; returns the `queued` row.
    `NotFound` when the script is missing or deleted, naming `script_field` (the request body's
    field that gave `script_id`: `POST /api/v1/executions`) when there is one.

    `saved_plan` (from `terraform_plans.apply`, which has checked it) makes the run an apply of
    exactly that plan: the plan run's script version and parameters, action `apply_plan`.
    With `draft` (services/draft_runs.py), the run is a test run of that content, of a script in
    any status; the row is marked `draft`, the content is stored with it, the script is unchanged.
    `rerun_of`: the id of the run this one repeats (`runs.rerun`), kept on the row and audited.
    `terraform_workspace`: the workspace whose state a Terraform run uses (default `default`; an
    apply of a saved plan uses its plan's).

    `trigger` records how the run started. A system actor (`Actor.on_behalf_of`: a schedule, a
    webhook, a retry) starts it with the permissions its user has now: an owner who was
    deactivated, deleted or lost the permission means `Forbidden`, and the refusal is audited
    (`execution.refused`). Humans use `ui`, `api` or `api_token`; system actors the others.
    A person's run with nothing else to write (no plan, draft or approval) is committed together
    with concurrent ones (`db.group_commit`); the others commit in the caller's `session`.
    """
    if (actor.system is not None) != (trigger in SYSTEM_TRIGGERS):
        raise ValueError(f"trigger {trigger} does not fit actor {actor.system or actor.name!r}")
    if trigger == Trigger.api and actor.token_id is not None:  # a personal access token
        trigger = Trigger.api_token
    user = await _permitted_starter(session, actor, script_id, trigger)
    found = await approvals.script_with_policy(session, script_id)
    script, policy = found.script, found.policy
    if script is None or script.deleted_at is not None:
        raise NotFound.gone("script", script_field)
    if draft is None and script.problems:  # a test run brings its own type and declarations
        stored = stored_shapes.worded(script.problems)
        said = f"the stored settings of script {script.name!r} cannot be read: {stored}: edit the script"
        raise Conflict(said, details=unreadable(script.problems, "script."))
    if draft is None and script.status != ScriptStatus.active:
        fix = (
            "activate it first, or test-run it from its editor"
            if can(user, Permission.edit_scripts)
            else "ask an operator or an admin to activate it first"
        )
        raise Conflict(
            f"script {script.name!r} is {script.status}: only active scripts can be executed; {fix}"
        )
    script_type = draft.script_type if draft else script.script_type
    version = script.current_version
    if saved_plan is None:
        schema = draft.schema if draft else script.parameters
        resolved = parameters.resolve(schema, parameters_in, script_type)
        action = _terraform_action(script_type, terraform_action, confirm_destroy)
        workspace = _terraform_workspace(script_type, terraform_workspace)
    else:  # exactly what was planned: Terraform keeps the variables and configuration in the plan
        # A plan is of a Terraform version, whatever the script's type is now: the state backend
        # opens only to a Terraform run, and a Docker run gets the Terraform image.
        script_type = ScriptType.terraform
        resolved, action = dict(parameters_in or {}), terraform_plan.APPLY_PLAN
        version, workspace = saved_plan.script_version, saved_plan.workspace
    if action == "destroy" and not can(user, Permission.destroy_infrastructure):
        raise Forbidden(
            f"your role ({user.role}) may plan and apply this Terraform script but not destroy: destroy "
            "removes every resource its state holds, which is not running the script as written; "
            "ask an operator or admin"
        )
    if resolved:
        await secrets.check_parameter_shadowing(session, script_id, resolved, script_type)
    run_environment.check(script.name, resolved, found.secret_bytes)
    options = _run_options(script_type, run_options)
    if actor.system is None:  # a trigger's options were chosen by whoever saved it
        await run_option_rights.check(
            session,
            user,
            script_id=script_id,
            script_name=script.name,
            allowed_for_viewers=script.viewers_choose_run_options,
            options=options,
            rerun_of=rerun_of,
        )
    chosen = await _choose_runner(session, runner, user)
    if script_type == ScriptType.terraform and chosen == "docker":
        await _check_state_reachable(session, script_id, version)
    execution = new_row(  # every value checked above or from the script row
        Execution,
        script_id=script_id,
        script_version=version,
        script_name=script.name,
        script_type=script_type,
        parameters=resolved,
        terraform_action=action,
        terraform_workspace=workspace,
        run_options=options,
        triggered_by=user.id,
        triggered_by_name=user.username,
        trigger=trigger.value,
        trigger_ref=actor.system,
        runner=chosen,
        rerun_of=rerun_of,
        status=ExecutionStatus.awaiting_approval if policy else ExecutionStatus.queued,
        draft=draft is not None,
    )
    audited = partial(
        audit.build,
        actor,
        "execution.create",
        "execution",
        script_id=script_id,
        script_name=script.name,
        script_version=version,
        runner=chosen,
        network_enabled=script.network_enabled,
        terraform_action=action,
        **({"terraform_workspace": workspace} if workspace is not None else {}),
        run_options=options,
        parameters=sorted(resolved),
        trigger=trigger.value,
        awaiting_approval=policy is not None,
        **_draft_details(draft),
        **({"rerun_of": rerun_of} if rerun_of is not None else {}),
    )
    if actor.system is None and saved_plan is None and draft is None and policy is None:
        # A person's plain run has nothing else to write: committed with concurrent ones, once
        # this session gave its connection back (waiters holding them all would starve the pool).
        await session.commit()
        client, group = _client(), runtime.current().db.group
        await group.insert(execution, lambda i: [audited(i)], client.enqueue, client.take)
        return execution
    session.add(execution)
    await session.flush()
    assert execution.id is not None
    if saved_plan is not None:  # linked before the enqueue: the worker finds the plan by it
        saved_plan.apply_execution_id = execution.id
    if draft is not None:
        session.add(ExecutionDraft(execution_id=execution.id, content=draft.content))
    if policy is not None:  # held until approved (services/approvals.py)
        approvals.open_request(session, execution.id, policy)
    session.add(audited(execution.id))
    await session.commit()
    if policy is None:
        _client().enqueue(execution.id)
    else:
        await notifications.enqueue_for_execution(session, execution.id)
    return execution


def _draft_details(draft: DraftRun | None) -> dict[str, Any]:
    """What the audit keeps of a test run: that it was one, the type, the content's SHA-256 (the
    content itself is stored with the execution) and the acknowledged dangerous patterns."""
    if draft is None:
        return {}
    return {
        "draft": True,
        "draft_script_type": draft.script_type.value,
        "content_sha256": hashlib.sha256(draft.content.encode()).hexdigest(),
        "risks_acknowledged": draft.findings,
    }


async def ran_content(session: AsyncSession, actor: Actor, execution_id: int) -> str:
    """The exact content execution `execution_id` ran: the stored content of a test run, else its
    script version's content. Raises NotFound (no such execution, or its version is gone)."""
    execution = await get(session, actor, execution_id)
    if execution.draft:
        row = await session.get(ExecutionDraft, execution_id)
        content = row.content if row else None
    else:
        content = (
            await session.exec(
                select(ScriptVersion.content).where(
                    col(ScriptVersion.script_id) == execution.script_id,
                    col(ScriptVersion.number) == execution.script_version,
                )
            )
        ).first()
    if content is None:
        raise NotFound("the script version this run ran is no longer stored")
    return content


async def _permitted_starter(session: AsyncSession, actor: Actor, script_id: int, trigger: Trigger) -> User:
    """The user a run starts as; for a system actor, checked now and an audited refusal if not."""
    if actor.system is None:
        return require(actor.user, Permission.execute_scripts)
    try:
        return require(actor.user, Permission.execute_scripts)
    except (Unauthorized, Forbidden) as exc:
        reason = "the owner is deactivated or deleted" if isinstance(exc, Unauthorized) else str(exc)
        audit.record(
            session,
            actor,
            "execution.refused",
            "script",
            script_id,
            actor_name=actor.system,
            trigger=trigger.value,
            reason=reason,
        )
        await session.commit()
        raise Forbidden(f"{actor.system} may not start script {script_id}: {reason}") from None


def _status_filter(status: str | None) -> ExecutionStatus | None:
    if status is None or status == "":
        return None
    if status in STATUS_ALIASES:
        return STATUS_ALIASES[status]
    try:
        return ExecutionStatus(status)
    except ValueError:
        raise Invalid.input("status", f"must be one of: {', '.join(STATUS_FILTERS)}") from None


@dataclass
class HistoryPage:
    """One page of the history: `rows` newest first; `total` runs match the filters, counted up
    to `execution_counts.COUNT_CAP` (`capped`: more match, `total` is a lower bound);
    `next_cursor` continues after the last row (`history_cursor`), None on the last page;
    `prev_cursor` reads the runs just newer than the first row, None on the newest page."""

    rows: list[Execution]
    total: int
    capped: bool
    next_cursor: str | None
    prev_cursor: str | None = None


async def list_executions(
    session: AsyncSession,
    actor: Actor,
    *,
    script_id: int | None = None,
    status: str | None = None,
    user_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    trigger: str | None = None,
    host: str | None = None,
    host_status: str | None = None,
    skip: int = 0,
    limit: int = 50,
    cursor: str | None = None,
) -> HistoryPage:
    """Executions newest first, from `skip` rows in or on the side of `cursor` it names
    (`history_cursor`: older, or newer for a `prev_cursor`; not both); `host` and `host_status`:
    the Ansible runs whose per-host summary lists that host, ended that way (`host_filter`).
    Raises Invalid (422 naming the field) for a bad filter, cursor or page size."""
    require(actor.user, Permission.view_scripts)
    # The UI passes its address's numbers here unchecked: each must fit the database's integers.
    bounds = {
        "limit": (limit, 1, MAX_PAGE),
        "skip": (skip, 0, MAX_ID),
        "script_id": (script_id, 1, MAX_ID),
        "user_id": (user_id, 1, MAX_ID),
    }
    for field, (value, low, high) in bounds.items():
        if value is not None and not low <= value <= high:
            raise Invalid.input(field, f"must be between {low} and {high}")
    if cursor is not None and skip:
        raise Invalid.input(
            "skip", "must be 0 (or absent) with a cursor: pass either skip or cursor, not both"
        )
    trigger = trigger or None  # `?trigger=` (an emptied filter) is no filter, as `?status=` is
    if trigger is not None and trigger not in Trigger.__members__:
        raise Invalid.input("trigger", f"must be one of: {', '.join(Trigger.__members__)}")
    wanted = _status_filter(status)
    hosts = host_filter.of(host, host_status)
    since, until = instants.time_range(since, until)
    conditions = []
    if script_id is not None:
        conditions.append(col(Execution.script_id) == script_id)
    if wanted is not None:
        conditions.append(await read_as.reading_as(session, col(Execution.status), wanted))
    if user_id is not None:
        conditions.append(col(Execution.triggered_by) == user_id)
    conditions += within(col(Execution.queued_at), since, until)
    if trigger is not None:
        conditions.append(col(Execution.trigger) == trigger)
    # A host's runs are read newest first from its own index (`ExecutionHost`'s copy of queued_at).
    keyset = history_cursor.Keyset(cursor, hosts.order_columns() if hosts else None)
    ids = hosts.ids(joined=bool(conditions)) if hosts else None
    # Each run with its place in the order read (`Keyset.page` makes the cursors of it).
    runs = hosts.runs(*keyset.columns) if hosts else select(Execution, *keyset.columns)
    conditions += hosts.conditions() if hosts else []
    # Counting stops at the cap (or just past this page, for a deep page): COUNT(*) over a
    # million rows would cost more than the page itself. The total ignores the cursor.
    cap = max(execution_counts.COUNT_CAP, skip + limit)
    total, capped = await execution_counts.capped_count(session, conditions, cap, ids)
    found = list(
        (
            await session.exec(
                runs.where(*conditions, *keyset.conditions())
                .order_by(*keyset.order())
                .offset(skip)
                .limit(limit + 1)  # one more tells whether a next page exists
            )
        ).all()
    )
    rows, next_cursor, prev_cursor = keyset.page(found, limit, skipped=skip > 0)
    return HistoryPage(rows, total, capped, next_cursor, prev_cursor)


async def triggering_users(session: AsyncSession, actor: Actor) -> list[tuple[int, str]]:
    """(user id, username) of everyone who has started an execution: the history's user filter."""
    require(actor.user, Permission.view_scripts)
    # One index probe per user (ix_executions_user_queued), not a pass over every run.
    started = select(Execution.id).where(col(Execution.triggered_by) == col(User.id)).exists()
    rows = await session.exec(select(User.id, User.username).where(started))
    return sorted(((int(uid), name) for uid, name in rows.all()), key=lambda u: u[1].lower())


async def get(session: AsyncSession, actor: Actor, execution_id: int) -> Execution:
    """A run by id; needs view_scripts. Raises NotFound (404) for an unknown id (or one outside 1..MAX_ID)."""
    require(actor.user, Permission.view_scripts)
    execution = await session.get(Execution, execution_id) if 1 <= execution_id <= MAX_ID else None
    if execution is None:
        raise NotFound.gone("execution")
    return execution


#: Why a queued run waits when no live worker offers its runner, by runner (`why_queued`).
UNOFFERED = {
    "docker": "Waiting: no live worker offers the Docker runner now (a worker offers it while its Docker "
    "engine answers; the Workers page lists what each one offers). This run starts as soon as one "
    "does; cancel it to give up.",
    "local": "Waiting: no live worker offers the local runner now (a worker offers it while the local "
    "runner is enabled and its --runner allows it; the Workers page lists what each one offers). "
    "This run starts as soon as one does; cancel it to give up.",
}


async def why_queued(session: AsyncSession, actor: Actor, execution: Execution) -> str | None:
    """Why the queued run `execution` has not started: no live worker offers its runner (a
    worker claims only runs of the runners it offers: Docker while its engine answers; the run
    stays queued until one does, `UNOFFERED`), or its script's limit holds it: that script's
    `max_concurrent` runs are running, and a run over the limit waits until one ends
    (execution/store.py). None for a run in any other state, or queued for another reason (a
    worker's free slot, which comes within moments). The offered runners are the execution
    client's (`ExecutionClient.runners`, at most a second old)."""
    require(actor.user, Permission.view_scripts)
    if execution.status != ExecutionStatus.queued:
        return None
    if execution.runner in UNOFFERED and execution.runner not in await _client().runners():
        return UNOFFERED[execution.runner]
    script = await session.get(Script, execution.script_id)
    if script is None or not script.max_concurrent:
        return None
    running = (
        await session.exec(
            select(func.count())
            .select_from(Execution)
            .where(
                col(Execution.script_id) == execution.script_id,
                col(Execution.status) == ExecutionStatus.running,
            )
        )
    ).one()
    if running < script.max_concurrent:
        return None
    at_once = "1 run" if script.max_concurrent == 1 else f"{script.max_concurrent} runs"
    return (
        f"Waiting: this script allows {at_once} at a time (Max concurrent runs) and {running} "
        "running now; this run starts when one of them ends."
    )


async def read_logs(
    session: AsyncSession, actor: Actor, execution_id: int, offset: int = 0, limit: int = MAX_LOG_PAGE
) -> LogPage:
    """Stored output chunks with `seq > offset`, in order: at most `limit` chunks and at most
    `log_pages.PAGE_CHARS` characters (a single larger chunk is a page of its own);
    `next_offset` continues the reading. Raises Invalid for a negative `offset` or a `limit`
    outside 1..MAX_LOG_PAGE, NotFound and Forbidden as `get` does."""
    if offset < 0 or not 1 <= limit <= MAX_LOG_PAGE:
        raise Invalid(f"offset must be >= 0 and limit between 1 and {MAX_LOG_PAGE}")
    execution = await get(session, actor, execution_id)
    final = execution.status in FINAL_STATUSES
    page = await stored_after(session, execution_id, offset, limit)
    return LogPage(
        items=page.chunks,
        next_offset=page.chunks[-1].seq if page.chunks else offset,
        complete=final and not page.more,
        more=page.more,
        output_removed_at=execution.output_removed_at,
    )


def may_cancel(actor: Actor, execution: Execution) -> bool:
    """The user who started the run, or a role allowed to cancel any run."""
    user = actor.user
    if user is None or not user.is_active:
        return False
    return execution.triggered_by == user.id or can(user, Permission.cancel_any_execution)


async def cancel(session: AsyncSession, actor: Actor, execution_id: int) -> Execution:
    """Cancel a queued run (it never starts) or a running one (killed within two seconds; a
    Terraform run gets SIGINT first and up to `terraform_stop_grace_seconds` to stop by itself).

    Raises Conflict when the run has finished, also when it finished between being read and
    being marked (a run that ends as the cancel arrives): the 409 says how it ended, and no
    `execution.cancel` is audited for a cancel that changed nothing.
    """
    execution = await get(session, actor, execution_id)
    if not may_cancel(actor, execution):
        raise Forbidden("only the user who started this execution, an operator or an admin may cancel it")
    if execution.status in FINAL_STATUSES:
        raise Conflict(f"execution {execution_id} has already finished ({execution.status})")
    assert actor.user is not None  # may_cancel
    now = clock.now()  # a run's times are the database's clock, as its worker writes them
    was_waiting = execution.status == ExecutionStatus.awaiting_approval
    queued = await session.exec(
        update(Execution)
        .where(
            col(Execution.id) == execution_id,
            col(Execution.status).in_([ExecutionStatus.queued, ExecutionStatus.awaiting_approval]),
        )
        .values(
            status=ExecutionStatus.cancelled,
            finished_at=now,
            error_message=f"{CANCELLED_BY}{actor.user.username}",
            cancel_requested=True,
            cancelled_by=actor.user.id,
            cancelled_by_name=actor.user.username,
        )
    )
    if queued.rowcount == 1:
        await session.refresh(execution)
        session.add(RunEvent(**finished_event(execution.model_dump())))
        if was_waiting:
            await approvals.close_request(session, execution_id, "cancelled", now)
    else:
        running = await session.exec(
            update(Execution)
            .where(col(Execution.id) == execution_id, col(Execution.status) == ExecutionStatus.running)
            .values(  # the first to ask is the one who cancelled it
                cancel_requested=True,
                cancelled_by=func.coalesce(col(Execution.cancelled_by), actor.user.id),
                cancelled_by_name=func.coalesce(col(Execution.cancelled_by_name), actor.user.username),
            )
        )
        if running.rowcount != 1:  # it ended since it was read: nothing to cancel, nothing to audit
            await session.rollback()
            await session.refresh(execution)
            raise Conflict(f"execution {execution_id} has already finished ({execution.status})")
    audit.record(
        session,
        actor,
        "execution.cancel",
        "execution",
        execution_id,
        was="queued" if queued.rowcount else "running",
    )
    await session.commit()
    await session.refresh(execution)
    if queued.rowcount == 1:
        _client().cancelled_while_queued(execution_id, now)
        dispatcher = runtime.current().run_events
        if dispatcher is not None:
            dispatcher.wake()
    else:
        _client().cancel_running(execution_id)
    return execution


async def dashboard_stats(
    session: AsyncSession, actor: Actor, *, days: int = 7, recent: int = 10, running: int = 8
) -> DashboardStats:
    """Counts by status, what runs now (the `running` latest started; how many in all is
    `counts["running"]`), the `recent` latest runs and the finished runs per day of the last
    `days` UTC days."""
    require(actor.user, Permission.view_scripts)
    counts = await execution_counts.status_counts(session)
    started = await session.exec(
        select(Execution)
        .where(col(Execution.status) == ExecutionStatus.running)
        .order_by(col(Execution.started_at).desc(), col(Execution.id).desc())  # id: ties in one order
        .limit(running)
    )
    latest = await session.exec(
        select(Execution).order_by(col(Execution.queued_at).desc(), col(Execution.id).desc()).limit(recent)
    )
    return DashboardStats(
        counts=counts,
        running=list(started.all()),
        recent=list(latest.all()),
        daily=await _daily_rates(session, days),
    )


async def _daily_rates(session: AsyncSession, days: int) -> list[DailyRate]:
    today = clock.now().date()  # the day runs' ends are stamped in (`db.clock`), not this machine's
    first = today - timedelta(days=days - 1)
    # The day each run reads as finished (`read_time`: on SQLite a value in another form, such as
    # `20261204T100000`, through the reader background comparisons use; SQLite's `date()` read it as NULL
    # and the run fell out of every day); the window stays `within`'s index range.
    day = func.date(read_time(col(Execution.finished_at)))
    rows = await session.exec(
        select(
            day,
            func.count(),
            func.sum(case((col(Execution.status) == ExecutionStatus.success, 1), else_=0)),
        )
        .where(*within(col(Execution.finished_at), datetime(first.year, first.month, first.day), None))
        .group_by(day)
    )
    found = {str(d): (int(total), int(ok or 0)) for d, total, ok in rows.all()}
    return [
        DailyRate(d, *found.get(d.isoformat(), (0, 0)))
        for d in (first + timedelta(days=i) for i in range(days))
    ]


def follow(actor: Actor, execution_id: int, after_seq: int = 0) -> AsyncGenerator[Event, None]:
    """Every event of an execution after `after_seq`: stored output, then live, no gap, no duplicate
    (`ExecutionClient.follow`); nothing when it does not exist. Raises Unauthorized or Forbidden
    at once (before any read) when `actor` may not view executions (the rule of `get`). An id
    no row can have (outside 1..MAX_ID) is not looked up, as in `get`: the database's integer
    would overflow (SQLite raised OverflowError, a WebSocket on /ws/executions/10**20 died)."""
    require(actor.user, Permission.view_scripts)
    if not 1 <= execution_id <= MAX_ID:
        return _nothing()
    return _client().follow(execution_id, after_seq)


async def _nothing() -> AsyncGenerator[Event, None]:
    """An event stream of no events: `follow`'s answer for an execution that does not exist."""
    return
    yield
