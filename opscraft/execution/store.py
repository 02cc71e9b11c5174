"""The worker's database work: register, heartbeat, claim, store output, finish, recover.

Each step is a plain function over a synchronous SQLAlchemy `Connection` in one transaction.
`Store` runs them where it is cheapest: on SQLite, straight in the worker thread on the stdlib
driver (no event loop, no thread hop); on PostgreSQL, on the worker loop through `run_sync`
(asyncpg). Output batches are written in the background (`submit`) so reading output goes on.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import (
    Connection,
    Table,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row, RowMapping

from opscraft.config import DEFAULT_WARM_POOL_SIZE, MAX_WARM_POOL_SIZE, ConfigError, Settings
from opscraft.db import clock, stored_shapes
from opscraft.db.engine import create_sqlite_sync_engine
from opscraft.db.models import (
    AppSetting,
    AuditEvent,
    Execution,
    ExecutionDraft,
    ExecutionHost,
    ExecutionHostSummary,
    ExecutionLog,
    Inventory,
    RegisteredWorker,
    RunEvent,
    Script,
    ScriptSecret,
    ScriptVersion,
)
from opscraft.db.models.executions import CANCELLED_BY, FINAL_STATUSES, ExecutionStatus
from opscraft.db.models.inventories import content_sha256
from opscraft.db.models.scripts import ScriptType
from opscraft.db.models.workers import FINISHED_DETAIL_KEYS, finished_event
from opscraft.db.types import GE, GT, LT, compared, earlier
from opscraft.db.unreachable import is_unreachable
from opscraft.execution import line_breaks, terraform_backend, yaml_keys
from opscraft.execution.ansible_recap import host_rows
from opscraft.execution.events import LogEvent, StatusEvent
from opscraft.execution.loop import WorkerLoop
from opscraft.execution.spec import RunSpec

T = TypeVar("T")

RESTART_MESSAGE = "interrupted by server restart"
# A cancelled run's message when its row names no canceller (cancelled before 0024).
CANCELLED_BY_SOMEONE = CANCELLED_BY + "a user"
LOST_MESSAGE = "worker lost: the worker running it stopped sending heartbeats"
EXECUTIONS = cast(Table, Execution.__table__)
SCRIPTS = cast(Table, Script.__table__)
VERSIONS = cast(Table, ScriptVersion.__table__)
LOGS = cast(Table, ExecutionLog.__table__)
DRAFTS = cast(Table, ExecutionDraft.__table__)
HOST_SUMMARIES = cast(Table, ExecutionHostSummary.__table__)
HOSTS = cast(Table, ExecutionHost.__table__)
SCRIPT_SECRETS = cast(Table, ScriptSecret.__table__)
SETTINGS = cast(Table, AppSetting.__table__)
WORKERS = cast(Table, RegisteredWorker.__table__)
RUN_EVENTS = cast(Table, RunEvent.__table__)
INVENTORIES = cast(Table, Inventory.__table__)
AUDIT = cast(Table, AuditEvent.__table__)
_E, _S, _V, _W = EXECUTIONS.c, SCRIPTS.c, VERSIONS.c, WORKERS.c
# What a final-state UPDATE returns: enough for the final event and the run event (outbox).
# The ended run's columns `finish` reads: its final event's, and its script's concurrency limit
# (`max_concurrent`: only a script with one may have a run waiting, held back).
_FINAL_COLUMNS = [
    _E.id,
    _E.status,
    _E.started_at,
    _E.finished_at,
    *(_E[key] for key in FINISHED_DETAIL_KEYS),
    select(SCRIPTS.c.max_concurrent)
    .where(SCRIPTS.c.id == _E.script_id)
    .scalar_subquery()
    .label("max_concurrent"),
]

log = logging.getLogger(__name__)


class Store:
    """Runs the steps below in one transaction each (see the module docstring)."""

    def __init__(self, settings: Settings, loop: WorkerLoop) -> None:
        self._loop = loop
        self._sync = (
            create_sqlite_sync_engine(settings.effective_database_url, pool_size=settings.workers + 2)
            if settings.is_sqlite
            else None
        )
        self._writer = ThreadPoolExecutor(1, "opscraft-store") if self._sync else None

    def run(self, step: Callable[..., T], *args: Any) -> T:
        """Run `step(connection, *args)` in one transaction and return its result."""
        if self._sync is not None:
            with self._sync.begin() as conn:
                return step(conn, *args)
        return self._loop.run(self._run_async(step, *args))

    def submit(self, step: Callable[..., T], *args: Any) -> Future[T]:
        """Like `run`, without waiting; steps submitted one after another commit in order."""
        if self._writer is not None:
            return self._writer.submit(self.run, step, *args)
        return self._loop.submit(self._run_async(step, *args))

    async def _run_async(self, step: Callable[..., T], *args: Any) -> T:
        async with self._loop.db.engine.begin() as conn:
            return await conn.run_sync(step, *args)

    def close(self) -> None:
        """Shut down the background writer and dispose the synchronous engine."""
        if self._writer is not None:
            self._writer.shutdown()
        if self._sync is not None:
            self._sync.dispose()


class HeldBack(Exception):
    """The script runs its maximum number of times: this run stays `queued` until one ends
    (`finish` then names it to be enqueued again)."""


@dataclass(frozen=True)
class Claim:
    """A run this worker now owns (`running`); `error` set means it cannot start and must end so."""

    execution_id: int
    runner: str
    script_id: int
    started_at: datetime
    cancel_requested: bool
    has_secrets: bool = False
    spec: RunSpec | None = None
    error: str | None = None
    columns: dict[str, Any] = field(default_factory=dict)
    """The run's columns as the claim set them (`status`, `worker_id`, `started_at`, `image`,
    and a shared inventory's `inventory_id`, `inventory_sha256`), for whoever holds its row."""


# Statements are built once: building one costs more than running it.
_QUEUED, _RUNNING = ExecutionStatus.queued.value, ExecutionStatus.running.value
_CLAIM_VALUES = {
    "status": _RUNNING,
    "worker_id": bindparam("wid"),
    "started_at": bindparam("now", type_=_E.started_at.type),
    "image": case(
        (
            _E.runner == "docker",
            case({t.value: bindparam(f"image_{t.value}") for t in ScriptType}, value=_E.script_type),
        ),
        else_=None,
    ),
}
_CLAIM_RETURNING = (
    _E.script_id,
    _E.script_version,
    _E.runner,
    _E.parameters,
    _E.terraform_action,
    _E.terraform_workspace,
    _E.run_options,
    _E.cancel_requested,
    _E.image,
    _E.draft,
    _E.script_type,
)
_CLAIM = (
    update(EXECUTIONS)
    .where(_E.id == bindparam("eid"), _E.status == _QUEUED)
    .values(_CLAIM_VALUES)
    .returning(*_CLAIM_RETURNING)
)
# Several runs at once (`claim_batch`): only those of scripts without a concurrency limit.
_CLAIM_BATCH = (
    update(EXECUTIONS)
    .where(
        _E.id.in_(bindparam("eids", expanding=True)),
        _E.status == _QUEUED,
        ~exists().where(_S.id == _E.script_id, _S.max_concurrent.is_not(None)),
    )
    .values(_CLAIM_VALUES)
    .returning(_E.id, *_CLAIM_RETURNING)
)
# A worker claims only runs of the runners it offers now (`Worker.claimable`: `--runner`, its
# Docker engine answering).
_RUN_FOR_RUNNERS = _E.runner.in_(bindparam("runners", expanding=True))
_CLAIM_FOR_RUNNERS = _CLAIM.where(_RUN_FOR_RUNNERS)
_CLAIM_BATCH_FOR_RUNNERS = _CLAIM_BATCH.where(_RUN_FOR_RUNNERS)
_DRAFT_CONTENT = select(DRAFTS.c.content).where(DRAFTS.c.execution_id == bindparam("eid"))
_SCRIPT = (
    select(
        _S.max_concurrent,
        _V.script_type,
        _V.content,
        _V.run_settings,
        exists().where(SCRIPT_SECRETS.c.script_id == bindparam("sid")).label("has_secrets"),
    )
    .select_from(SCRIPTS)
    .outerjoin(VERSIONS, and_(_V.script_id == _S.id, _V.number == bindparam("number")))
    .where(_S.id == bindparam("sid"))
)
_LOCK_SCRIPT = select(_S.id).where(_S.id == bindparam("sid")).with_for_update()
_COUNT_RUNNING = (
    select(func.count())
    .select_from(EXECUTIONS)
    .where(_E.script_id == bindparam("sid"), _E.status == _RUNNING)
)
_INVENTORY = select(INVENTORIES.c.content).where(INVENTORIES.c.id == bindparam("iid"))
# The name a deleted inventory had, from its deletion's audit event (services/shared_inventories.py).
_DELETED_INVENTORY_NAME = (
    select(AUDIT.c.details)
    .where(
        AUDIT.c.action == "inventory.delete",
        AUDIT.c.target_type == "inventory",
        AUDIT.c.target_id == bindparam("iid"),
    )
    .order_by(AUDIT.c.id.desc())
    .limit(1)
)
_RECORD_INVENTORY = (
    update(EXECUTIONS)
    .where(_E.id == bindparam("eid"))
    .values(inventory_id=bindparam("iid"), inventory_sha256=bindparam("sha"))
)
_LOCAL_ALLOWED = select(SETTINGS.c.value).where(SETTINGS.c.key == "local_runner_enabled")
_WARM_POOL_SIZE = select(SETTINGS.c.value).where(SETTINGS.c.key == "warm_pool_size")
# A batch written again after the database dropped the connection may have been committed
# before the drop: its chunks already stored are skipped (the unique (execution_id, seq) index).
_INSERT_LOGS = {
    "postgresql": postgresql.insert(LOGS).on_conflict_do_nothing(index_elements=["execution_id", "seq"]),
    "sqlite": sqlite.insert(LOGS).on_conflict_do_nothing(index_elements=["execution_id", "seq"]),
}
_OUTPUT_BYTES = (
    update(EXECUTIONS)
    .where(_E.id == bindparam("eid"))
    .values(output_bytes=bindparam("size"), output_stored_bytes=bindparam("stored"))
)
_FINISH = (
    update(EXECUTIONS)
    .where(_E.id == bindparam("eid"), _E.status == _RUNNING)
    .values(
        status=bindparam("status", type_=_E.status.type),
        exit_code=bindparam("exit_code", type_=_E.exit_code.type),
        error_message=bindparam("error_message", type_=_E.error_message.type),
        output_bytes=bindparam("output_bytes"),
        output_truncated=bindparam("output_truncated", type_=_E.output_truncated.type),
        output_stored_bytes=bindparam("output_stored_bytes", type_=_E.output_stored_bytes.type),
        finished_at=bindparam("now", type_=_E.finished_at.type),
    )
    .returning(*_FINAL_COLUMNS)
)
# A cancelled run names who cancelled it (`cancelled_by_name`, set by the cancel request).
_FINISH_CANCELLED = _FINISH.values(
    error_message=func.coalesce(
        literal(CANCELLED_BY) + _E.cancelled_by_name, bindparam("error_message", type_=_E.error_message.type)
    )
)
_INSERT_RUN_EVENTS = insert(RUN_EVENTS)
# A summary's host rows, each with its run's `queued_at` (the history's order, `ExecutionHost`).
_INSERT_HOSTS = insert(HOSTS).values(
    execution_id=bindparam("eid"),
    queued_at=select(_E.queued_at).where(_E.id == bindparam("eid")).scalar_subquery(),
)
_NEXT_WAITING = (
    select(_E.id)
    .join(SCRIPTS, _S.id == _E.script_id)
    .where(_E.script_id == bindparam("sid"), _E.status == _QUEUED, _S.max_concurrent.is_not(None))
    .order_by(_E.queued_at, _E.id)
    .limit(1)
)


def claim(
    conn: Connection,
    settings: Settings,
    worker_id: str,
    execution_id: int,
    runners: frozenset[str] | None = None,
    script: Row[Any] | None = None,
) -> Claim | None:
    """`queued -> running` for worker `worker_id` in one conditional UPDATE, honouring the
    script's concurrency limit and, when `runners` is given, only for a run of one of them.
    `script`: the run's script version as `script_version` read it in this transaction, when
    the caller has (it is then not read again).

    None when the run is not (or no longer) queued, or is for another runner. Raises `HeldBack`
    (which rolls the claim back) when the script already runs its maximum number of times.
    """
    now = clock.now()
    values = {"eid": execution_id, **_claim_values(settings, worker_id, now)}
    if runners is None:
        row = conn.execute(_CLAIM, values).first()
    else:
        row = conn.execute(_CLAIM_FOR_RUNNERS, {**values, "runners": sorted(runners)}).first()
    if row is None:
        return None
    if script is None:
        script = script_version(conn, row.script_id, row.script_version)
    if script.max_concurrent and _over_limit(conn, row.script_id, script.max_concurrent):
        raise HeldBack
    return _claimed(conn, settings, worker_id, execution_id, now, row, script)


def script_version(conn: Connection, script_id: int, number: int) -> Row[Any]:
    """What a claim reads of a run's script (`_SCRIPT`): its concurrency limit (`max_concurrent`),
    and of version `number` the type, content and run settings (None when that version is
    gone), and whether secrets are attached (`has_secrets`)."""
    return conn.execute(_SCRIPT, {"sid": script_id, "number": number}).one()


def claim_batch(
    conn: Connection,
    settings: Settings,
    worker_id: str,
    execution_ids: list[int],
    runners: frozenset[str] | None = None,
) -> list[Claim]:
    """`claim` of several runs in one conditional UPDATE (a burst's queue, `Executor`): those of
    `execution_ids` still `queued` whose scripts have no concurrency limit (and, when `runners`
    is given, for one of them) become `running` for worker `worker_id`, each exactly once as
    with `claim`; their claims, in the order of `execution_ids`. The others (no longer queued,
    of a limited script, which `claim` weighs one by one, or for another runner) are left as
    they are, for `claim`."""
    now = clock.now()
    values: dict[str, Any] = {"eids": execution_ids, **_claim_values(settings, worker_id, now)}
    if runners is None:
        rows = {int(row.id): row for row in conn.execute(_CLAIM_BATCH, values)}
    else:
        values["runners"] = sorted(runners)
        rows = {int(row.id): row for row in conn.execute(_CLAIM_BATCH_FOR_RUNNERS, values)}
    scripts: dict[tuple[int, int], Any] = {}
    claims = []
    for execution_id in execution_ids:
        row = rows.get(execution_id)
        if row is None:
            continue
        key = (row.script_id, row.script_version)
        if key not in scripts:
            scripts[key] = script_version(conn, row.script_id, row.script_version)
        claims.append(_claimed(conn, settings, worker_id, execution_id, now, row, scripts[key]))
    return claims


def _claim_values(settings: Settings, worker_id: str, now: datetime) -> dict[str, Any]:
    """The bound values a claim's UPDATE sets (`_CLAIM_VALUES`), besides the runs' ids."""
    images = {f"image_{t.value}": settings.image_for(t.value) for t in ScriptType}
    return {"wid": worker_id, "now": now, **images}


def _claimed(
    conn: Connection,
    settings: Settings,
    worker_id: str,
    execution_id: int,
    now: datetime,
    row: Any,
    script: Any,
) -> Claim:
    """The claim of run `execution_id`, just set `running` at `now` (`row`: what the claim's
    UPDATE returned; `script`: its script version's `_SCRIPT` row): what it runs, or why it
    cannot start."""
    columns: dict[str, Any] = {"status": ExecutionStatus.running, "worker_id": worker_id}
    columns.update(started_at=now, image=row.image)
    base = Claim(
        execution_id,
        str(row.runner),
        row.script_id,
        now,
        row.cancel_requested,
        script.has_secrets,
        columns=columns,
    )
    # A test run (services/draft_runs.py) runs its stored content, of its own type.
    content = conn.execute(_DRAFT_CONTENT, {"eid": execution_id}).scalar() if row.draft else script.content
    if content is None:
        gone = "the content of this test run" if row.draft else f"version {row.script_version} of the script"
        return replace(base, error=f"{gone} no longer exists")
    unread = _unread(row, script)
    if unread is not None:
        return replace(base, error=unread)
    script_type = row.script_type if row.draft else script.script_type
    # Only a stored JSON `true` allows it: the settings read any other value (an older version's
    # or a manual edit's text "false", a number) as off (services/app_settings.py).
    # Read only when it decides: a claim's statement budget (tests/executions/test_statement_budget.py).
    local_off_in_config = row.runner == "local" and not settings.local_runner
    if local_off_in_config and conn.execute(_LOCAL_ALLOWED).scalar() is not True:
        return replace(base, error="the local runner was disabled by an admin after this run was queued")
    run: dict[str, Any] = script.run_settings or {}
    inventory = run.get("inventory")
    if run.get("inventory_id"):
        # A shared inventory: its content as of now (the run's start), recorded by its hash.
        inventory = conn.execute(_INVENTORY, {"iid": run["inventory_id"]}).scalar()
        if inventory is None:
            return replace(base, error=_inventory_gone(conn, int(run["inventory_id"])))
        sha = content_sha256(inventory)
        conn.execute(_RECORD_INVENTORY, {"eid": execution_id, "iid": run["inventory_id"], "sha": sha})
        columns.update(inventory_id=run["inventory_id"], inventory_sha256=sha)
    hidden = _hidden_break(script_type, content, inventory, run.get("inventory_id"))
    if hidden is None and script_type == ScriptType.ansible:
        hidden = next(iter(yaml_keys.run_refusals(content, inventory, bool(run.get("inventory_id")))), None)
    if hidden is not None:
        return replace(base, error=hidden)
    backend: dict[str, str] = {}
    if script_type == ScriptType.terraform and settings.state_backend_url and settings.secret_key:
        workspace = row.terraform_workspace or terraform_backend.DEFAULT_WORKSPACE
        scope = terraform_backend.Scope(execution_id, row.script_id, workspace, now)
        backend = terraform_backend.env(settings.state_backend_url, scope, settings.secret_key)
    spec = RunSpec(
        execution_id=execution_id,
        script_type=str(script_type),
        content=content,
        parameters=dict(row.parameters),
        env=backend,  # the backend password is a secret: it travels like one
        secret_values=[backend["TF_HTTP_PASSWORD"]] if backend else [],
        timeout_seconds=min(int(run.get("timeout_seconds", 3600)), settings.max_timeout_seconds),
        memory_mb=int(run.get("memory_mb", 512)),
        cpus=float(run.get("cpus", 0.5)),
        network_enabled=bool(run.get("network_enabled", False)),
        image=row.image,
        terraform_action=row.terraform_action,
        inventory=inventory,
        ssh_user=run.get("ssh_user"),
        ssh_key_secret=run.get("ssh_key_secret"),
        run_options=dict(row.run_options or {}),
        ssh_keepalive_seconds=settings.ssh_keepalive_seconds,
        lock_timeout_seconds=settings.terraform_lock_timeout_seconds,
        stop_grace_seconds=(
            settings.terraform_stop_grace_seconds if script_type == ScriptType.terraform else 0
        ),
        collect=terraform_backend.collected(row.terraform_action, bool(row.draft), bool(backend)),
    )
    return replace(base, spec=spec)


def _hidden_break(script_type: str, content: str, inventory: str | None, inventory_id: Any) -> str | None:
    """Why a run cannot start when its playbook or inventory holds a line break that Ansible reads
    and the page does not show (`line_breaks`): a text stored before saves refused (inventories)
    or converted (playbooks) them. Every kind of run is refused the same way, at its claim (API,
    schedule, webhook, chain). None when there is none, and for other script types."""
    if script_type != ScriptType.ansible:
        return None
    found = line_breaks.hidden(content, line_breaks.YAML_BREAKS)
    if found is not None:
        return (
            f"the playbook cannot run: {found}, which Ansible reads as a line break while the editor "
            "shows one line: save the script again (a save converts it to a line break)"
        )
    found = line_breaks.hidden(inventory) if inventory else None
    if found is None:
        return None
    which = f"the shared inventory (id {inventory_id})" if inventory_id else "the script's inventory"
    return (
        f"{which} cannot be used: {found}, which Ansible reads as a line break while the text shows "
        "one line (a host after it would be targeted unseen): write a line break instead"
    )


def _unread(row: Any, script: Any) -> str | None:
    """Why claimed run `row` (what the claim's UPDATE returned) of `script` (its version's
    `_SCRIPT` row) cannot start: a column the claim reads holds a value stored in another shape
    (a manual edit: db/stored_shapes.py), which made the claim raise or run a guess. A test run
    has its own type. None when every one reads."""
    run = stored_shapes.read(Execution, {"parameters": row.parameters, "run_options": row.run_options})[1]
    if run:
        return f"the run's stored settings cannot be read: {stored_shapes.worded(run)}"
    stored = {"run_settings": script.run_settings} | (
        {} if row.draft else {"script_type": script.script_type}
    )
    version = stored_shapes.read(ScriptVersion, stored)[1]
    if version:
        said = stored_shapes.worded(version)
        return f"version {row.script_version} of the script cannot be read: {said}: edit the script"
    return None


def _inventory_gone(conn: Connection, inventory_id: int) -> str:
    """Why a run whose shared inventory was deleted after it was queued cannot start, naming it."""
    details = conn.execute(_DELETED_INVENTORY_NAME, {"iid": str(inventory_id)}).scalar()
    name = details.get("name") if isinstance(details, dict) else None
    shown = f"{name} (id {inventory_id})" if name else f"id {inventory_id}"
    return (
        f"the shared inventory {shown} that this run's script version uses was deleted after the run "
        "was queued: choose another inventory for the script and run it again"
    )


_QUEUED_RUNNER = select(_E.runner).where(_E.id == bindparam("eid"), _E.status == _QUEUED)


def waiting_for(
    conn: Connection, execution_id: int, worker_id: str, since: datetime
) -> tuple[str | None, bool]:
    """(the runner of run `execution_id` while it is `queued`, else None; whether a worker other
    than `worker_id` that heartbeated after `since` and did not stop offers that runner,
    `workers.runners`)."""
    runner = conn.execute(_QUEUED_RUNNER, {"eid": execution_id}).scalar()
    if runner is None:
        return None, False
    runner = str(runner)
    live = select(_W.runners).where(
        _W.id != worker_id, _W.stopped_at.is_(None), compared(_W.heartbeat_at, GT, since)
    )
    offered = conn.execute(live).scalars()
    return runner, any(isinstance(runners, list) and runner in runners for runners in offered)


def _over_limit(conn: Connection, script_id: int, max_concurrent: int) -> bool:
    """Count this script's runs with ours included, after locking the script row (PostgreSQL:
    concurrent claims of one script queue up here; SQLite already holds the write lock)."""
    conn.execute(_LOCK_SCRIPT, {"sid": script_id})
    return int(conn.execute(_COUNT_RUNNING, {"sid": script_id}).scalar_one()) > max_concurrent


def store_logs(
    conn: Connection, execution_id: int, events: list[LogEvent], output_bytes: int, stored_bytes: int
) -> None:
    """Append a batch of output chunks, each with the time it was produced (`LogEvent.at`: a
    watcher stamps a line with one time, live or read back; those already stored are skipped),
    and the running byte counts: written, and taken by the chunks stored so far (so a run its
    worker never finishes still counts its stored output in retention's size cap)."""
    now = clock.now()
    conn.execute(
        _INSERT_LOGS[conn.dialect.name],
        [
            {
                "execution_id": execution_id,
                "seq": e.seq,
                "stream": e.stream,
                "content": e.content,
                "created_at": e.at or now,
            }
            for e in events
        ],
    )
    conn.execute(_OUTPUT_BYTES, {"eid": execution_id, "size": output_bytes, "stored": stored_bytes})


@dataclass(frozen=True)
class Finish:
    """The final state of a run, written once by `finish`."""

    status: ExecutionStatus
    exit_code: int | None = None
    error_message: str | None = None
    output_bytes: int = 0
    output_truncated: bool = False
    output_stored_bytes: int = 0
    logs: tuple[LogEvent, ...] = ()
    """The run's last output chunks, not stored yet (`OutputPipeline.close(keep_tail=True)`):
    stored with the final state, in its transaction."""
    host_summary: dict[str, Any] | None = None
    """An Ansible run's per-host summary (`ansible_recap.summary`), written with the final state."""


def finish(conn: Connection, ends: list[tuple[int, Finish]]) -> list[tuple[StatusEvent, int | None]]:
    """Write the final state of each (execution id, end) of `ends` once, with its run event, in
    the caller's one transaction (`finisher.py`); returns, in the same order, each run's final
    event and a waiting run of its script that a concurrency limit held back (to enqueue
    again), if any. The ends' last output chunks (`Finish.logs`) are inserted first, all in
    one INSERT (those already stored are skipped), so a run is never seen ended without them.
    An Ansible run's per-host summary (`Finish.host_summary`) is inserted with its end, all the
    batch's in one INSERT, for the runs this call ended, and its hosts' rows (`ExecutionHost`,
    what the history's host filter reads) in one more.

    One UPDATE per run, one INSERT of the run events of them all and one look for a waiting run
    per script with a concurrency limit (the UPDATE returns the limit; runs of one script ending
    together find the same one, as they did one after the other: it is claimed once). A run
    another process already ended (its worker was declared lost meanwhile) keeps that end: the
    event returned is the stored one and no second run event is written."""
    now = clock.now()
    chunks = [
        {"execution_id": i, "seq": e.seq, "stream": e.stream, "content": e.content, "created_at": e.at or now}
        for i, result in ends
        for e in result.logs
    ]
    if chunks:
        conn.execute(_INSERT_LOGS[conn.dialect.name], chunks)
    rows, events, summaries, hosts = [], [], [], []
    for execution_id, result in ends:
        row = conn.execute(
            _FINISH_CANCELLED if result.status == ExecutionStatus.cancelled else _FINISH,
            {
                "eid": execution_id,
                "status": result.status,
                "exit_code": result.exit_code,
                "error_message": result.error_message,
                "output_bytes": result.output_bytes,
                "output_truncated": result.output_truncated,
                "output_stored_bytes": result.output_stored_bytes,
                "now": now,
            },
        ).first()
        if row is None:
            row = conn.execute(select(*_FINAL_COLUMNS).where(_E.id == execution_id)).one()
        else:
            events.append(finished_event(row._mapping))
            if result.host_summary is not None:
                summaries.append({"execution_id": execution_id, **result.host_summary})
                hosts += [{"eid": execution_id, **h} for h in host_rows(result.host_summary["hosts"])]
        rows.append(row)
    if events:
        conn.execute(_INSERT_RUN_EVENTS, events)
    if summaries:
        conn.execute(insert(HOST_SUMMARIES), summaries)
    if hosts:
        conn.execute(_INSERT_HOSTS, hosts)
    waiting: dict[int, int | None] = {}
    for row in rows:
        if row.script_id not in waiting:
            limited = row.max_concurrent is not None  # else none waits: a statement less per run
            waiting[row.script_id] = (
                conn.execute(_NEXT_WAITING, {"sid": row.script_id}).scalar() if limited else None
            )
    return [
        (
            StatusEvent(
                status=row.status,
                final=True,
                exit_code=row.exit_code,
                error_message=row.error_message,
                started_at=row.started_at,
                finished_at=row.finished_at,
            ),
            waiting[row.script_id],
        )
        for row in rows
    ]


_OTHER = EXECUTIONS.alias("other")
_RUNNING_OF_SCRIPT = (
    select(func.count())
    .where(_OTHER.c.script_id == _E.script_id, _OTHER.c.status == _RUNNING)
    .scalar_subquery()
)
_STALLED = (
    select(func.min(_E.id))
    .select_from(EXECUTIONS.join(SCRIPTS, _S.id == _E.script_id))
    .where(
        _E.status == _QUEUED,
        earlier(_E.queued_at, bindparam("before", type_=_E.queued_at.type)),
    )
    .group_by(_E.script_id, _S.max_concurrent)
    .having(or_(_S.max_concurrent.is_(None), _S.max_concurrent > _RUNNING_OF_SCRIPT))
)


def stalled(conn: Connection, before: datetime) -> list[int]:
    """Per script, the oldest run queued before `before` that could start now: a run held back
    by a concurrency limit that was since raised or removed, or whose release was missed."""
    return [int(i) for i in conn.execute(_STALLED, {"before": before}).scalars()]


def _end_runs(conn: Connection, where: Any, message: str) -> list[RowMapping]:
    """`running` -> `error` with `message` for the runs matching `where`, with their run events,
    in the caller's transaction; the status condition makes each run end exactly once. A run
    whose cancel was requested (its worker died before the cancel reached it: the sweep of a lost
    or restarted worker stops its script) ends `cancelled` by whoever asked, as a cancel that
    landed does: it ended `error` ("worker lost"), which notification rules on errors reported."""
    asked = _E.cancel_requested.is_(True)
    status = case(
        (asked, literal(ExecutionStatus.cancelled.value, _E.status.type)),
        else_=literal(ExecutionStatus.error.value, _E.status.type),
    )
    cancelled = func.coalesce(literal(CANCELLED_BY) + _E.cancelled_by_name, CANCELLED_BY_SOMEONE)
    error_message = case((asked, cancelled), else_=literal(message, _E.error_message.type))
    rows = (
        conn.execute(
            update(EXECUTIONS)
            .where(_E.status == _RUNNING, where)
            .values(status=status, error_message=error_message, finished_at=clock.now())
            .returning(*_FINAL_COLUMNS)
        )
        .mappings()
        .all()
    )
    if rows:
        conn.execute(_INSERT_RUN_EVENTS, [finished_event(row) for row in rows])
    return list(rows)


def recover(conn: Connection, worker_id: str) -> tuple[int, list[int]]:
    """After a crash of this worker: its own `running` runs (and any from before workers had ids)
    -> `error` (output kept). Returns that count and every queued id, oldest first."""
    mine = or_(_E.worker_id == worker_id, _E.worker_id.is_(None))
    interrupted = _end_runs(conn, mine, RESTART_MESSAGE)
    return len(interrupted), queued(conn)


_ALL_QUEUED = select(_E.id).where(_E.status == _QUEUED).order_by(_E.queued_at, _E.id)


def queued(conn: Connection) -> list[int]:
    """Every `queued` run, oldest first: what the job queue must hold after it lost its jobs."""
    return [int(i) for i in conn.execute(_ALL_QUEUED).scalars()]


def queued_for(conn: Connection, runners: list[str]) -> list[int]:
    """Every `queued` run of one of `runners`, oldest first: the runs a worker that just came to
    offer them enqueues (`Worker.release_waiting`)."""
    query = _ALL_QUEUED.where(_E.runner.in_(runners))
    return [int(i) for i in conn.execute(query).scalars()]


@dataclass(frozen=True)
class WorkerInfo:
    """What a worker says about itself in `workers`."""

    worker_id: str
    host_name: str
    pid: int
    slots: int
    process_key: str | None = None  # `liveness.process_key()`


class WorkerIdInUse(ConfigError):
    """Another live worker process holds the id a worker is starting under (`register`)."""


def _process_gone(pid: int) -> bool:
    """Whether no process `pid` runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _check_id_free(conn: Connection, worker: WorkerInfo, live_since: datetime) -> None:
    """`WorkerIdInUse` when `worker.worker_id` belongs to a live worker (not stopped, heartbeat
    after `live_since`) that is another process: on another host, or on this one and still
    running. A restart of the same process, or of one that died on this host, may take it."""
    holder = conn.execute(
        select(_W.host_name, _W.pid, _W.heartbeat_at)
        .where(_W.id == worker.worker_id, _W.stopped_at.is_(None), compared(_W.heartbeat_at, GT, live_since))
        .with_for_update()
    ).first()
    if holder is None:
        return
    host, pid, heartbeat_at = holder
    if host == worker.host_name and (pid == worker.pid or _process_gone(pid)):
        return
    seconds = max(0, round((clock.now() - heartbeat_at).total_seconds()))
    raise WorkerIdInUse(
        f"worker id {worker.worker_id!r} is in use by a live worker on {host} (pid {pid}, last "
        f"heartbeat {seconds} s ago): give this worker another --name (or OPSCRAFT_WORKER_ID), "
        "or stop that one first; a killed worker's id is free once it is declared lost "
        "(OPSCRAFT_WORKER_LOST_SECONDS)"
    )


def register(
    conn: Connection,
    worker: WorkerInfo,
    runners: list[str],
    warm_pool: dict[str, Any] | None = None,
    live_since: datetime | None = None,
) -> None:
    """Insert or refresh this worker's row (a restart keeps its id and history); `warm_pool` as
    in `heartbeat`. With `live_since` (a worker starting), `WorkerIdInUse` when another live
    process holds the id (`_check_id_free`): the start would otherwise end that worker's
    running runs as interrupted and remove its containers, taking them for its own leftovers."""
    clock.measure(conn)
    if live_since is not None:
        _check_id_free(conn, worker, live_since)
    now = clock.now()
    values = {
        "host_name": worker.host_name,
        "pid": worker.pid,
        "slots": worker.slots,
        "process_key": worker.process_key,
        "runners": runners,
        "warm_pool": warm_pool,
        "started_at": now,
        "heartbeat_at": now,
        "stopped_at": None,
        "lost": False,
    }
    updated = conn.execute(update(WORKERS).where(_W.id == worker.worker_id).values(**values)).rowcount
    if not updated:
        conn.execute(insert(WORKERS).values(id=worker.worker_id, **values))


def heartbeat(
    conn: Connection,
    worker_id: str,
    runners: list[str],
    warm_pool: dict[str, Any] | None = None,
    queue_error: str | None = None,
) -> None:
    """This worker is alive, offers `runners`, has these warm containers (`WarmPool.stats()`) and
    its consumers cannot read the job queue because of `queue_error` (None: they can). Written in
    the database's clock, measured again here (`db.clock`)."""
    clock.measure(conn)
    conn.execute(
        update(WORKERS)
        .where(_W.id == worker_id)
        .values(
            heartbeat_at=clock.now(),
            runners=runners,
            stopped_at=None,
            lost=False,
            warm_pool=warm_pool,
            queue_error=queue_error,
        )
    )


def local_enabled(conn: Connection) -> bool:
    """Whether an admin enabled the local runner (the `local_runner_enabled` setting): only a
    stored JSON `true` does (services/app_settings.py)."""
    return conn.execute(_LOCAL_ALLOWED).scalar() is True


def offer(conn: Connection, worker_id: str, runners: list[str]) -> None:
    """Worker `worker_id` offers `runners` from now on (between its heartbeats)."""
    conn.execute(update(WORKERS).where(_W.id == worker_id).values(runners=runners))


def warm_pool_size(conn: Connection) -> int:
    """The `warm_pool_size` setting an admin chose (services/app_settings.py keeps it within
    0..MAX_WARM_POOL_SIZE), else `DEFAULT_WARM_POOL_SIZE`: also for a stored row that is no whole
    number in that range (an older version's or a manual edit's `"x"`, which stopped the worker,
    and with it the server, from starting), as the settings page reads and names it."""
    stored = conn.execute(_WARM_POOL_SIZE).scalar()
    if type(stored) is int and 0 <= stored <= MAX_WARM_POOL_SIZE:
        return stored
    if stored is not None:
        said = "setting warm_pool_size: the stored value %r is not read: %d is used"
        log.warning(said, stored, DEFAULT_WARM_POOL_SIZE)
    return DEFAULT_WARM_POOL_SIZE


def deregister(conn: Connection, worker_id: str) -> None:
    """This worker stopped cleanly: it offers nothing any more."""
    conn.execute(update(WORKERS).where(_W.id == worker_id).values(stopped_at=clock.now(), runners=[]))


def live_workers(conn: Connection, since: datetime) -> list[str]:
    """Ids of the workers that heartbeated after `since` and did not stop."""
    query = select(_W.id).where(_W.stopped_at.is_(None), compared(_W.heartbeat_at, GT, since))
    return [str(i) for i in conn.execute(query).scalars()]


class LossWatch:
    """Whether this process has watched the database long enough to call `end_lost`.

    A stale heartbeat proves a worker dead only if the database could have received a newer
    one: after an outage (PostgreSQL restarting, a network cut) every worker's heartbeat is as
    old as the outage, and the first process to reach the database again used to declare all
    the others lost, ending their runs and killing their scripts. So a process judges only once
    the database has answered it without a break for `lost_seconds`
    (OPSCRAFT_WORKER_LOST_SECONDS, at least two heartbeats: every live worker has heartbeated
    since), counted from its start and again from the end of each outage it saw. Its checks
    touch the database at least every heartbeat period, so an outage it does not see is shorter
    than one period, and delays heartbeats by less than `lost_seconds`.
    """

    def __init__(self, lost_seconds: float) -> None:
        self._lost_seconds = lost_seconds
        self._answering_since: float | None = time.monotonic()

    def failed(self, exc: BaseException) -> None:
        """A round of this process's database work raised `exc`: an unreachable database
        (`db.unreachable.is_unreachable`) starts the count again once it answers."""
        if is_unreachable(exc):
            self._answering_since = None

    def answered(self) -> None:
        """A round of this process's database work succeeded."""
        if self._answering_since is None:
            self._answering_since = time.monotonic()

    def may_judge(self) -> bool:
        """Whether the database has answered for `lost_seconds` without a break."""
        since = self._answering_since
        return since is not None and time.monotonic() - since >= self._lost_seconds


def end_lost(conn: Connection, worker_id: str, stale_before: datetime) -> tuple[list[str], list[int]]:
    """Runs of workers whose last heartbeat is older than `stale_before` -> `error` ("worker
    lost"), once (a conditional UPDATE: any number of live processes may call this together);
    those workers are marked stopped and `lost` (the Workers panel tells them from clean
    stops). `worker_id` (the caller) is never lost. Only reads when no worker is lost (the usual
    case), so it takes no write lock then. Returns (the workers found lost, the runs this call
    ended)."""
    lost = [
        str(i)
        for i in conn.execute(
            select(_W.id).where(
                _W.stopped_at.is_(None), compared(_W.heartbeat_at, LT, stale_before), _W.id != worker_id
            )
        ).scalars()
    ]
    if not lost:
        return [], []
    ended = _end_runs(conn, _E.worker_id.in_(lost), LOST_MESSAGE)
    conn.execute(
        update(WORKERS)
        .where(_W.id.in_(lost), _W.stopped_at.is_(None), compared(_W.heartbeat_at, LT, stale_before))
        .values(stopped_at=clock.now(), lost=True)
    )
    return lost, [int(row["id"]) for row in ended]


def end_dead(
    conn: Connection, process_key: str, silent_before: datetime, gone: Callable[[str | None, int], bool]
) -> tuple[list[str], list[int]]:
    """Declare lost at once, as `end_lost` does after OPSCRAFT_WORKER_LOST_SECONDS, the workers
    that hold a run whose cancel was requested, whose heartbeat is older than `silent_before`
    (they missed heartbeats), whose process runs under `process_key` (this caller's machine and
    PID namespace, `liveness.process_key`) and whose pid `gone(process_key, pid)` proves ended
    (`liveness.proven_gone`): their cancelled runs end `cancelled`, any other run of theirs
    `error` ("worker lost"), and every worker's sweep stops what they left. A worker that is
    only slow keeps its pid, so nothing of it is ended: it kills its cancelled run itself when
    it reads the cancel. Each worker row is updated on the condition it was read under (same pid,
    still silent), so one that restarted meanwhile is left alone. Returns (the workers declared
    lost, the runs this call ended)."""
    silent = conn.execute(
        select(_W.id, _W.pid)
        .where(
            _W.stopped_at.is_(None),
            _W.process_key == process_key,
            compared(_W.heartbeat_at, LT, silent_before),
            _W.id.in_(select(_E.worker_id).where(_E.status == _RUNNING, _E.cancel_requested.is_(True))),
        )
        .with_for_update()
    ).all()
    dead: list[str] = []
    for worker_id, pid in silent:
        if not gone(process_key, int(pid)):
            continue
        still = (_W.id == worker_id, _W.pid == pid, _W.stopped_at.is_(None))
        silent_still = compared(_W.heartbeat_at, LT, silent_before)
        marked = conn.execute(
            update(WORKERS).where(*still, silent_still).values(stopped_at=clock.now(), lost=True)
        )
        if marked.rowcount == 1:
            dead.append(str(worker_id))
    if not dead:
        return [], []
    ended = _end_runs(conn, _E.worker_id.in_(dead), LOST_MESSAGE)
    return dead, [int(row["id"]) for row in ended]


def lost_since(conn: Connection, since: datetime) -> list[tuple[str, datetime]]:
    """(id, when it was declared lost) of the workers `end_lost` declared lost at or after
    `since` and that did not come back (a restart under the same id clears `lost`): every
    worker removes what they left on its own Docker engine and machine, whichever process
    declared them lost (a web process has no engine to sweep)."""
    query = select(_W.id, _W.stopped_at).where(_W.lost.is_(True), compared(_W.stopped_at, GE, since))
    return [(str(worker_id), lost_at) for worker_id, lost_at in conn.execute(query)]


_FINAL = sorted(status.value for status in FINAL_STATUSES)
_TO_STOP = select(_E.id, _E.status == _RUNNING).where(
    _E.id.in_(bindparam("ids", expanding=True)),
    or_(
        _E.status.in_(_FINAL),
        and_(_E.status == _RUNNING, _E.worker_id == bindparam("wid"), _E.cancel_requested.is_(True)),
    ),
)


def to_stop(conn: Connection, worker_id: str, ids: list[int]) -> tuple[list[int], list[int]]:
    """Of `ids`, the runs in progress on worker `worker_id`: (those running here whose cancel was
    requested, the durable half of a cancel; those the database records as ended, by another
    process that declared this worker lost while it sent no heartbeat). A run watched before its
    claim is still `queued` (`executor.Executor`: the watch comes first): neither, where
    "anything but running" stopped such a run as it started (1 of 100 runs of a scale-out test
    ended `cancelled`). One statement."""
    cancelled: list[int] = []
    ended: list[int] = []
    for execution_id, running in conn.execute(_TO_STOP, {"wid": worker_id, "ids": ids}):
        (cancelled if running else ended).append(int(execution_id))
    return cancelled, ended
