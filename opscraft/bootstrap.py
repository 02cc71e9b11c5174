"""Self-setup for a source checkout: create `.venv` and install OpsCraft into it (stdlib only).

`python3 -m opscraft ...` calls `ensure_venv()` and re-runs itself inside the venv, so one
command works on a fresh machine; `python3 -m opscraft desktop` also installs the `desktop`
extra (pywebview with Qt WebEngine). `python3 -m opscraft.bootstrap test` installs the test extras.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
VENV_PYTHON = VENV / "bin" / "python"


def in_checkout() -> bool:
    """True when running from a source checkout (a pyproject.toml at the repository root)."""
    return (ROOT / "pyproject.toml").is_file()


def in_venv() -> bool:
    """True when the running interpreter is the checkout's own .venv."""
    return Path(sys.prefix).resolve() == VENV.resolve()


def has_display() -> bool:
    """True in a desktop session: a graphical display is set (X11/Wayland) or the OS always has one."""
    if sys.platform.startswith(("win", "darwin")):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def with_default_command(argv: list[str]) -> list[str]:
    """`opscraft` without arguments in a desktop session opens the desktop window."""
    return ["desktop"] if not argv and has_display() else argv


def extras_for(argv: list[str]) -> str:
    """The optional dependencies a command line needs: the GUI toolkit for `desktop`."""
    return "desktop" if with_default_command(argv)[:1] == ["desktop"] else ""


def _stamp(extras: str) -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()[:16]
    return f"{digest}:{extras}"


def _covered(stamps: str, wanted: str) -> bool:
    """Whether one of the `stamps` (`digest:extras`, space-separated) installed this pyproject.toml
    with at least the extras `wanted` asks for: after `desktop` (or the tests' `test,desktop,...`)
    the runtime alone needs no new install, which offline would fail and stop `serve`."""
    digest, _, extras = wanted.partition(":")
    need = set(filter(None, extras.split(",")))
    for stamp in stamps.split():
        done, _, installed = stamp.partition(":")
        if done == digest and need <= set(filter(None, installed.split(","))):
            return True
    return False


@contextlib.contextmanager
def _install_lock() -> Iterator[None]:
    """Held while `.venv` is checked and installed: processes started at once from a fresh
    checkout (a web process and its workers) each created `.venv` and ran pip into the same
    folder; now one installs and the others wait, then find it done. flock(2) on the folder
    holding `.venv` (no lock file left behind); nothing where flock does not exist (Windows)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover (not on Linux)
        yield
        return
    fd = os.open(VENV.parent, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print("opscraft: waiting for another process installing .venv ...", file=sys.stderr)
            fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _installed(wanted: str) -> bool:
    stamp_file = VENV / ".opscraft-installed"
    return VENV_PYTHON.exists() and stamp_file.exists() and _covered(stamp_file.read_text(), wanted)


def ensure_venv(extras: str = "") -> Path:
    """Create/refresh `.venv` when pyproject.toml (or the extras asked for) changed, one process
    at a time (`_install_lock`). Returns its python. Exits with one line when venv or pip fails."""
    wanted = _stamp(extras)
    if _installed(wanted):
        return VENV_PYTHON
    with _install_lock():
        if not _installed(wanted):  # another process may have installed it meanwhile
            _install(extras, wanted)
    return VENV_PYTHON


def _install(extras: str, wanted: str) -> None:
    """Create `.venv` if missing, install the checkout with `extras` into it, record `wanted`."""
    stamp_file = VENV / ".opscraft-installed"
    if not VENV_PYTHON.exists():
        print("opscraft: creating a virtual environment in .venv ...", file=sys.stderr)
        try:
            subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        except subprocess.CalledProcessError:
            sys.exit(
                "opscraft: could not create .venv: install the venv module (apt-get install python3-venv)"
            )
    target = f"{ROOT}[{extras}]" if extras else str(ROOT)
    print(f"opscraft: installing dependencies ({extras or 'runtime'}) ...", file=sys.stderr)
    pip = [str(VENV_PYTHON), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    try:
        subprocess.run([*pip, "--upgrade", "pip"], check=True)
        subprocess.run([*pip, "-e", target], check=True)
    except subprocess.CalledProcessError:
        sys.exit(f"opscraft: installing the {extras or 'runtime'} dependencies into .venv failed (see above)")
    previous = stamp_file.read_text().split() if stamp_file.exists() else []
    stamp_file.write_text(
        " ".join([*(s for s in previous if s.split(":")[0] == wanted.split(":")[0]), wanted])
    )


def main() -> None:
    """Entry point: make sure the checkout's .venv is installed with the extras named in argv[1]
    (optional) and print the path of its python.
    """
    extras = sys.argv[1] if len(sys.argv) > 1 else ""
    print(ensure_venv(extras))


if __name__ == "__main__":
    main()
