"""`python3 -m opscraft` from a clone: `.venv` is set up once per pyproject.toml and extras."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from opscraft import bootstrap


@pytest.fixture
def venv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """A stand-in `.venv` (its python exists); returns the commands an install would run."""
    python = tmp_path / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.touch()
    monkeypatch.setattr(bootstrap, "VENV", tmp_path / ".venv")
    monkeypatch.setattr(bootstrap, "VENV_PYTHON", python)
    ran: list[list[str]] = []

    def run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[bytes]:
        ran.append(argv)
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(bootstrap.subprocess, "run", run)
    return ran


def test_extras_installed_with_more_cover_fewer(venv: list[list[str]]) -> None:
    """After `desktop` (or the tests' extras), `serve` needs no new install: the install ran pip
    (offline: failed, and `serve` did not start) although everything was there."""
    digest = bootstrap._stamp("").split(":")[0]
    (bootstrap.VENV / ".opscraft-installed").write_text(f"{digest}:test,desktop,packaging")
    for extras in ("", "desktop", "desktop,packaging"):
        assert bootstrap.ensure_venv(extras) == bootstrap.VENV_PYTHON
    assert venv == []
    bootstrap.ensure_venv("docs")  # not installed yet: pip runs, and the stamp keeps both
    assert any("-e" in argv for argv in venv)
    assert (bootstrap.VENV / ".opscraft-installed").read_text().split() == [
        f"{digest}:test,desktop,packaging",
        f"{digest}:docs",
    ]


def test_a_changed_pyproject_installs_again(venv: list[list[str]]) -> None:
    (bootstrap.VENV / ".opscraft-installed").write_text("0123456789abcdef:test,desktop")
    bootstrap.ensure_venv("")
    assert any("-e" in argv for argv in venv)
