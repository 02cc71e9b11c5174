"""The engine: queue + workers + runners + bus + cancel signal, started and stopped with the app.

`start()` first recovers from a crash (runs left `running` become `error`, containers left by
this instance are removed, `queued` runs are enqueued again, in order), then starts the workers.
`stop()` stops taking jobs, gives running executions the grace period, then kills them; they
end as `error` ("interrupted by server shutdown").
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from datetime import timedelta

from opscraft.config import Settings
from opscraft.db.types import utcnow
from opscraft.execution import store
from opscraft.execution.bus import LocalLogBus
from opscraft.execution.cancel import LocalCancelSignal
from opscraft.execution.docker_runner import DockerRunner
from opscraft.execution.local_runner import LocalRunner
from opscraft.execution.loop import EngineLoop
from opscraft.execution.queue import HueyQueue
from opscraft.execution.worker import Worker

log = logging.getLogger(__name__)

EXTRAS_KEY = "execution"
DOCKER_CHECK_SECONDS = 10.0
KILL_WAIT_SECONDS = 15.0
STALL_CHECK_SECONDS = 10.0


def instance_id(settings: Settings) -> str:
    """Names this installation's containers (one database = one instance)."""
    return hashlib.sha256(settings.effective_database_url.encode()).hexdigest()[:16]


class Engine:
    """Everything that runs executions in this process; `runtime.extras[EXTRAS_KEY]` holds it."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.bus = LocalLogBus()
        self.cancels = LocalCancelSignal()
        self.loop = EngineLoop(settings.effective_database_url)
        self.store = store.Store(settings, self.loop)
        self.docker = DockerRunner(instance_id(settings))
        self.local = LocalRunner(instance_id(settings))
        self.queue = HueyQueue(settings.data_dir / "queue.db", settings.workers, self._job)
        self.worker = Worker(
            settings,
            self.loop,
            self.store,
            self.bus,
            self.cancels,
            self.queue,
            {"docker": self.docker, "local": self.local},
        )
        self._stopping = threading.Event()
        self._stall_check = threading.Thread(
            target=self._release_stalled, name="opscraft-stalled", daemon=True
        )
        self._docker_lock = threading.Lock()
        self._docker_state: tuple[float, bool] | None = None

    def _job(self, execution_id: int) -> None:
        self.worker(execution_id)

    def start(self) -> None:
        self.loop.start()
        interrupted, queued = self.store.run(store.recover)
        swept = self.local.sweep() + (self.docker.sweep() if self.docker_available() else 0)
        self.queue.clear()
        for execution_id in queued:
            self.queue.enqueue(execution_id)
        self.queue.start()
        self._stall_check.start()
        log.info(
            "execution engine started: %d workers, docker %s; recovered %d interrupted, %d queued; "
            "removed %d leftover containers or processes",
            self.settings.workers,
            "reachable" if self.docker_known() else "not reachable",
            interrupted,
            len(queued),
            swept,
        )

    def _release_stalled(self) -> None:
        """A run held back by its script's concurrency limit is enqueued again when a run of that
        script ends; this catches the rest (the limit raised or removed meanwhile) within seconds."""
        while not self._stopping.wait(STALL_CHECK_SECONDS):
            try:
                before = utcnow() - timedelta(seconds=STALL_CHECK_SECONDS)
                for execution_id in self.store.run(store.stalled, before):
                    self.queue.enqueue(execution_id)
            except Exception:
                log.exception("checking for stalled executions failed")

    def stop(self) -> None:
        self._stopping.set()
        self.queue.stop()
        if not self.queue.join(self.settings.shutdown_grace_seconds):
            killed = self.worker.interrupt_all()
            log.warning("shutdown: killed %d execution(s) still running after the grace period", killed)
            self.queue.join(KILL_WAIT_SECONDS)
        if self._stall_check.is_alive():
            self._stall_check.join()
        self.store.close()
        self.loop.stop()

    def enqueue(self, execution_id: int) -> None:
        self.queue.enqueue(execution_id)

    def docker_known(self) -> bool | None:
        """Whether Docker answered recently; None when it is time to ask again."""
        state = self._docker_state
        if state is None or time.monotonic() - state[0] > DOCKER_CHECK_SECONDS:
            return None
        return state[1]

    def docker_available(self) -> bool:
        """Ask the Docker engine (blocking, up to a few seconds) unless it answered recently."""
        known = self.docker_known()
        if known is not None:
            return known
        with self._docker_lock:
            reachable = self.docker.available()
            self._docker_state = (time.monotonic(), reachable)
        return reachable
