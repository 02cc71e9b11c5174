"""`tests/run` builds the packaged binary ahead, in the background, when its pytest arguments would
run tests/test_binary.py (tests/binary_build.py `selects_binary`, `--for`): the build (about 55 s
of CPU) then overlaps the run's set-up instead of being the module's first minute."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import binary_build
from tests.binary_build import ROOT, selects_binary
from tests.waiting import wait_until


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
    assert script.index('"$PY" -m pytest -n') > start  # the run of the tests (not step 3's collection)
    line = script[start:].splitlines()[0]
    assert line.startswith('"$PY" -m tests.binary_build --for "$@" >') and "&" in line


def test_a_build_interrupted_leaves_no_process_of_it_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pytest-timeout ends a test by raising in its main thread (SIGALRM): the session fixture's
    build (`binary_build.build`) was then left with `bash packaging/build.sh` killed and its
    PyInstaller running on, an orphan that built into dist/ beside the next build (seen at load
    26-30, where the build outlasted the 600 s limit). Interrupted, the whole build goes."""
    (tmp_path / "packaging").mkdir()
    pid_file = tmp_path / "child.pid"
    # A stand-in for build.sh: its long-running child (PyInstaller's place) writes its pid.
    (tmp_path / "packaging" / "build.sh").write_text(f"sleep 300 & echo $! > {pid_file}\nwait\n")
    monkeypatch.setattr(binary_build, "ROOT", tmp_path)
    monkeypatch.setattr(binary_build, "STAMP", tmp_path / "stamp")

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt  # as pytest-timeout's signal method raises in the main thread

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        with pytest.raises(KeyboardInterrupt):
            binary_build.build("digest")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    child = int(pid_file.read_text())
    wait_until(lambda: not _alive(child), "the build's child ends (it ran on)", timeout=10)
    assert not (tmp_path / "stamp").exists()


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie, ended and not yet reaped by init, counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def test_an_option_value_naming_a_folder_counts_as_a_test_path(tmp_path: Path) -> None:
    """What `selects_binary` says of `--basetemp DIR` (a value it cannot tell from a test path):
    no build ahead, the fixture's own build, never a run without its binary."""
    assert not selects_binary(["--basetemp", str(tmp_path)])
    assert selects_binary(["--basetemp", str(tmp_path), "tests/test_binary.py"])
