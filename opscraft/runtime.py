"""The process-wide objects (settings, database, rate limiter, vault, execution client...).

Module import creates nothing; `install()` is called from the app's startup hook, the CLI
or a test fixture (through `lifecycle.start`), and everything else reads `current()`. `opened` is
the part of every start a one-shot command needs too (the database migrated, the vault open):
it imports nothing of the execution engine, the run events or the automation loops.
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


async def opened(settings: Settings, *, migrate: bool = True) -> Runtime:
    """Build the runtime for `settings` (not installed), bring the schema up to date (`migrate`)
    and open the vault with the master key: the first steps of every start (`lifecycle.start`)
    and all a one-shot command's start does (`opscraft user create`, `db upgrade`, ...).

    Raises what opening the database or migrating raises (`OSError`, `SQLAlchemyError`,
    `MigrationError`) and `ConfigError` for a master key that does not fit; the database is
    closed again then."""
    from opscraft.db import unreachable
    from opscraft.db.migrate import upgrade
    from opscraft.services import keyring

    unreachable.locate(settings.effective_database_url)  # its full disk's log lines name it
    rt = build(settings)
    try:
        if migrate:
            await upgrade(rt.db.engine)
        rt.vault = await keyring.open_vault(rt.db, settings)
    except BaseException:
        await rt.db.dispose()
        raise
    return rt


async def close(rt: Runtime) -> None:
    """Close what `build` opened: the rate limiter, the request counts and the database (the
    execution parts are `lifecycle.stop`'s)."""
    await rt.limiter.close()
    await rt.request_counts.close()
    await rt.db.dispose()
