"""An empty SQLite database already at the head revision, copied into a test's data directory.

A first start on an empty SQLite file runs every Alembic migration (SQLite's batch table rebuilds:
about 1.5-1.8 s of CPU, issue 15's CI figures), and most tests start OpsCraft on a fresh data
directory: in-process runtimes (`tests.conftest.make_settings`) and `opscraft serve` processes
(`tests.conftest.start_server`). Each test process migrates one template once, with the
product's own `opscraft.db.migrate.upgrade`, and each fresh data directory gets a byte copy of
it: the start then finds the head and migrates nothing, as a restart would. The migrations
themselves stay tested from an empty database, on both databases, in tests/test_migrations.py;
tests of a first start on an empty directory ask for none (`migrated=False`).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from opscraft.db.engine import create_engine
from opscraft.db.migrate import upgrade

DATABASE_FILE = "opscraft.db"  # the name `Settings.effective_database_url` gives it in the data dir
_lock = threading.Lock()
_template: Path | None = None


async def _migrate(path: Path) -> None:
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()


def _made_template() -> Path:
    """The template of this test process, migrated on first use (in a thread of its own: the
    caller may be inside a running event loop)."""
    global _template
    with _lock:
        if _template is None:
            path = Path(tempfile.mkdtemp(prefix="opscraft-migrated-")) / DATABASE_FILE
            with ThreadPoolExecutor(1) as thread:
                thread.submit(asyncio.run, _migrate(path)).result()
            for journal in ("-wal", "-shm", "-journal"):  # closing the last connection folds them in
                if Path(f"{path}{journal}").exists():
                    raise RuntimeError(f"{path}{journal} left after the migration: the copy would miss it")
            _template = path
        return _template


def seed(data_dir: Path) -> None:
    """Copy the migrated template to `data_dir`/opscraft.db (mode 0600, as OpsCraft creates it),
    unless a database is already there."""
    target = data_dir / DATABASE_FILE
    if target.exists():
        return
    data_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_made_template(), target)
    os.chmod(target, 0o600)


def seed_damaged(data_dir: Path) -> bytes:
    """Give `data_dir` a database at the head whose pages after the first are damaged (bytes
    100-399 of each 4 KiB page overwritten with 0xFF: text that is not UTF-8); its bytes."""
    seed(data_dir)
    path = data_dir / DATABASE_FILE
    data = bytearray(path.read_bytes())
    for page in range(4096, len(data), 4096):
        data[page + 100 : page + 400] = b"\xff" * 300
    path.write_bytes(data)
    return bytes(data)
