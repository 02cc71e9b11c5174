"""What a runner gets (`RunSpec`), how it is told to stop (`RunControl`) and what it reports."""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from opscraft.execution.events import Stream

log = logging.getLogger(__name__)


class StopReason(StrEnum):
    """Why a run was stopped before its end: its timeout, a user's cancel, or the worker shutting down."""

    timed_out = "timed_out"
    cancelled = "cancelled"
    interrupted = "interrupted"


@dataclass(frozen=True)
class RunSpec:
    """Everything needed to run one execution; plain data, no database objects."""

    execution_id: int
    script_type: str
    content: str
    parameters: dict[str, Any]
    env: dict[str, str] = field(repr=False)  # holds secret values
    timeout_seconds: int
    memory_mb: int
    cpus: float
    network_enabled: bool
    image: str | None = None
    terraform_action: str | None = None
    secret_values: list[str] = field(default_factory=list, repr=False)
    # `file` secrets: NAME -> content, written by the runner into a tmpfs of the run (0400), NAME
    # set to its path (see `commands.secret_file_env`).
    secret_files: dict[str, str] = field(default_factory=dict, repr=False)
    # Ansible: the inventory text, the SSH user and the name of the file secret with its key,
    # and the run options (`--limit`, `--tags`, `--skip-tags`, `--check`, `--diff`).
    inventory: str | None = None
    ssh_user: str | None = None
    ssh_key_secret: str | None = None
    run_options: dict[str, Any] = field(default_factory=dict)
    # Seconds of silence on an SSH connection before ssh probes the host (ServerAliveInterval);
    # after `commands.SSH_KEEPALIVE_COUNT` unanswered probes the host is unreachable.
    ssh_keepalive_seconds: int = 15
    # Terraform: the saved plan an `apply_plan` run applies (a plan file, see terraform_plan),
    # and how long a run waits for the state lock (seconds).
    plan_file: bytes | None = field(default=None, repr=False)
    lock_timeout_seconds: int = 60
    # How long a cancelled or timed-out run has after its interrupt (SIGINT) before it is
    # killed (seconds; 0: killed at once). Terraform runs get
    # `OPSCRAFT_TERRAFORM_STOP_GRACE_SECONDS`, so Terraform can write its state and unlock it.
    stop_grace_seconds: float = 0.0
    # Files the runner reads back from the work directory once the run ended (a plan run's plan
    # file and its JSON form), each at most `terraform_plan.max_bytes`.
    collect: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunResult:
    """How the process or container ended (exit code 128+N when killed by signal N), and the
    files of `RunSpec.collect` found in the work directory afterwards (name -> content;
    `terraform_plan.TOO_LARGE` for one over its bound)."""

    exit_code: int | None
    oom_killed: bool = False
    files: dict[str, bytes] = field(default_factory=dict, repr=False)


class RunnerError(Exception):
    """The infrastructure failed (not the script): the execution ends in `error`."""


class OutputSink(Protocol):
    """Where a runner sends a run's output bytes as they come."""

    def feed(self, stream: Stream, data: bytes) -> None:
        """Take raw output bytes of `stream` (stdout or stderr)."""

    def tick(self) -> float:
        """Do what is due; return the seconds until something is due next."""
        ...


class Runner(Protocol):
    """Starts a run, streams its output into `output`, registers its kill with `control`."""

    name: str

    def run(self, spec: RunSpec, output: OutputSink, control: RunControl) -> RunResult:
        """Run `spec` to its end, feeding its output to `output` and obeying `control`; returns the result."""


class RunControl:
    """Deadline, cancellation and shutdown of one run: the first reason wins and ends the run.

    The deadline is kept by one shared watchdog thread, so a runner never relies on a blocking
    call's timeout. `stop()` may be called from any thread, even before the runner has
    registered its kill function, and returns at once: the kill runs in a thread of its own.

    A run registered with an `interrupt` and a grace period (`on_kill`) is first asked to stop
    when it is cancelled or times out (Terraform, on SIGINT, finishes or abandons its current
    operations, writes its state and releases its lock, as after Ctrl-C), and killed only if it
    is still going `grace_seconds` later. A shutdown (`interrupted`) kills at once.
    """

    def __init__(self) -> None:
        self.reason: StopReason | None = None
        self.finished = False
        self._lock = threading.Lock()
        self._kill: Callable[[], None] | None = None
        self._interrupt: Callable[[], None] | None = None
        self._grace_seconds = 0.0
        self._interrupted = False
        self._grace_ends = 0.0  # time.monotonic() at which an interrupted run is killed
        self._killed = False

    def arm(self, timeout_seconds: float) -> None:
        """Start enforcing the deadline."""
        _WATCHDOG.add(time.monotonic() + timeout_seconds, self)

    def stop(self, reason: StopReason) -> None:
        """Ask the run to stop for `reason` (the first reason wins; no effect once it finished) and act on
        it now.
        """
        with self._lock:
            if self.reason is None and not self.finished:
                self.reason = reason
        self._act()

    def on_kill(
        self,
        kill: Callable[[], None],
        interrupt: Callable[[], None] | None = None,
        grace_seconds: float = 0.0,
    ) -> None:
        """Register how to kill the run and, optionally, how to ask it to stop (`interrupt`)
        and how long to wait for it after asking (`grace_seconds`, 0: kill at once); used at
        once if a stop was already requested."""
        with self._lock:
            self._kill, self._interrupt, self._grace_seconds = kill, interrupt, grace_seconds
        self._act()

    def due(self) -> None:
        """A deadline of this run passed (the watchdog): its timeout, or the grace after an
        interrupt, which ends in the kill."""
        self.stop(StopReason.timed_out)

    def finish(self) -> None:
        """The run is over: no later stop applies."""
        with self._lock:
            self.finished = True
            self._kill = self._interrupt = None

    def _act(self) -> None:
        """Interrupt or kill the run if a stop was requested and that step is due."""
        with self._lock:
            if self.reason is None or self.finished or self._killed or self._kill is None:
                return
            graceful = (
                self._interrupt is not None
                and self._grace_seconds > 0
                and self.reason is not StopReason.interrupted
            )
            if graceful and not self._interrupted:
                self._interrupted = True
                action = self._interrupt
                self._grace_ends = time.monotonic() + self._grace_seconds
                _WATCHDOG.add(self._grace_ends, self)
            elif not graceful or time.monotonic() >= self._grace_ends:
                self._killed = True
                action = self._kill
            else:
                return
        assert action is not None
        threading.Thread(target=_guarded, args=(action,), name="opscraft-kill", daemon=True).start()


def _guarded(kill: Callable[[], None]) -> None:
    try:
        kill()
    except Exception:
        log.exception("killing a run failed")


class _Watchdog:
    """One thread holding every armed run's deadline; it stops a run whose deadline passed."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, RunControl]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, deadline: float, control: RunControl) -> None:
        with self._cond:
            if len(self._heap) > 64 and sum(not c.finished for _, _, c in self._heap) < len(self._heap) // 2:
                self._heap = [entry for entry in self._heap if not entry[2].finished]
                heapq.heapify(self._heap)
            entry = (deadline, next(self._order), control)
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="opscraft-watchdog", daemon=True)
                self._thread.start()
            if self._heap[0] is entry:  # only an earlier deadline changes how long to sleep
                self._cond.notify()

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][2].finished:
                    heapq.heappop(self._heap)
                wait = self._heap[0][0] - time.monotonic() if self._heap else None
                if wait is None or wait > 0:
                    self._cond.wait(wait)
                    continue
                _, _, control = heapq.heappop(self._heap)
            control.due()


_WATCHDOG = _Watchdog()
