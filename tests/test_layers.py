"""The layer rules of docs/architecture.md, enforced: import-linter checks the contracts in
pyproject.toml (`[tool.importlinter]`) against the real import graph of `opscraft`."""

from __future__ import annotations

import os

from importlinter.cli import lint_imports

from tests.conftest import ROOT


def test_import_contracts_hold() -> None:
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    finally:
        os.chdir(cwd)
    assert code == 0, "an import breaks a layer rule: see the report above"
