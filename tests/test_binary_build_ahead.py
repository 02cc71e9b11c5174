"""`tests/run` builds the packaged binary ahead, in the background, when its pytest arguments would
run tests/test_binary.py (tests/binary_build.py `selects_binary`, `--for`): the build (about 55 s
of CPU) then overlaps the run's set-up instead of being the module's first minute."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.binary_build import ROOT, selects_binary


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["-p", "no:randomly", "--junitxml", "/tmp/j.xml"],
        ["-k", "binary or cli"],
        ["tests"],
        ["tests/"],
        ["./tests"],
        ["tests/test_binary.py"],
        ["tests/test_binary.py::test_serve_is_its_own_python"],
        ["tests/test_cli.py", "tests/test_binary.py"],
        [str(ROOT / "tests" / "test_binary.py")],
        [str(ROOT)],
    ],
)
def test_a_run_that_collects_the_binary_module_builds_it_ahead(args: list[str]) -> None:
    assert selects_binary(args)


@pytest.mark.parametrize(
    "args",
    [
        ["tests/test_cli.py"],
        ["tests/scale", "-k", "binary"],
        ["tests/executions/test_control.py::test_cancel", "--junitxml", "/tmp/j.xml"],
        [str(ROOT / "tests" / "automation")],
    ],
)
def test_a_run_of_other_modules_builds_nothing_ahead(args: list[str]) -> None:
    assert not selects_binary(args)


def test_relative_paths_are_read_from_the_folder_given(tmp_path: Path) -> None:
    """`tests/run` runs from the checkout; from elsewhere `tests/test_cli.py` names no file."""
    assert not selects_binary(["tests/test_cli.py"], ROOT)
    assert selects_binary(["tests/test_cli.py"], tmp_path)  # names nothing there: the whole suite


def test_build_for_other_modules_returns_at_once_without_building() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.binary_build", "--for", "tests/test_cli.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "do not run tests/test_binary.py: not built" in done.stdout


def test_the_test_script_starts_the_build_before_pytest_with_its_arguments() -> None:
    script = (ROOT / "tests" / "run").read_text()
    start = script.index('"$PY" -m tests.binary_build --for "$@"')
    assert script.index('"$PY" -m pytest') > start
    line = script[start:].splitlines()[0]
    assert line.startswith('"$PY" -m tests.binary_build --for "$@" >') and "&" in line
