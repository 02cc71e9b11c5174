"""Start and stop the runtime: settings -> database (migrated) -> subsystems. No NiceGUI here."""

from __future__ import annotations

import asyncio
import logging

from opscraft import runtime
from opscraft.config import Settings
from opscraft.db.migrate import upgrade
from opscraft.execution.engine import EXTRAS_KEY as ENGINE_KEY
from opscraft.execution.engine import Engine
from opscraft.services import automation, keyring

log = logging.getLogger(__name__)
AUTOMATION_KEY = "automation"


async def start(settings: Settings, *, migrate: bool = True, engine: bool = True) -> runtime.Runtime:
    """Build the runtime, bring the schema up to date and install it as `runtime.current()`.

    `engine=False` (one-shot CLI commands) leaves the execution engine off: it would recover and
    run jobs that belong to a server running at the same time.
    """
    rt = runtime.build(settings)
    if migrate:
        await upgrade(rt.db.engine)
    try:
        rt.extras[keyring.EXTRAS_KEY] = await keyring.open_vault(rt.db, settings)
    except BaseException:
        await rt.db.dispose()
        raise
    runtime.install(rt)
    if engine:
        rt.extras[ENGINE_KEY] = Engine(settings)
        await asyncio.to_thread(rt.extras[ENGINE_KEY].start)
        rt.extras[AUTOMATION_KEY] = automation.start(rt.db)
    log.info("OpsCraft started: database=%s", "sqlite" if settings.is_sqlite else "postgresql")
    return rt


async def stop() -> None:
    try:
        rt = runtime.current()
    except RuntimeError:
        return
    loops = rt.extras.pop(AUTOMATION_KEY, None)
    if loops is not None:
        await loops.stop()
    execution_engine = rt.extras.pop(ENGINE_KEY, None)
    if execution_engine is not None:
        await asyncio.to_thread(execution_engine.stop)
    await rt.limiter.close()
    await rt.db.dispose()
    runtime.install(None)
