"""The packaged binary of this checkout (packaging/build.sh, PyInstaller), built once per set of
sources: dist/ keeps a build stamped with the digest of the sources it was built from
(`SOURCES`), and a build of the same sources is taken as it is.

`python -m tests.binary_build` builds it ahead of the tests, so that a test run can start the
build in the background while it sets up the rest (`tests/run` does, step 3a: the test images'
debootstrap and downloads wait mostly on the network and the disk): the build is about 55 s of
CPU and was 122 s of tests/test_binary.py's 162 in session 45's suite, spent after pytest
started. The build holds an exclusive lock (flock(2) on `LOCK`) from its start to its stamp: a
test process arriving meanwhile waits for it instead of building the same sources again, then
takes its build, or builds itself when that build failed (its own failure is then the one
reported).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILT = ROOT / "dist" / "opscraft" / "opscraft"
STAMP = ROOT / "dist" / ".opscraft-sources"
LOCK = ROOT / "dist" / ".opscraft-build.lock"
SOURCES = ("opscraft", "packaging", "pyproject.toml")


def sources_digest() -> str:
    """SHA-256 (hex) of the paths and contents of every file of `SOURCES` (bytecode caches left out)."""
    digest = hashlib.sha256()
    for top in SOURCES:
        path = ROOT / top
        files = sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
        for file in files if path.is_dir() else [path]:
            digest.update(str(file.relative_to(ROOT)).encode() + b"\0" + file.read_bytes())
    return digest.hexdigest()


def is_fresh(digest: str) -> bool:
    """Whether dist/ holds a build stamped with `digest` (of `sources_digest`)."""
    return BUILT.exists() and STAMP.exists() and STAMP.read_text() == digest


def can_build() -> bool:
    """Whether this Python has what the build needs: PyInstaller and the desktop toolkit (the
    `packaging` and `desktop` extras)."""
    return all(importlib.util.find_spec(name) is not None for name in ("PyInstaller", "PySide6"))


@contextlib.contextmanager
def build_lock() -> Iterator[None]:
    """Hold the exclusive build lock (`LOCK`), waiting for a build underway in another process."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the flock


def build(digest: str) -> subprocess.CompletedProcess[str]:
    """Run packaging/build.sh with this Python (call it holding `build_lock`); the stamp says
    `digest` once it succeeded, and no build is stamped while it runs or after it failed. The
    finished process: its exit status and output.

    The build runs in a session of its own, killed whole (SIGKILL to its process group) when
    this call ends early: past its hour (`subprocess.TimeoutExpired`), or interrupted (Ctrl-C,
    pytest-timeout's exception raised in the main thread). `subprocess.run` killed only the
    shell, and PyInstaller ran on into dist/ beside the next build."""
    STAMP.unlink(missing_ok=True)
    with subprocess.Popen(
        ["bash", "packaging/build.sh"],
        cwd=ROOT,
        env={**os.environ, "OPSCRAFT_PYTHON": sys.executable},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            stdout, stderr = process.communicate(timeout=3600)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
    done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    if done.returncode == 0:
        STAMP.write_text(digest)
    return done


MODULE = ROOT / "tests" / "test_binary.py"


def selects_binary(pytest_args: list[str], cwd: Path = ROOT) -> bool:
    """Whether a pytest run with these arguments (`tests/run`'s, as typed) would collect
    tests/test_binary.py: true when no argument names an existing file or folder (pytest then
    collects its `testpaths`, the whole suite), or when one names the module itself (a node id
    such as `tests/test_binary.py::test_x` too) or a folder holding it. Relative paths are read
    from `cwd`. Options select no path, nor do values that name no folder or `.py` file
    (`-k binary`, `--junitxml /tmp/j.xml`); a value that names a folder counts as a test path
    (`--basetemp /tmp/t` alone: no build ahead, the session fixture builds as before). A `-k`
    or `-m` that leaves the module out is not looked into (the build is then not used)."""
    named = []
    for arg in pytest_args:
        if arg.startswith("-"):
            continue
        path = Path(arg.split("::", 1)[0])
        path = (path if path.is_absolute() else cwd / path).resolve()
        if path.exists() and (path.is_dir() or path.suffix == ".py"):
            named.append(path)
    return not named or any(path == MODULE or path in MODULE.parents for path in named)


def main(argv: list[str]) -> int:
    """Build the binary unless dist/ holds a build of these sources; the exit status of the
    build (0 when none was needed, or when this Python cannot build: the tests then skip).
    `--for ARGS...`: only when a pytest run with ARGS would run tests/test_binary.py
    (`selects_binary`; `tests/run` passes its own arguments), else 0 at once."""
    if argv[:1] == ["--for"] and not selects_binary(argv[1:], Path.cwd()):
        print("binary_build: these pytest arguments do not run tests/test_binary.py: not built")
        return 0
    if not can_build():
        print("binary_build: no PyInstaller or PySide6 here: not built", file=sys.stderr)
        return 0
    with build_lock():
        digest = sources_digest()
        if is_fresh(digest):
            print(f"binary_build: {BUILT} is of these sources")
            return 0
        done = build(digest)
    print(done.stdout[-5000:] + done.stderr[-5000:])
    return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
