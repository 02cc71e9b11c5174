"""The worker: this process's part in running executions (queue consumer threads + runners).

A worker has an identity (`identity_lock.worker_identity`), held by one process at a time
(`identity_lock.claim`), registers it in `workers` and heartbeats every
`OPSCRAFT_WORKER_HEARTBEAT_SECONDS`, applying the warm pool's size setting at each heartbeat.
`start()` first recovers from its own crash (its runs left `running` become `error`,
containers and processes labelled with its id are removed, `queued` runs are enqueued again,
in order), then starts the consumer threads. Its housekeeping thread
heartbeats, ends the runs of workers that stopped heartbeating (`store.end_lost`), applies
cancels requested through the database, enqueues every queued run again when the queue lost
its jobs (`JobQueue.emptied`) and re-enqueues stalled runs. `stop()` stops taking jobs,
gives running executions the grace period, then kills them; they end as `error` ("interrupted
by server shutdown").

Names: the *worker* is this object (one per process); its *consumer threads* are Huey's worker
threads; the *executor* runs one claimed execution in one of them; the SQLAlchemy *engine* is
only ever the database's.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from opscraft.config import Settings
from opscraft.db import clock, unreachable
from opscraft.db.group_commit import Take
from opscraft.db.types import utcnow
from opscraft.db.unreachable import RoundFailures
from opscraft.execution import identity_lock, installation, liveness, store, transport
from opscraft.execution.docker_runner import DockerRunner
from opscraft.execution.executor import Executor
from opscraft.execution.identity_lock import worker_identity
from opscraft.execution.local_runner import LocalRunner
from opscraft.execution.loop import WorkerLoop
from opscraft.execution.ports import CancelSignal, JobQueue, LogBus, PlanStore, SecretSource
from opscraft.execution.queue import HueyQueue

log = logging.getLogger(__name__)

ALL_RUNNERS = frozenset({"docker", "local"})
KILL_WAIT_SECONDS = 15.0
STALL_CHECK_SECONDS = 10.0
CANCEL_CHECK_SECONDS = 1.0


class Worker:
    """Everything that runs executions in this process (see the module docstring).

    `secrets` decrypts a run's attached secrets (None: runs with secrets end in `error`);
    `on_finished(execution_id)` is called after each final state and run event are written.
    The ports default to this installation's (`transport`: in-process, or Redis with
    `REDIS_URL`); `make_queue(handler)` builds a consuming queue. `runners` limits what this
    worker offers and claims (`opscraft worker --runner`); None: every runner it can use. Within
    them it claims only runs of the runners it offers now (`claimable`): no Docker run while its
    Docker engine does not answer, no local run while its local runner is off (unless no live
    worker offers it: its claim then ends the run as disabled by an admin).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        secrets: SecretSource | None,
        on_finished: Callable[[int], None] = lambda _: None,
        bus: LogBus | None = None,
        cancels: CancelSignal | None = None,
        make_queue: Callable[[Callable[[int], None]], JobQueue] | None = None,
        runners: frozenset[str] | None = None,
        plans: PlanStore | None = None,
    ) -> None:
        self.settings = settings
        self.worker_id = worker_identity(settings)
        self.info = store.WorkerInfo(
            self.worker_id, socket.gethostname(), os.getpid(), settings.workers, liveness.process_key()
        )
        self.bus: LogBus = bus or transport.bus_for(settings)
        self.cancels: CancelSignal = cancels or transport.cancel_signal_for(settings)
        self.allowed = runners
        self.loop = WorkerLoop(settings.effective_database_url, settings.db_command_timeout_seconds)
        self.store = store.Store(settings, self.loop)
        # The pool's size is known once the database is reachable (`start`, `_pool_size`).
        self.docker = DockerRunner(
            self.worker_id,
            0,
            settings.warm_pool_idle_seconds,
            settings.warm_pool_burst,
            runtime=settings.docker_runtime,
        )
        self.local = LocalRunner(self.worker_id)
        self.queue: JobQueue = (make_queue or (lambda handler: transport.queue_for(settings, handler)))(
            self._job
        )
        self.executor = Executor(
            settings,
            self.worker_id,
            self.loop,
            self.store,
            self.bus,
            self.cancels,
            self.queue,
            {"docker": self.docker, "local": self.local},
            secrets,
            on_finished,
            self.claimable,
            plans,
            frozenset({"local"}) if self._may("local") else frozenset(),
        )
        self._started_at = utcnow()  # in the database's clock once `start` measured it
        self.offered: list[str] = []
        """The runners offered at the start or the last heartbeat (`runners`)."""
        self._announced = False  # whether `_offering` ran yet
        self._swept: set[tuple[str, datetime]] = set()  # lost workers swept (`sweep_lost`)
        self._watch = store.LossWatch(settings.worker_lost_seconds)
        self._stopping = threading.Event()
        self._housekeeping = threading.Thread(
            target=self._housekeep, name="opscraft-housekeeping", daemon=True
        )

    def _job(self, execution_id: int) -> None:
        self.executor(execution_id)

    def submission_take(self) -> Take | None:
        """What the submissions' group commit may claim runs with (`Executor.take`): only when
        this worker's consumer threads take this process's runs in memory (`HueyQueue` with
        `in_process`: a SQLite database, one process); None otherwise."""
        if isinstance(self.queue, HueyQueue) and self.queue.in_process:
            return self.executor.take
        return None

    def runners(self) -> list[str]:
        """What this worker offers now, within `--runner`: `docker` while a Docker engine
        answers, `local` while the local runner is enabled (OPSCRAFT_LOCAL_RUNNER, or the
        setting an admin changes under Settings, read from the database). A worker with neither
        offered `local` all the same: it said "runners local", the Workers page listed it, and
        it could run nothing. Whether a user may run locally is checked when a run is created
        and when it is claimed. Reads the database: call it on the worker's threads."""
        offered = []
        if self._may("docker") and self.docker.available():
            offered.append("docker")
        if self._may("local") and (self.settings.local_runner or self.store.run(store.local_enabled)):
            offered.append("local")
        return offered

    def claimable(self) -> frozenset[str] | None:
        """The runners whose runs this worker claims now: those it offered at its start or last
        heartbeat (`offered`); None when that is every runner (the claims' fast path). So a
        worker whose Docker engine stopped answering leaves Docker runs to a worker whose engine
        answers (it claimed them, and each ended `error` at once), and one whose local runner is
        off leaves local runs to a worker that offers it (it claimed them, and ended each as
        disabled by an admin). A run no live worker offers waits, queued
        (`Executor._unoffered`, `release_waiting`), except a local one, which a worker that
        `--runner` allows the local runner claims to end it (`ends_unoffered`)."""
        return None if set(self.offered) >= ALL_RUNNERS else frozenset(self.offered)

    def release_waiting(self, before: list[str]) -> int:
        """Enqueue, oldest first, the queued runs of the runners this worker offers now and did
        not when it offered `before` (its Docker engine answers again, an admin enabled the
        local runner): they may be waiting, queued, for a worker that offers their runner
        (`Executor._unoffered` left them in the database). Returns how many were enqueued."""
        gained = set(self.offered) - set(before)
        if not gained:
            return 0
        waiting = self.store.run(store.queued_for, sorted(gained))
        for execution_id in waiting:
            self.queue.enqueue(execution_id)
        if waiting:
            log.info(
                "worker %s offers %s again: enqueued %d run(s) waiting for it",
                self.worker_id,
                ", ".join(sorted(gained)),
                len(waiting),
            )
        return len(waiting)

    def _may(self, runner: str) -> bool:
        return self.allowed is None or runner in self.allowed

    def nothing_to_run(self) -> str:
        """Why this worker offers no runner, and what changes that (one line)."""
        docker = (
            "--runner leaves Docker out"
            if not self._may("docker")
            else (self.docker.engine_error or "the Docker engine does not answer")
        )
        local = (
            "--runner leaves the local runner out"
            if not self._may("local")
            else "the local runner is off (OPSCRAFT_LOCAL_RUNNER=true, or an admin enables it under Settings)"
        )
        return (
            f"worker {self.worker_id} can run nothing: {docker}; {local}. It takes no run until one changes"
        )

    def _offering(self, offered: list[str]) -> list[str]:
        """Keep `offered` as `self.offered`, saying in the log when it becomes or stops being
        nothing at all (at the start, then at a heartbeat)."""
        if not offered and (self.offered or not self._announced):
            log.warning("%s", self.nothing_to_run())
        elif offered and not self.offered and self._announced:
            log.info("worker %s offers runners again: %s", self.worker_id, ", ".join(offered))
        self.offered, self._announced = offered, True
        return offered

    def advertise(self) -> None:
        """Offer what this worker can run now at once, between heartbeats: an admin just turned
        the local runner on or off (services/app_settings.py), and a run sent right after must
        find it offered (`services/executions.py` reads the workers' runners). Runs waiting for
        what it offers anew (its Docker engine answering again meanwhile) are enqueued
        (`release_waiting`)."""
        before = self.offered
        offered = [] if self.queue.unreadable() else self._offering(self.runners())
        self.store.run(store.offer, self.worker_id, offered)
        if offered:
            self.release_waiting(before)

    def start(self) -> None:
        """Claim the worker id (`identity_lock.WorkerIdInUse` when another process runs it, before
        anything is recovered), recover from this worker's crash, then take jobs."""
        identity_lock.claim(self.settings.data_dir, self.worker_id)
        try:
            self._start()
        except BaseException:
            identity_lock.release(self.settings.data_dir, self.worker_id)
            raise

    def _start(self) -> None:
        self.loop.start()
        self.store.run(clock.measure)  # heartbeats and their staleness are in the database's clock
        self._started_at = clock.now()
        # Containers and local processes carry the installation: sweeps spare other installations'.
        self.docker.installation = self.local.installation = self.store.run(installation.stored_id)
        if self.allowed is None or "docker" in self.allowed:
            self.docker.check_runtime()  # an engine without OPSCRAFT_DOCKER_RUNTIME: no start
        offered = self._offering(self.runners())
        self.docker.pool.resize(self._pool_size())
        self.store.run(store.register, self.info, offered, self.docker.stats(), self._stale_before())
        interrupted, queued = self.store.run(store.recover, self.worker_id)
        swept = self.local.sweep() + (self.docker.sweep() if "docker" in offered else 0)
        others = [w for w in self.store.run(store.live_workers, self._stale_before()) if w != self.worker_id]
        self.docker.start_pool()
        if "local" in offered:
            self.local.start()
        try:
            if not others:  # nobody shares the queue: rebuild it from the database
                self.queue.clear()
            self.queue.emptied()  # marks the queue as holding what the database says is queued
            for execution_id in queued:
                self.queue.enqueue(execution_id)
        except Exception as exc:  # Redis down: the stall check enqueues them once it is back
            log.warning(
                "worker %s: re-queueing %d run(s) failed (%s); retrying later",
                self.worker_id,
                len(queued),
                exc,
            )
        self.queue.start()
        self._housekeeping.start()
        log.info(
            "worker %s started: %d consumer threads, docker %s; recovered %d interrupted, %d queued; "
            "removed %d leftover containers or processes",
            self.worker_id,
            self.settings.workers,
            self._docker_state(offered),
            interrupted,
            len(queued),
            swept,
        )

    def _docker_state(self, offered: list[str]) -> str:
        """How the start-up line describes Docker: `reachable`, `not offered (--runner)` for a
        worker limited to other runners (it never asks the engine), or `not reachable`."""
        if "docker" in offered:
            return "reachable"
        if self.allowed is not None and "docker" not in self.allowed:
            return "not offered (--runner)"
        return "not reachable"

    def _pool_size(self) -> int:
        """Warm containers per profile: OPSCRAFT_WARM_POOL_SIZE when set, else the admin's setting."""
        if self.settings.warm_pool_size is not None:
            return self.settings.warm_pool_size
        return self.store.run(store.warm_pool_size)

    def _stale_before(self) -> object:
        return clock.now() - timedelta(seconds=self.settings.worker_lost_seconds)

    def _housekeep(self) -> None:
        """Heartbeat, end lost workers' runs (once the database has answered for long enough:
        `store.LossWatch`), apply cancels from the database, release stalled runs."""
        heartbeat = stall = time.monotonic()
        tick = min(CANCEL_CHECK_SECONDS, STALL_CHECK_SECONDS, self.settings.worker_heartbeat_seconds)
        failures = RoundFailures(log, "worker housekeeping")
        reported: str | None = None  # the queue error the last heartbeat wrote
        while not self._stopping.wait(tick):
            now = time.monotonic()
            try:
                if active := self.executor.active():
                    self._stop_asked_or_ended(active)
                self.end_dead()
                # Consumers that cannot read the queue take nothing: the worker offers nothing.
                # A change either way is written at once (the web refuses submissions while
                # every worker says so), not a heartbeat period later.
                queue_error = self.queue.unreadable()
                if now - heartbeat >= self.settings.worker_heartbeat_seconds or queue_error != reported:
                    heartbeat = now
                    self.docker.pool.resize(self._pool_size())
                    before = self.offered
                    offered = [] if queue_error else self._offering(self.runners())
                    pool = self.docker.stats()
                    self.store.run(store.heartbeat, self.worker_id, offered, pool, queue_error)
                    reported = queue_error
                    self._watch.answered()
                    if self._watch.may_judge():
                        self.end_lost()
                    else:
                        self.sweep_lost()
                    failures.succeeded()  # rounds without a heartbeat may not reach the database
                    if queue_error is None:  # else each ask would wait for a Redis not answering
                        self.release_waiting(before)
                        self._refill_emptied_queue()
                if now - stall >= STALL_CHECK_SECONDS and self.queue.unreadable() is None:
                    stall = now
                    self._release_stalled()
            except Exception as exc:
                self._watch.failed(exc)
                failures.failed(exc)

    def _stop_asked_or_ended(self, active: list[int]) -> None:
        """Stop the runs in progress here whose cancel was requested, and those another process
        ended meanwhile: this worker, frozen (SIGSTOP, a paused VM, a swap stall) or cut off from
        the database past OPSCRAFT_WORKER_LOST_SECONDS, was declared lost and its runs ended as
        "worker lost". Going on, it ran their scripts to their end, unwatched, storing output
        after the runs' end, when no other worker shares its machine or Docker engine to sweep
        them. Their recorded end stays (the final write is conditional on `running`)."""
        cancelled, ended = self.store.run(store.to_stop, self.worker_id, active)
        if ended:
            log.warning("runs %s were ended elsewhere (this worker was declared lost): stopping them", ended)
        for execution_id in cancelled + ended:
            self.executor.cancel(execution_id)

    def end_lost(self) -> list[int]:
        """End (as `error`, "worker lost") the runs of workers whose heartbeat is stale, then
        `sweep_lost`. Returns the runs this call ended."""
        _, ended = self.store.run(store.end_lost, self.worker_id, self._stale_before())
        if ended:
            log.warning("ended %d run(s) of lost workers: %s", len(ended), ended)
            for execution_id in ended:
                self.executor.on_finished(execution_id)
        self.sweep_lost()
        return ended

    def end_dead(self) -> list[int]:
        """End at once the runs of workers on this machine and PID namespace that hold a
        cancelled run, missed heartbeats for `cancel_grace_seconds` and whose process is gone
        (`store.end_dead`), then sweep what they left (`sweep_lost`). Returns the runs ended."""
        key = self.info.process_key
        if key is None:
            return []
        silent_before = clock.now() - timedelta(seconds=liveness.cancel_grace_seconds(self.settings))
        dead, ended = self.store.run(store.end_dead, key, silent_before, liveness.proven_gone)
        if dead:
            log.warning("workers %s are gone (no process), a cancel pending: ended run(s) %s", dead, ended)
            self.sweep_lost()
            for execution_id in ended:
                self.executor.on_finished(execution_id)
        return ended

    def sweep_lost(self) -> None:
        """Stop what workers declared lost since this one started left running where this
        worker reaches it, once per loss: their containers on this worker's Docker engine and
        their local processes on this machine (a run recorded as ended went on running its
        script, unwatched, until the lost worker came back). Whichever process declared the loss
        (any web process or worker may, `store.end_lost`), every worker sweeps at its next
        heartbeat; only what was started before the loss, so a lost worker restarted under the
        same id keeps its new runs and warm containers."""
        docker: bool | None = None
        for worker_id, lost_at in self.store.run(store.lost_since, self._started_at):
            if (worker_id, lost_at) in self._swept:
                continue
            if docker is None:
                docker = self.docker.available()
            before = clock.to_local(lost_at).timestamp()  # containers carry this machine's time
            swept = LocalRunner(worker_id, self.local.installation).sweep(before) + (
                self.docker.sweep(worker_id, before) if docker else 0
            )
            self._swept.add((worker_id, lost_at))
            if swept:
                log.warning("removed %d container(s) or process(es) of lost worker %s", swept, worker_id)

    def _refill_emptied_queue(self) -> None:
        """After Redis lost the queue (restarted without persistence, flushed: `queue.emptied`),
        enqueue every `queued` run again, oldest first, within a heartbeat; one worker does it.
        Before, the stall check alone brought them back, one per script every 10 s (200 queued
        runs of one script took over half an hour). A run enqueued twice is claimed once."""
        try:
            if not self.queue.emptied():
                return
        except Exception as exc:  # Redis unreachable: the consumer threads already say so
            log.debug("worker %s: cannot ask whether the job queue lost its jobs (%s)", self.worker_id, exc)
            return
        queued = self.store.run(store.queued)
        for execution_id in queued:
            self.queue.enqueue(execution_id)
        if queued:
            log.warning(
                "the job queue lost its jobs (Redis restarted?): enqueued %d queued run(s) again", len(queued)
            )

    def _release_stalled(self) -> None:
        """A run held back by its script's concurrency limit is enqueued again when a run of that
        script ends; this catches the rest (the limit raised or removed meanwhile, or a run queued
        on a worker that was lost) within seconds."""
        before = clock.now() - timedelta(seconds=STALL_CHECK_SECONDS)
        for execution_id in self.store.run(store.stalled, before):
            self.queue.enqueue(execution_id)

    def stop_taking(self) -> None:
        """Take no new job from now on (the first step of a shutdown; `stop` does the rest)."""
        self._stopping.set()
        self.queue.stop()

    def stop(self) -> None:
        """Stop taking jobs, give running ones the grace period (then kill them), deregister."""
        self.stop_taking()
        if not self.queue.join(self.settings.shutdown_grace_seconds):
            killed = self.executor.interrupt_all()
            log.warning("shutdown: killed %d execution(s) still running after the grace period", killed)
            self.queue.join(KILL_WAIT_SECONDS)
        if isinstance(self.queue, HueyQueue):  # claimed at submission, never started
            self.executor.abandon(self.queue.left_over())
        self.executor.finisher.stop(KILL_WAIT_SECONDS)  # the ends of the runs just over
        if self._housekeeping.is_alive():
            self._housekeeping.join()
        self.docker.stop_pool()
        self.local.stop()
        try:
            self.store.run(store.deregister, self.worker_id)
        except Exception as exc:  # a full disk, the database gone: one line (`log_failure`)
            unreachable.log_failure(log, f"worker {self.worker_id}: recording the stop failed", exc)
        self.store.close()
        self.loop.stop()
        transport.close(self.bus, self.cancels)
        identity_lock.release(self.settings.data_dir, self.worker_id)
