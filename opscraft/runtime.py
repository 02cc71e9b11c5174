"""The process-wide objects (settings, database, rate limiter...) set up once at start.

Module import creates nothing; `install()` is called from the app's startup hook, the CLI
or a test fixture, and everything else reads `current()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opscraft.config import Settings
from opscraft.db.engine import Database

if TYPE_CHECKING:
    from opscraft.security.ratelimit import RateLimiter


@dataclass
class Runtime:
    settings: Settings
    db: Database
    limiter: RateLimiter
    # Filled by the subsystems that start later (execution engine, vault...).
    extras: dict[str, Any] = field(default_factory=dict)


_current: Runtime | None = None


def install(runtime: Runtime | None) -> None:
    global _current
    _current = runtime


def current() -> Runtime:
    if _current is None:
        raise RuntimeError("OpsCraft runtime is not started")
    return _current


READY_KEY = "ready"


def ready() -> bool:
    """Whether start-up has finished: runtime installed and `lifecycle.start` done (its last step
    sets `extras[READY_KEY]`). Requests before that get a 503 (`security.http.StartupGateMiddleware`)."""
    return _current is not None and bool(_current.extras.get(READY_KEY))


def build(settings: Settings) -> Runtime:
    """Create (but do not start) the runtime for `settings`."""
    from opscraft.security.ratelimit import make_rate_limiter

    return Runtime(
        settings=settings, db=Database(settings.effective_database_url), limiter=make_rate_limiter(settings)
    )
