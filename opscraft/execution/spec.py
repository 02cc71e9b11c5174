"""What a runner gets (`RunSpec`), how it is told to stop (`RunControl`) and what it reports."""

from __future__ import annotations

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


@dataclass(frozen=True)
class RunResult:
    exit_code: int | None
    oom_killed: bool = False
    error: str | None = None


class RunnerError(Exception):
    """The infrastructure failed (not the script): the execution ends in `error`."""


class OutputSink(Protocol):
    def feed(self, stream: Stream, data: bytes) -> None: ...

    def tick(self) -> float:
        """Do what is due; return the seconds until something is due next."""
        ...


class Runner(Protocol):
    name: str

    def run(self, spec: RunSpec, output: OutputSink, control: RunControl) -> RunResult: ...


class RunControl:
    """Deadline, cancellation and shutdown of one run: the first reason wins and kills the run.

    A watchdog thread (started by `arm`) enforces the deadline, so a runner never relies on a
    blocking call's timeout. `stop()` may be called from any thread, even before `arm`, and
    returns at once.
    """

    def __init__(self) -> None:
        self.reason: StopReason | None = None
        self._deadline = float("inf")
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._finished = False
        self._kill: Callable[[], None] | None = None
        self._watchdog: threading.Thread | None = None

    def arm(self, timeout_seconds: float) -> None:
        """Start enforcing the deadline (and any stop requested so far)."""
        self._deadline = time.monotonic() + timeout_seconds
        self._watchdog = threading.Thread(target=self._watch, name="opscraft-watchdog", daemon=True)
        self._watchdog.start()

    def stop(self, reason: StopReason) -> None:
        with self._lock:
            if self.reason is None and not self._finished:
                self.reason = reason
        self._wake.set()

    def on_kill(self, kill: Callable[[], None]) -> None:
        """Register how to kill the run; called at once if a stop was already requested."""
        with self._lock:
            self._kill = kill
            due = self.reason is not None
        if due:
            self._wake.set()

    def finish(self) -> None:
        """The run is over: the watchdog stops and no later stop applies."""
        with self._lock:
            self._finished = True
            self._kill = None
        self._wake.set()
        if self._watchdog is not None:
            self._watchdog.join()

    def _watch(self) -> None:
        killed = False
        while True:
            timeout = None if self.reason is not None else max(self._deadline - time.monotonic(), 0)
            fired = self._wake.wait(timeout)
            with self._lock:
                self._wake.clear()
                if self._finished:
                    return
                if not fired and self.reason is None:
                    self.reason = StopReason.timed_out
                kill = self._kill if self.reason is not None and not killed else None
            if kill is not None:
                killed = True
                try:
                    kill()
                except Exception:
                    log.exception("killing a run failed")
