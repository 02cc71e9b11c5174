"""One execution in a consumer thread: claim -> run -> store output -> final state, exactly once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import partial
from typing import Any, cast

from sqlalchemy import Connection

from opscraft.config import Settings
from opscraft.db import clock, unreachable
from opscraft.db.models.executions import ExecutionStatus
from opscraft.execution import (
    ansible_options,
    ansible_recap,
    store,
    terraform_backend,
    terraform_errors,
    terraform_plan,
)
from opscraft.execution.events import LogEvent, StatusEvent
from opscraft.execution.finisher import Finisher, output_failed
from opscraft.execution.loop import WorkerLoop
from opscraft.execution.masking import Masker
from opscraft.execution.output import OutputPipeline, StoreBatch
from opscraft.execution.ports import (
    CancelSignal,
    JobQueue,
    LogBus,
    PlanStore,
    PlanUnavailable,
    SecretSource,
    SecretUnavailable,
)
from opscraft.execution.queue import HueyQueue
from opscraft.execution.spec import RunControl, Runner, RunnerError, RunResult, RunSpec, StopReason
from opscraft.logs import engine_context

log = logging.getLogger(__name__)

SHUTDOWN_MESSAGE = "interrupted by server shutdown"
HAND_BACK_SECONDS = 0.5
# The most runs waiting in this process's queue claimed with a consumer thread's own (`_claim`).
CLAIM_AHEAD = 3
# How much of each stream's last text a run keeps for its failure message, by script type.
LAST_TEXT_CHARS = {"ansible": ansible_recap.TAIL_CHARS, "terraform": terraform_errors.TAIL_CHARS}


class Executor:
    """The body of the queue's job, run in the worker's consumer threads; its active runs are
    what a shutdown interrupts. A run's final state is handed to `finisher` (its own thread,
    several runs' ends in one transaction); `on_finished` is called after each is written."""

    def __init__(
        self,
        settings: Settings,
        worker_id: str,
        loop: WorkerLoop,
        db: store.Store,
        bus: LogBus,
        cancels: CancelSignal,
        queue: JobQueue,
        runners: Mapping[str, Runner],
        secrets: SecretSource | None,
        on_finished: Callable[[int], None],
        claimable: Callable[[], frozenset[str] | None] = lambda: None,
        plans: PlanStore | None = None,
        ends_unoffered: frozenset[str] = frozenset(),
    ) -> None:
        self.settings = settings
        self.worker_id = worker_id
        self.loop = loop
        self.db = db
        self.bus = bus
        self.cancels = cancels
        self.queue = queue
        self.runners = runners
        self.secrets = secrets
        self.on_finished = on_finished
        self.claimable = claimable
        """The runners this worker claims runs of now (`Worker.claimable`); None: every runner."""
        self.ends_unoffered = ends_unoffered
        """The runners whose runs this worker claims, to end them with the claim's reason, when
        no live worker offers them (`_unoffered`: the local runner, which an admin disabled)."""
        self.plans = plans
        self._lock = threading.Lock()
        self._active: dict[int, RunControl] = {}
        self.finisher = Finisher(db, self._ended, bus.stored)

    def __call__(self, execution_id: int) -> None:
        """Run the execution `execution_id` to its end on this thread, with the worker and run ids in the
        log context.
        """
        with engine_context(worker_id=self.worker_id, execution_id=execution_id):
            self._execute(execution_id)

    def _execute(self, execution_id: int) -> None:
        control = RunControl()
        # Watch before claiming: a cancel that lands after the claim always finds this watcher.
        self._watch(execution_id, control)
        runners = self.claimable()
        back = False  # not claimed: for a runner another live worker offers, back to the queue
        try:
            try:
                claim = self._claim(execution_id, runners)
                if claim is None and runners is not None:
                    claim, back = self._unoffered(execution_id)
            except store.HeldBack:
                return
            if claim is not None:
                self._start(claim, control)
        finally:
            self._unwatch(execution_id, control)
            if back:  # after a pause, so a run nobody here can take does not spin
                time.sleep(HAND_BACK_SECONDS)
                self.queue.enqueue(execution_id)

    def _claim(self, execution_id: int, runners: frozenset[str] | None = None) -> store.Claim | None:
        """Claim run `execution_id` if it is for one of `runners` (None: any; `store.claim`;
        raises `HeldBack`). When more runs wait at
        the front of this process's queue (a burst: `HueyQueue.queued_ahead`), they are claimed
        with it in one transaction (`store.claim_batch`) and handed back to the queue's front,
        claimed (`_hand`: a consumer thread then starts them without a transaction of their own)
        or not (their scripts' concurrency limits, or no longer queued: `store.claim` weighs
        them one by one). So a burst of 1,000 runs on 4 threads costs about 250 claim
        transactions instead of 1,000 (docs/benchmarks.md, session 32)."""
        queue = self.queue
        ahead = queue.queued_ahead(CLAIM_AHEAD) if isinstance(queue, HueyQueue) else []
        if not ahead:
            return self.db.run(store.claim, self.settings, self.worker_id, execution_id, runners)
        try:
            claims = self.db.run(
                store.claim_batch, self.settings, self.worker_id, [execution_id, *ahead], runners
            )
        except BaseException:
            cast(HueyQueue, queue).put_back(list(ahead))
            raise
        claimed = {claim.execution_id: claim for claim in claims}
        runs = {i: ClaimedRun(self, claimed[i], RunControl()) for i in ahead if i in claimed}
        for run in runs.values():
            self._announce(run.claim)
            self._watch(run.claim.execution_id, run.control)
        if not cast(HueyQueue, queue).put_back([runs.get(i, i) for i in ahead]):
            self.abandon(list(runs.values()))
        mine = claimed.get(execution_id)
        if mine is None:  # of a limited script, or gone: weighed alone
            return self.db.run(store.claim, self.settings, self.worker_id, execution_id, runners)
        return mine

    def take(self, conn: Connection, members: list[tuple[Any, int]]) -> dict[int, Callable[[], None]]:
        """`db.group_commit.Take`: in the transaction that inserts new runs (`members`: each
        `Execution` row with its id), claim as many as this process's consumer threads can
        start at once (`HueyQueue.free_slots`), oldest first, with the same conditional UPDATE
        as any claim (`store.claim`: worker id, runner, start time), and return for each the
        hand-over of its claim to a consumer thread, run after the COMMIT. Runs of a script
        with a concurrency limit are left to the queue (SQLite's write lock, held by this
        transaction, keeps the limit read here true until the COMMIT). So such a run costs no
        transaction of its own to claim, and its consumer thread starts it at once.

        Only a lone submission's run is taken: a group of several is a burst, whose claims
        belong on the consumer threads (in the queue's order) while the group's thread writes
        the next group; claimed here they lengthened every group and slowed the burst's
        submissions (`bench_exec_throughput_pair`, docs/benchmarks.md, session 30). Its script
        version is read first, once: its concurrency limit decides, and the claim uses the
        same row (docs/benchmarks.md, session 49: a statement less than a separate read of the
        limited scripts)."""
        queue = cast(HueyQueue, self.queue)
        if len(members) != 1 or queue.free_slots() <= 0:
            return {}
        [(row, execution_id)] = members
        script = store.script_version(conn, row.script_id, row.script_version)
        if script.max_concurrent:
            return {}
        claim = store.claim(conn, self.settings, self.worker_id, execution_id, self.claimable(), script)
        if claim is None:
            return {}
        return {execution_id: partial(self._hand, queue, ClaimedRun(self, claim, RunControl()), row)}

    def _hand(self, queue: HueyQueue, run: ClaimedRun, row: Any = None) -> None:
        """After the COMMIT that claimed `run`, before its submission is answered: give its
        `row` (the submission's `Execution`, which its answer shows) the columns the claim set,
        so a run already `running` is not answered as `queued`; watch for its cancel, then hand
        it to a consumer thread. A cancel requested from then on (nobody knew the run's id
        before) stops it even while it waits for the thread to pick it up; watched by that
        thread instead, such a cancel reached no one, and the run went on. A queue that no
        longer takes runs (the worker stopped meanwhile: `HueyQueue.hand`) gets none: the run
        ends as interrupted by the shutdown (`abandon`), never left `running` without a thread.
        Announced `running` here, not by the thread: a watcher that subscribes once the
        submission is answered (`POST .../stream`) finds the bus holding the run whole
        (`bus.py`) even when the thread comes late, and reads no storage."""
        for name, value in run.claim.columns.items() if row is not None else ():
            setattr(row, name, value)
        self._announce(run.claim)
        self._watch(run.claim.execution_id, run.control)
        try:
            handed = queue.hand(run)
        except BaseException:
            self._unwatch(run.claim.execution_id, run.control)
            raise
        if not handed:
            self.abandon([run])

    def start_claimed(self, claim: store.Claim, control: RunControl) -> None:
        """Run a run claimed by `take` (in a consumer thread), watched since its hand-over
        (`_hand`) with `control`, stopped already if its cancel came meanwhile."""
        with engine_context(worker_id=self.worker_id, execution_id=claim.execution_id):
            try:
                self._start(claim, control, announced=True)
            finally:
                self._unwatch(claim.execution_id, control)

    def abandon(self, jobs: list[Callable[[], None]]) -> None:
        """End the runs claimed by `take` among `jobs` (handed, never started by a consumer
        thread before a shutdown: `HueyQueue.left_over`, or refused by the stopped queue:
        `_hand`) as the shutdown ends the runs it interrupts."""
        for job in jobs:
            if isinstance(job, ClaimedRun):
                self._unwatch(job.claim.execution_id, job.control)
                shutdown = store.Finish(ExecutionStatus.error, error_message=SHUTDOWN_MESSAGE)
                self.finisher.put(job.claim.execution_id, shutdown)

    def _watch(self, execution_id: int, control: RunControl) -> None:
        self.cancels.watch(execution_id, lambda: control.stop(StopReason.cancelled))
        with self._lock:
            self._active[execution_id] = control

    def _unwatch(self, execution_id: int, control: RunControl) -> None:
        self.cancels.unwatch(execution_id)
        with self._lock:
            self._active.pop(execution_id, None)
        control.finish()

    def _announce(self, claim: store.Claim) -> None:
        """Publish a claimed run's `running` event (before any of its output)."""
        self.bus.publish(
            claim.execution_id, StatusEvent(ExecutionStatus.running, started_at=claim.started_at)
        )

    def _start(self, claim: store.Claim, control: RunControl, *, announced: bool = False) -> None:
        """Announce a claimed run as running (unless `announced` at its hand-over), run it, hand
        its end to the finisher."""
        if not announced:
            self._announce(claim)
        if claim.cancel_requested:
            control.stop(StopReason.cancelled)
        # Written on the finisher's thread (with other runs' ends), announced after its COMMIT.
        self.finisher.put(claim.execution_id, self._run(claim, control))

    def _ended(self, execution_id: int, final: StatusEvent, waiting: int | None) -> None:
        """A run's end is committed (`finisher.py`): its final event, the run events'
        dispatcher, and the run its script's concurrency limit held back."""
        self.bus.publish(execution_id, final)
        self.on_finished(execution_id)
        if waiting is not None:
            self.queue.enqueue(waiting)

    def _unoffered(self, execution_id: int) -> tuple[store.Claim | None, bool]:
        """After a claim limited to this worker's runners found nothing: (the claim, whether the
        run goes back to the queue). A run no longer queued: (None, False). One for a runner
        another live worker offers goes back to the queue for it: (None, True). One whose
        runner no live worker offers is claimed when that runner is in `ends_unoffered` (the
        local runner, off: its claim ends it with the reason, `store.claim`) and otherwise stays
        queued, in the database only: (None, False); the worker that comes to offer its runner
        enqueues it (`Worker.release_waiting`, or a worker's start) and
        `services.executions.why_queued` says why it waits meanwhile. Checked only on a miss,
        so a claim costs one transaction whatever the worker offers. Raises `HeldBack` as
        `store.claim` does."""
        since = clock.now() - timedelta(seconds=self.settings.worker_lost_seconds)
        runner, elsewhere = self.db.run(store.waiting_for, execution_id, self.worker_id, since)
        if runner is None or elsewhere:
            return None, elsewhere
        if runner not in self.ends_unoffered:
            return None, False
        only = frozenset({runner})
        return self.db.run(store.claim, self.settings, self.worker_id, execution_id, only), False

    def active(self) -> list[int]:
        """The ids of the runs in progress here."""
        with self._lock:
            return list(self._active)

    def cancel(self, execution_id: int) -> None:
        """Kill a run in progress here (its cancel was requested); a no-op for any other id."""
        with self._lock:
            control = self._active.get(execution_id)
        if control is not None:
            control.stop(StopReason.cancelled)

    def interrupt_all(self) -> int:
        """Kill every run in progress (server shutdown); they end as `error`."""
        with self._lock:
            controls = list(self._active.values())
        for control in controls:
            control.stop(StopReason.interrupted)
        return len(controls)

    def _run(self, claim: store.Claim, control: RunControl) -> store.Finish:
        if claim.spec is None:
            return store.Finish(ExecutionStatus.error, error_message=claim.error)
        if control.reason is StopReason.cancelled:  # before it started (a claimed run waiting): never started
            return store.Finish(ExecutionStatus.cancelled, error_message=store.CANCELLED_BY_SOMEONE)
        spec = claim.spec
        if claim.has_secrets:
            if self.secrets is None:
                message = "secrets are attached to the script but this worker has no vault"
                return store.Finish(ExecutionStatus.error, error_message=message)
            try:
                secrets = self.loop.run(self.secrets.for_execution(self.loop.db, spec.execution_id))
            except SecretUnavailable as exc:
                message = f"a secret attached to the script cannot be used: {exc}"
                return store.Finish(ExecutionStatus.error, error_message=message)
            # The run's own settings (the Terraform backend's) win over a secret of the same name.
            spec = replace(
                spec,
                env={**secrets.env, **spec.env},
                secret_files=secrets.files,
                secret_values=[*spec.secret_values, *secrets.values()],
            )
        if spec.terraform_action == terraform_plan.APPLY_PLAN:
            try:
                spec = replace(spec, plan_file=self._plan_file(spec.execution_id))
            except PlanUnavailable as exc:
                message = f"the saved plan cannot be used: {exc}"
                return store.Finish(ExecutionStatus.error, error_message=message)
        runner = self.runners.get(claim.runner)
        if runner is None:
            return store.Finish(
                ExecutionStatus.error, error_message=f"the {claim.runner} runner is not available"
            )
        pipeline = OutputPipeline(
            spec.execution_id,
            self.bus,
            self._store_batch(spec.execution_id),
            Masker(spec.secret_values),
            self.settings.max_output_bytes,
            last_text_chars=LAST_TEXT_CHARS.get(spec.script_type, 0),
        )
        control.arm(spec.timeout_seconds)
        result: RunResult | None = None
        error: str | None = None
        try:
            result = runner.run(spec, pipeline, control)
        except RunnerError as exc:
            error = str(exc)
        except Exception as exc:
            if unreachable.is_disk_full(exc):  # storing its output failed: the operator's to fix
                unreachable.log_failure(log, f"execution {spec.execution_id}: storing the output failed", exc)
                error = output_failed(exc)
            else:
                log.exception("execution %s: the %s runner failed", spec.execution_id, claim.runner)
                error = f"the {claim.runner} runner failed unexpectedly: see the server log"
        finally:
            control.finish()
        if result is not None and result.files and result.exit_code == 0 and control.reason is None:
            error = self._keep_plan(spec.execution_id, result.files)
        # Terraform writes errored.tfstate only when it ends without storing the state.
        errored = result.files.get(terraform_backend.ERRORED_STATE) if result is not None else None
        kept_state = None
        if errored is not None and (result is None or result.exit_code != 0 or control.reason is not None):
            kept_state = self._keep_errored_state(spec.execution_id, errored)
        tail: list[LogEvent] = []
        try:
            # Stored with the final state (`store.finish`); a killed run's output is cut short.
            tail = pipeline.close(keep_tail=True, cut=result is None or control.reason is not None)
        except Exception as exc:
            unreachable.log_failure(log, f"execution {spec.execution_id}: storing the output failed", exc)
            error = error or output_failed(exc)
        end = replace(_outcome(spec, control.reason, result, error, pipeline), logs=tuple(tail))
        if kept_state is not None and end.status != ExecutionStatus.cancelled:  # its canceller's words stay
            end = replace(end, error_message=f"{end.error_message}; {kept_state}")
        if spec.script_type == "ansible":  # its per-host summary, from the PLAY RECAP printed last
            ended = result is not None and control.reason is None  # exited by itself
            stdout = pipeline.last_text("stdout")
            summary = ansible_recap.summary(stdout, ended=ended, output_cut=pipeline.truncated)
            end = replace(end, host_summary=summary)
        return end

    def _plan_file(self, execution_id: int) -> bytes:
        """The saved plan an `apply_plan` run applies; raises `PlanUnavailable`."""
        if self.plans is None:
            raise PlanUnavailable("this worker keeps no plans")
        return self.loop.run(self.plans.plan_file(self.loop.db, execution_id))

    def _keep_plan(self, execution_id: int, files: dict[str, bytes]) -> str | None:
        """Hand a plan run's files to the plan store; the run's error message when that fails."""
        try:
            if self.plans is None:
                raise RuntimeError("this worker keeps no plans")
            self.loop.run(self.plans.keep(self.loop.db, execution_id, files))
        except terraform_plan.PlanNotKept as exc:
            return str(exc)
        except Exception:
            log.exception("execution %s: keeping its plan failed", execution_id)
            return "keeping the saved plan failed: see the server log"
        return None

    def _keep_errored_state(self, execution_id: int, content: bytes) -> str:
        """Hand the state a run could not store to the plan store (`PlanStore.keep_errored_state`);
        the sentence the run's error message ends with."""
        try:
            if self.plans is None:
                raise RuntimeError("this worker keeps no plans or states")
            return self.loop.run(self.plans.keep_errored_state(self.loop.db, execution_id, content))
        except Exception:
            log.exception("execution %s: keeping the state Terraform could not store failed", execution_id)
            return (
                f"Terraform could not store the state and OpsCraft could not keep its "
                f"{terraform_backend.ERRORED_STATE} either: see the server log"
            )

    def _store_batch(self, execution_id: int) -> StoreBatch:
        def store_batch(events: list[LogEvent], output_bytes: int, stored_bytes: int) -> Future[None]:
            return self.db.submit(store.store_logs, execution_id, events, output_bytes, stored_bytes)

        return store_batch


@dataclass(frozen=True)
class ClaimedRun:
    """A run `Executor.take` claimed, handed to a consumer thread (`HueyQueue.hand`)."""

    executor: Executor
    claim: store.Claim
    control: RunControl
    """Watched for the run's cancel from the hand-over on (`Executor._hand`)."""

    def __call__(self) -> None:
        """Start the already-claimed run on this thread."""
        self.executor.start_claimed(self.claim, self.control)


def _outcome(
    spec: RunSpec,
    reason: StopReason | None,
    result: RunResult | None,
    error: str | None,
    pipeline: OutputPipeline,
) -> store.Finish:
    exit_code = result.exit_code if result else None
    sizes = {
        "output_bytes": pipeline.total_bytes,
        "output_truncated": pipeline.truncated,
        "output_stored_bytes": pipeline.stored_bytes,
    }
    if reason is StopReason.cancelled:
        # `store.finish` puts the canceller's name in place of "a user" (the row has it).
        return store.Finish(ExecutionStatus.cancelled, exit_code, store.CANCELLED_BY_SOMEONE, **sizes)
    if reason is StopReason.timed_out:
        message = f"timed out after {spec.timeout_seconds} s and was killed"
        if error is not None:  # the kill failed: the Docker engine did not answer it
            message = f"timed out after {spec.timeout_seconds} s, but {error}"
        return store.Finish(ExecutionStatus.timed_out, exit_code, message, **sizes)
    if reason is StopReason.interrupted:
        return store.Finish(ExecutionStatus.error, exit_code, SHUTDOWN_MESSAGE, **sizes)
    if error is not None or result is None:
        return store.Finish(ExecutionStatus.error, exit_code, error, **sizes)
    if result.oom_killed:
        message = f"out of memory: the script went over its {spec.memory_mb} MiB limit and was killed"
        return store.Finish(ExecutionStatus.failed, exit_code, message, **sizes)
    if exit_code == 0:
        return store.Finish(ExecutionStatus.success, 0, **sizes)
    message = f"the script exited with code {exit_code}"
    if spec.script_type == "ansible" and exit_code is not None:  # codes with documented meanings
        message = ansible_options.exit_message(
            exit_code, pipeline.last_text("stdout"), pipeline.last_text("stderr")
        )
    elif spec.script_type == "terraform" and exit_code is not None:  # its error lines say why
        message = terraform_errors.exit_message(exit_code, pipeline.last_text("stderr"))
    return store.Finish(ExecutionStatus.failed, exit_code, message, **sizes)
