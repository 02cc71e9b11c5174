"""A scheduler process for tests/automation/test_schedule_processes.py: starts its own runtime on
the shared database, waits for the go file, then ticks through the same simulated minutes as its
rival (`steps` fire times from `base`), and prints how many fires it claimed.

Usage: python -m tests.automation.scheduler_process DATA_DIR GO_FILE BASE_ISO STEPS
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

from opscraft import lifecycle
from opscraft.services import schedules
from tests.conftest import make_settings


async def main(data_dir: str, go_file: str, base_iso: str, steps: int) -> None:
    import os

    settings = make_settings(Path(data_dir), os.environ["DATABASE_URL"], OPSCRAFT_LOCAL_RUNNER=True)
    rt = await lifecycle.start(settings, migrate=False, worker=False, dispatch=False)
    try:
        print("ready", flush=True)
        while not Path(go_file).exists():
            time.sleep(0.01)
        base = datetime.fromisoformat(base_iso)
        claimed = 0
        for step in range(steps):
            now = base + timedelta(minutes=step, seconds=1)
            for _ in range(3):  # a few rounds per minute, as a real loop would
                claimed += await schedules.tick(rt.db, now=now)
        print(json.dumps({"claimed": claimed}), flush=True)
    finally:
        await lifecycle.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])))
