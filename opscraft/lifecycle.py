"""Start and stop the runtime: settings -> database (migrated) -> subsystems. No NiceGUI here."""

from __future__ import annotations

import logging

from opscraft import runtime
from opscraft.config import Settings
from opscraft.db.migrate import upgrade
from opscraft.services import keyring

log = logging.getLogger(__name__)


async def start(settings: Settings, *, migrate: bool = True) -> runtime.Runtime:
    """Build the runtime, bring the schema up to date and install it as `runtime.current()`."""
    rt = runtime.build(settings)
    if migrate:
        await upgrade(rt.db.engine)
    try:
        rt.extras[keyring.EXTRAS_KEY] = await keyring.open_vault(rt.db, settings)
    except BaseException:
        await rt.db.dispose()
        raise
    runtime.install(rt)
    log.info("OpsCraft started: database=%s", "sqlite" if settings.is_sqlite else "postgresql")
    return rt


async def stop() -> None:
    try:
        rt = runtime.current()
    except RuntimeError:
        return
    await rt.limiter.close()
    await rt.db.dispose()
    runtime.install(None)
