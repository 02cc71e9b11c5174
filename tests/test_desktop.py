"""`opscraft desktop` from the source checkout, as a real process on a virtual display (Xvfb):
the window opens signed in as the local administrator, other clients still need a login, the
size is remembered, closing the window stops the server and its runs; missing display or toolkit
is one line. The packaged binary's desktop is tested in tests/test_binary.py."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from opscraft.db.migrate import SQLITE_LOCK_SUFFIX
from opscraft.execution.docker_runner import LABEL_WORKER
from opscraft.execution.worker import worker_identity
from tests import migrated_sqlite
from tests.app_journey import FINAL, log_in, output, start_script, wait_execution
from tests.conftest import ARTIFACTS, ROOT, make_settings, require_service
from tests.desktop_session import (
    DesktopProcess,
    assert_not_blank,
    find_window,
    launch_desktop,
    unused_x_display,
)
from tests.waiting import wait_until

pytestmark = pytest.mark.desktop
RUNNER_IMAGE = "opscraft-test/runner:1"  # Debian minbase with bash (tests/images/build.sh)
PASSWORD = "Ops-Pass-1234"
NOT_INHERITED = {"PYTEST_CURRENT_TEST", "DISPLAY", "WAYLAND_DISPLAY"}


def base_env(data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in {"PYTEST_CURRENT_TEST", "DISPLAY", "WAYLAND_DISPLAY"}
    }
    return {
        **env,
        "OPSCRAFT_NO_BOOTSTRAP": "1",
        "OPSCRAFT_DATA_DIR": str(data_dir),
        "SECRET_KEY": "desktop-test-secret-" + "d" * 32,
        "OPSCRAFT_RATE_LIMIT_AUTH": "1000",
        "OPSCRAFT_RATE_LIMIT_API": "100000",
        **extra,
    }


@pytest.fixture(scope="module")
def toolkit(display: str) -> None:
    """The source checkout's Python has the desktop extra (a failure when CI=true)."""
    problem = subprocess.run(
        [sys.executable, "-c", "from opscraft.desktop import toolkit; print(toolkit.problem() or '')"],
        capture_output=True,
        text=True,
        env={**os.environ, "DISPLAY": display},
        cwd=ROOT,
    ).stdout.strip()
    require_service(not problem, f"the desktop toolkit ({problem})")


def desktop(display: str, data_dir: Path, name: str, **env: str) -> DesktopProcess:
    data_dir.mkdir(parents=True, exist_ok=True)
    return launch_desktop(
        [sys.executable, "-m", "opscraft", "desktop"],
        base_env(data_dir, **env),
        display,
        data_dir / f"{name}.log",
        ROOT,
    )


def start_launch(display: str, data_dir: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """`opscraft desktop` started in a session of its own (its process group: the launch, the
    window process and Qt's helpers), its output in `log_path`; the caller waits for it."""
    with log_path.open("wb") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "opscraft", "desktop"],
            env=base_env(data_dir, DISPLAY=display),
            cwd=ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def logged_lines(data_dir: Path) -> list[str]:
    """The records of the desktop log file of `data_dir`, each without its time."""
    return [line.split(" ", 2)[2] for line in (data_dir / "desktop.log").read_text().splitlines()]


def live_members(group: int) -> list[int]:
    """The processes of process group `group` that have not ended (zombies left out: the
    container's init may not reap what the window process's Qt helpers leave)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] != "Z" and int(fields[2]) == group:
                members.append(int(stat.parent.name))
    return members


def launch(display: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`opscraft desktop` run to its end: for launches refused before any window opens."""
    return subprocess.run(
        [sys.executable, "-m", "opscraft", "desktop", *args],
        capture_output=True,
        text=True,
        env=base_env(data_dir, DISPLAY=display),
        cwd=ROOT,
        timeout=180,
    )


@pytest.mark.docker
def test_window_opens_signed_in_remembers_its_size_and_closing_it_stops_its_runs(
    display: str, toolkit: None, tmp_path: Path
) -> None:
    """One launch's window: signed in as the local administrator, everything else still needs a
    login, a second launch on its data directory is refused, a run in Docker shows in the window's
    terminal, and closing the window stops the server and that run (its container removed). A
    second launch has the size the first one was left at, and stops with the server on SIGTERM.
    (The run's checks were a test of their own, which paid a desktop launch, a window and a CLI
    start of its own: seconds of the module's CPU.)"""
    require_service(os.environ.get("OPSCRAFT_TEST_DOCKER") == "1", "Docker engine with the test images")
    data_dir = tmp_path / "data"
    app = desktop(
        display,
        data_dir,
        "first",
        OPSCRAFT_IMAGE_BASH=RUNNER_IMAGE,
        OPSCRAFT_SHUTDOWN_GRACE_SECONDS="1",
    )
    try:
        assert app.window.title() == "OpsCraft"
        assert app.window.size() == (1280, 820)  # the default on a first launch
        assert app.url.startswith("http://127.0.0.1:")
        text = app.page.wait_for_text("Dashboard")
        assert "Desktop (local administrator) · admin" in text
        assert_not_blank(app.window.screenshot(ARTIFACTS / "desktop_window.png"))

        # Everything but the window still needs a login.
        assert httpx.get(f"{app.url}/api/v1/users").status_code == 401
        guess = httpx.get(f"{app.url}/desktop/sign-in", params={"token": "x" * 43})
        assert guess.status_code == 303 and guess.headers["location"] == "/login"
        assert httpx.get(f"{app.url}/").headers.get("location") == "/login"
        assert "token=***" in app.log() and "x" * 43 not in app.log()
        # The log file has what standard error has, credentials redacted too: the window's
        # own sign-in URL (its one-time secret) and the guess.
        logged = (data_dir / "desktop.log").read_text()
        assert "GET /desktop/sign-in?token=*** " in logged and "x" * 43 not in logged
        assert not re.search(r"token=(?!\*\*\*)", logged), logged
        assert "Application startup complete" in logged

        # A second launch on the same data directory would become this one's worker and end its
        # runs: it stops with one line before any window opens, and this window goes on (checked
        # here rather than with a launch of its own in the taken-port test below: each desktop
        # launch costs seconds of the module's time).
        second = launch(display, data_dir)
        assert second.returncode == 1, second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(
            f"opscraft: another OpsCraft process (pid {app.process.pid}) is already running on the "
            f"data directory {data_dir}"
        ), lines
        assert app.process.poll() is None

        # An administrator made beside the running server (`user create` may run beside it)
        # starts a run through the API; the window's terminal shows its output.
        created = subprocess.run(
            [sys.executable, "-m", "opscraft", "user", "create", "ops", "--role", "admin"],
            input=PASSWORD + "\n",
            capture_output=True,
            text=True,
            env=base_env(data_dir),
            cwd=ROOT,
            timeout=120,
        )
        assert created.returncode == 0, created.stderr
        headers = log_in(app.url, "ops", PASSWORD)
        execution_id = start_script(app.url, headers, 'echo "window-run-$((6 * 7))"; sleep 300')
        wait_execution(app.url, headers, execution_id, {"running"}, timeout=120)
        wait_until(
            lambda: "window-run-42" in output(app.url, headers, execution_id),
            "the run's first line in its stored output",
            timeout=60,
            every=0.2,
        )
        app.page.go(f"/executions/{execution_id}")
        app.page.wait_for_text("window-run-42", selector=".xterm-rows")  # in the window's terminal
        app.window.screenshot(ARTIFACTS / "desktop_execution.png")

        app.window.resize(1000, 700)
        saved = data_dir / "desktop-window.json"
        wait_until(
            lambda: saved.exists() and json.loads(saved.read_text()) == {"width": 1000, "height": 700},
            "the window's new size saved",
            timeout=30,
            every=0.2,
        )
        assert app.close() == 0
    finally:
        app.kill()
    assert not (ROOT / ".nicegui").exists()  # session storage lives in the data directory
    with sqlite3.connect(data_dir / "opscraft.db") as db:
        status = db.execute("SELECT status FROM executions WHERE id = ?", (execution_id,)).fetchone()[0]
    assert status in FINAL - {"success"}
    instance = worker_identity(make_settings(data_dir))
    left = subprocess.run(
        ["docker", "ps", "-aq", "--filter", f"label={LABEL_WORKER}={instance}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert left.stdout.strip() == ""  # its container was killed and removed

    again = desktop(display, data_dir, "second")  # a new launch, a new one-time secret
    try:
        assert again.window.size() == (1000, 700)
        # Stopped like any server (`kill`, a session's end): the window goes with it. Its process
        # stayed, showing a server that was gone, until the test killed it.
        again.process.send_signal(signal.SIGTERM)
        again.process.wait(timeout=90)  # ended by the signal uvicorn re-raises after its shutdown
        assert "Application shutdown complete" in again.log()
        wait_until(lambda: not live_members(again.process.pid), "the window process to end", timeout=30)
    finally:
        again.kill()
    with sqlite3.connect(data_dir / "opscraft.db") as db:
        logins = db.execute(
            "SELECT count(*) FROM audit_events WHERE action = 'auth.login' AND details LIKE '%desktop%'"
        ).fetchone()[0]
        admins = db.execute("SELECT username, role FROM users ORDER BY id").fetchall()
    assert logins == 2 and admins == [("desktop", "admin"), ("ops", "admin")]


def test_no_display_is_one_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "opscraft", "desktop"],
        capture_output=True,
        text=True,
        env=base_env(tmp_path),
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 1
    refusal = (
        "opscraft: no display for the desktop window (DISPLAY and WAYLAND_DISPLAY are unset): "
        "start it from a desktop session, or run `opscraft serve` and use a browser"
    )
    assert result.stderr.strip().splitlines() == [f"{refusal} (logged in {tmp_path / 'desktop.log'})"]
    # Started from a launcher, standard error is lost: the refusal is in the log file too.
    assert logged_lines(tmp_path) == [f"ERROR opscraft.desktop.log_file: {refusal}"]


def test_a_display_that_is_gone_is_one_line(toolkit: None, tmp_path: Path) -> None:
    """DISPLAY names no running X server (a session that ended): one line naming it, before the
    window or the server start. Qt's own messages ("xcb-cursor0 ... is needed", "Reinstalling
    the application may fix this problem") came after the database had been made."""
    gone = f":{unused_x_display()}"
    result = launch(gone, tmp_path / "data")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"opscraft: cannot connect to the display for the desktop window (DISPLAY={gone}): "
        "start it from a running desktop session, or run `opscraft serve` and use a browser "
        f"(logged in {tmp_path / 'data' / 'desktop.log'})"
    ]
    assert not (tmp_path / "data" / "opscraft.db").exists()


def test_missing_toolkit_is_one_line(tmp_path: Path) -> None:
    # Stand-in for a machine without Qt: a PySide6 package that cannot be imported shadows the real one.
    fake = tmp_path / "site" / "PySide6"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no Qt here')\n")
    result = subprocess.run(
        [sys.executable, "-m", "opscraft", "desktop"],
        capture_output=True,
        text=True,
        env=base_env(tmp_path / "data", DISPLAY=":99", PYTHONPATH=str(tmp_path / "site")),
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "opscraft: the desktop window needs pywebview and Qt WebEngine (PySide6.QtWebEngineWidgets): "
        "pip install 'opscraft[desktop]' (from a clone, `python3 -m opscraft desktop` installs it into "
        f".venv) (logged in {tmp_path / 'data' / 'desktop.log'})"
    ]
    assert not (tmp_path / "data" / "opscraft.db").exists()  # it stopped before starting anything


def test_a_toolkit_that_fails_to_start_ends_the_launch(display: str, toolkit: None, tmp_path: Path) -> None:
    # Qt itself fails in the window process: no such platform plugin.
    result = subprocess.run(
        [sys.executable, "-m", "opscraft", "desktop"],
        capture_output=True,
        text=True,
        env=base_env(tmp_path, DISPLAY=display, QT_QPA_PLATFORM="no-such-platform"),
        cwd=ROOT,
        timeout=180,
    )
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1] == (
        "opscraft: the desktop window could not open (the GUI toolkit's messages are above) "
        f"(logged in {tmp_path / 'desktop.log'})"
    )
    assert "Traceback" not in result.stderr


def test_a_taken_port_is_one_line_before_any_window(display: str, toolkit: None, tmp_path: Path) -> None:
    """A taken `--port` left a window saying "starting" while the server failed to bind, then
    ended with a traceback and "the desktop window could not open (the GUI toolkit's messages
    are above)". It now stops with one line before any window opens. (A second launch on the
    same data directory, which became the first one's worker and ended its runs, stops the same
    way: test_window_opens_signed_in_remembers_its_size_and_closing_it_stops_its_runs checks it
    beside its window.)"""

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        refused = launch(display, tmp_path / "other", "--port", str(port))
    assert refused.returncode == 1, refused.stderr
    assert refused.stderr.strip().splitlines() == [
        f"opscraft: cannot listen on 127.0.0.1:{port}: Address already in use: choose another --port "
        f"(logged in {tmp_path / 'other' / 'desktop.log'})"
    ]


def test_a_damaged_database_is_one_line_and_takes_the_window_with_it(
    display: str, toolkit: None, tmp_path: Path
) -> None:
    """The window appears before the database is opened. A damaged database ended the launch with
    a traceback (or, damaged elsewhere, its one line), then "the desktop window could not open
    (the GUI toolkit's messages are above)", and left the window saying "OpsCraft is starting"
    for ever. Now the one line only, status 1, the window goes, and the file is left as it was
    (never replaced by a new database)."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    damaged = migrated_sqlite.seed_damaged(data_dir)
    log_path = tmp_path / "launch.log"
    process = start_launch(display, data_dir, log_path)
    try:
        code = process.wait(timeout=180)
        wait_until(lambda: not live_members(process.pid), "the window process to end", timeout=30)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    log = log_path.read_text(errors="replace")
    assert code == 1, log
    assert "Traceback" not in log, log
    assert [line for line in log.splitlines() if line.startswith("opscraft:")] == [
        "opscraft: cannot open the SQLite database: database disk image is malformed "
        f"(text that is not UTF-8: invalid start byte) (logged in {data_dir / 'desktop.log'})"
    ], log
    assert (data_dir / "opscraft.db").read_bytes() == damaged


def test_closing_the_window_while_the_app_starts_ends_the_launch_quietly(
    display: str, toolkit: None, tmp_path: Path
) -> None:
    """The window shows "OpsCraft is starting" while the server boots; held here at the database
    migration (the test holds its lock), the user closes it. The launch ended with exit code 1,
    a traceback of the window process and "the desktop window could not open (the GUI
    toolkit's messages are above)": the window had been shown, but the server was told only
    through NiceGUI's event bridge, bound later. It now ends with 0 and says nothing."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    lock = os.open(data_dir / f"opscraft.db{SQLITE_LOCK_SUFFIX}", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    log_path = tmp_path / "launch.log"
    try:
        process = start_launch(display, data_dir, log_path)
        try:
            find_window(display, "OpsCraft", time.monotonic() + 180, process).close()
            code = process.wait(timeout=90)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
    finally:
        os.close(lock)
    log = log_path.read_text(errors="replace")
    assert code == 0, log
    assert "Traceback" not in log and "could not open" not in log, log
