"""The process-wide objects (settings, database, rate limiter, vault, execution client...).

Module import creates nothing; `install()` is called from the app's startup hook, the CLI
or a test fixture (through `lifecycle.start`), and everything else reads `current()`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from opscraft.config import Settings
from opscraft.db.engine import Database

if TYPE_CHECKING:
    from opscraft.execution.client import ExecutionClient
    from opscraft.execution.run_events import RunEventDispatcher
    from opscraft.execution.worker import Worker
    from opscraft.security.ratelimit import RateLimiter
    from opscraft.security.vault import Vault
    from opscraft.services.automation import AutomationLoops
    from opscraft.services.request_counts import RequestCounts


@dataclass
class Runtime:
    """What `lifecycle.start` set up; the optional parts are filled in as they start."""

    settings: Settings
    db: Database
    limiter: RateLimiter
    # HTTP request counts for /metrics (in Redis when REDIS_URL is set: every web process's).
    request_counts: RequestCounts
    # The vault opened with the master key (checked against the database).
    vault: Vault | None = None
    # How services reach the execution engine, whether a worker runs here or not.
    executions: ExecutionClient | None = None
    # This process's execution worker; None in processes that run no executions.
    worker: Worker | None = None
    # Delivers run events to subscribers from this process; None when this process does not.
    run_events: RunEventDispatcher | None = None
    # Set by the last step of `lifecycle.start`; until then requests get a 503.
    ready: bool = False
    # The scheduler and the notification sender (services/automation.py), where events are dispatched.
    automation: AutomationLoops | None = None


_current: Runtime | None = None


def install(runtime: Runtime | None) -> None:
    """Make `runtime` the process's current runtime (None: none)."""
    global _current
    _current = runtime


def current() -> Runtime:
    """The process's runtime; RuntimeError when it is not started."""
    if _current is None:
        raise RuntimeError("OpsCraft runtime is not started")
    return _current


def ready() -> bool:
    """Whether start-up has finished: runtime installed and `lifecycle.start` done (its last step
    sets `ready`). Requests before that get a 503 (`security.http.StartupGateMiddleware`)."""
    return _current is not None and _current.ready


def build(settings: Settings) -> Runtime:
    """Create (but do not start) the runtime for `settings`."""
    from opscraft.security.ratelimit import make_rate_limiter
    from opscraft.services import storable
    from opscraft.services.request_counts import make_request_counts

    db = Database(settings.effective_database_url, command_timeout=settings.db_command_timeout_seconds)
    storable.install(db.engine.sync_engine)
    db.group.checks.append(storable.check_new_row)
    return Runtime(
        settings=settings,
        db=db,
        limiter=make_rate_limiter(settings),
        request_counts=make_request_counts(settings.redis_url, settings.redis_prefix),
    )
