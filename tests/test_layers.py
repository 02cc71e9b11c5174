"""The layer rules of docs/architecture.md, enforced: import-linter checks the contracts in
pyproject.toml (`[tool.importlinter]`) against the real import graph of `opscraft`.

It runs in its own process: import-linter configures logging with `dictConfig`, which disables
every logger already created in the test process (later `caplog` assertions would see nothing)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT

LINT = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def test_import_contracts_hold() -> None:
    done = subprocess.run(
        [sys.executable, "-c", LINT, "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"an import breaks a layer rule:\n{done.stdout}\n{done.stderr}"
