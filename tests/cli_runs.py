"""`python -m opscraft ...` run as a user runs it, for the CLI modules: a data directory of the
test's own, the test process's environment without what would point the command elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

# What would point the command at another database, key or Redis; PYTEST_CURRENT_TEST: NiceGUI's
# ui.run takes a process that has it for its own test run.
HIDDEN = {"DATABASE_URL", "SECRET_KEY", "ENVIRONMENT", "PYTEST_CURRENT_TEST", "REDIS_URL"}


def cli_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """The environment of a command on `data_dir` (no bootstrap of `.venv`), plus `extra`."""
    base = {k: v for k, v in os.environ.items() if k not in HIDDEN}
    return {**base, "OPSCRAFT_NO_BOOTSTRAP": "1", "OPSCRAFT_DATA_DIR": str(data_dir), **extra}


def opscraft(data_dir: Path, *args: str, stdin: str = "", **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m opscraft *args` on `data_dir` with `stdin` typed in, its output captured as
    text; at most 120 s (a command that hangs fails the test)."""
    return subprocess.run(
        [sys.executable, "-m", "opscraft", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        env=cli_env(data_dir, **env),
    )
