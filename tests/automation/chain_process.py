"""A server process for tests/automation/test_chain_processes.py: its own runtime on the shared
database delivering run events and starting chained runs (no worker), until the stop file exists.

Usage: python -m tests.automation.chain_process DATA_DIR STOP_FILE
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

from opscraft import lifecycle
from tests.conftest import make_settings


async def main(data_dir: str, stop_file: str) -> None:
    settings = make_settings(Path(data_dir), os.environ["DATABASE_URL"], OPSCRAFT_LOCAL_RUNNER=True)
    rt = await lifecycle.start(settings, migrate=False, worker=False, dispatch=True)
    try:
        assert rt.run_events is not None
        print(rt.run_events.process_id, flush=True)
        while not Path(stop_file).exists():
            await asyncio.sleep(0.05)
    finally:
        await lifecycle.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
