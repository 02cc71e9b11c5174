"""`opscraft worker` and `opscraft serve --workers` refuse bad values with one line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["worker", "--slots", "0"], "--slots (or OPSCRAFT_WORKERS) must be between 1 and 64"),
        (["worker", "--slots", "65"], "--slots (or OPSCRAFT_WORKERS) must be between 1 and 64"),
        (["worker", "--name", "no spaces"], "--name must be 1-64 letters, digits"),
        (["worker", "--runner", "ssh"], "invalid choice: 'ssh'"),
        (["serve", "--workers", "-1"], "--workers must be between 0 and 64"),
    ],
)
def test_bad_values_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    env = {"OPSCRAFT_DATA_DIR": str(tmp_path), "OPSCRAFT_NO_BOOTSTRAP": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "opscraft", *args, "--data-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert message in done.stderr
    assert "Traceback" not in done.stderr
