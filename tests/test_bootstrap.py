"""`python3 -m opscraft` from a clone: `.venv` is set up once per pyproject.toml and extras."""

from __future__ import annotations

import re
import subprocess
import threading
import time
import tomllib
from importlib import metadata
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


def test_processes_started_at_once_install_the_venv_once(
    venv: list[list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A web process and its workers started together from a fresh clone each ran pip into the
    same `.venv` at once. Three at once here (threads: flock(2) locks belong to each open file,
    so they exclude each other as processes do); the install takes a moment, as pip's does."""

    def slow_run(argv: list[str], **_: Any) -> subprocess.CompletedProcess[bytes]:
        venv.append(argv)
        time.sleep(0.3)  # the stand-in install's own duration (pip: minutes), not a wait
        return subprocess.CompletedProcess(argv, 0)

    monkeypatch.setattr(bootstrap.subprocess, "run", slow_run)
    starts = [threading.Thread(target=bootstrap.ensure_venv, args=("",)) for _ in range(3)]
    for start in starts:
        start.start()
    for start in starts:
        start.join(30)
    assert sum("-e" in argv for argv in venv) == 1, venv
    assert bootstrap._installed(bootstrap._stamp(""))


def test_the_server_install_brings_ansible_inventory_which_the_inventory_rules_run() -> None:
    """The inventory save rules (a password in clear, a host starting with `-`, a text that does
    not parse: services/inventories.py) ask `ansible-inventory`, and make only the checks that
    need no Ansible without it. `ansible-core` was a test extra only: a server installed as the
    README says (`python3 -m opscraft serve`, the Dockerfile's image: the runtime dependencies)
    saved `h1 ansible_ssh_pass=hunter2`, `ansible_host=-oProxyCommand=x` and `[web` unrefused."""
    project = tomllib.loads((Path(bootstrap.__file__).parents[1] / "pyproject.toml").read_text())["project"]
    names = {re.split(r"[<>=!~;\[ ]", wanted, maxsplit=1)[0].lower() for wanted in project["dependencies"]}
    assert "ansible-core" in names, sorted(names)
    scripts = {Path(str(path)).name for path in metadata.files("ansible-core") or []}
    assert "ansible-inventory" in scripts, sorted(scripts)
