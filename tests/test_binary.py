"""The packaged binary (packaging/build.sh, PyInstaller), run the way someone with only the
binary runs it: PATH=/usr/bin:/bin, no venv, no PYTHONPATH, a fresh HOME, outside the checkout.

The session builds it once (a few minutes) unless dist/ already holds a build of the same
sources or another process is building them (`python -m tests.binary_build`, which a test run
may start ahead in the background); OPSCRAFT_TEST_BINARY=/path/to/opscraft tests a given build
instead.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from opscraft import __version__
from tests import binary_build, migrated_sqlite
from tests.app_journey import ADMIN, log_in, output, start_script, wait_execution, wait_healthy
from tests.conftest import ARTIFACTS, PG_URL, free_port, require_service
from tests.desktop_session import assert_not_blank, launch_desktop, unused_x_display
from tests.scale.cluster import RedisServer, wait_for
from tests.scale.test_nginx import _ScratchDatabase

pytestmark = pytest.mark.binary
RUNNER_IMAGE = "opscraft-test/runner:1"  # Debian minbase with bash (tests/images/build.sh)


@pytest.fixture(scope="session")
def binary() -> Path:
    """The binary under test, built from this checkout when dist/ has no build of these sources
    (`tests.binary_build`: a build another process started is waited for, not repeated)."""
    if os.environ.get("OPSCRAFT_TEST_BINARY"):
        return Path(os.environ["OPSCRAFT_TEST_BINARY"])
    with binary_build.build_lock():
        digest = binary_build.sources_digest()
        if binary_build.is_fresh(digest):
            return binary_build.BUILT
        require_service(
            binary_build.can_build(),
            "PyInstaller and the desktop toolkit (the `packaging` and `desktop` extras)",
        )
        done = binary_build.build(digest)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-5000:]
    return binary_build.BUILT


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """Only what a user's session would have: no venv, no Python paths, no test variables."""
    home.mkdir(parents=True, exist_ok=True)
    return {"PATH": "/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8", **extra}


def run(
    binary: Path, home: Path, *args: str, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(binary), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=home,
        env=clean_env(home, **env),
        timeout=300,
    )


def test_the_binary_offers_the_cli(binary: Path, tmp_path: Path) -> None:
    data = {"OPSCRAFT_DATA_DIR": str(tmp_path / "data")}
    version = run(binary, tmp_path, "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"opscraft {__version__}", version.stderr
    helped = run(binary, tmp_path, "--help")
    for command in ("serve", "worker", "desktop", "user", "db", "secrets"):
        assert command in helped.stdout
    upgraded = run(binary, tmp_path, "db", "upgrade", **data)
    assert upgraded.returncode == 0 and upgraded.stdout.startswith("database is at revision "), (
        upgraded.stderr
    )
    created = run(
        binary, tmp_path, "user", "create", "ops", "--role", "operator", stdin="Ops-Pass-1234\n", **data
    )
    assert created.returncode == 0 and "created operator 'ops'" in created.stdout, created.stderr
    key = run(binary, tmp_path, "secrets", "generate-key")
    assert key.returncode == 0 and len(key.stdout.strip()) == 44
    # Without a display and without arguments there is no window to default to: usage, not a crash.
    bare = run(binary, tmp_path)
    assert bare.returncode == 2 and "required: command" in bare.stderr
    # A display that is gone (a session that ended): one line, before the server or window starts.
    gone = f":{unused_x_display()}"
    stale = run(binary, tmp_path, DISPLAY=gone, OPSCRAFT_DATA_DIR=str(tmp_path / "stale"))
    assert stale.returncode == 1 and stale.stderr.strip().splitlines() == [
        f"opscraft: cannot connect to the display for the desktop window (DISPLAY={gone}): "
        "start it from a running desktop session, or run `opscraft serve` and use a browser "
        f"(logged in {tmp_path / 'stale' / 'desktop.log'})"
    ], stale.stderr
    assert not (tmp_path / "stale" / "opscraft.db").exists()


@contextlib.contextmanager
def serving(
    binary: Path, home: Path, *args: str, **env: str
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """`binary serve [args]` on a free port with the data directory in `home`, until healthy: its
    URL and process. Stopped with SIGTERM afterwards, which must shut it down cleanly."""
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "serve.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(binary), "serve", *args, "--port", str(port)],
            cwd=home,
            env=clean_env(home, OPSCRAFT_DATA_DIR=str(home / "data"), **env),
            stdout=log_file,
            stderr=log_file,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, time.monotonic() + 120, process)
        yield url, process
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    # uvicorn shuts down cleanly, then re-raises the SIGTERM it caught
    assert process.returncode in (0, -signal.SIGTERM), log_path.read_text(errors="replace")
    assert "Application shutdown complete" in log_path.read_text(errors="replace")


def first_admin(url: str) -> dict[str, str]:
    """Register the first user (who becomes admin) and log in: the request headers."""
    registered = httpx.post(f"{url}/api/v1/auth/register", json=ADMIN, timeout=30)
    assert registered.status_code == 201 and registered.json()["role"] == "admin", registered.text
    return log_in(url, ADMIN["username"], ADMIN["password"])


@contextlib.contextmanager
def worker_process(binary: Path, home: Path, name: str, **env: str) -> Iterator[subprocess.Popen[bytes]]:
    """`binary worker --runner local --name name` with its data directory in `home`; stopped with
    SIGTERM afterwards, which must end it cleanly (exit status 0)."""
    log_path = home / "worker.log"
    home.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [str(binary), "worker", "--runner", "local", "--name", name],
            cwd=home,
            env=clean_env(home, OPSCRAFT_DATA_DIR=str(home / "data"), **env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    finally:
        process.terminate()
        assert process.wait(timeout=60) == 0, log_path.read_text(errors="replace")


def test_a_worker_process_of_the_binary_runs_the_web_process_runs(binary: Path, tmp_path: Path) -> None:
    """The team shape from the binary alone (docs/deployment.md): `serve --workers 0` and a
    `worker` process, both the binary, on PostgreSQL and a private Redis. The run is the worker's."""
    require_service(bool(PG_URL), "PostgreSQL (OPSCRAFT_TEST_PG_URL)")
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    name = f"bin-{secrets.token_hex(3)}"
    try:
        with contextlib.ExitStack() as stack:
            team = {
                "DATABASE_URL": stack.enter_context(_ScratchDatabase()),
                "REDIS_URL": redis.url,
                "SECRET_KEY": "binary-team-secret-" + "k" * 32,
                "OPSCRAFT_MASTER_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
                "OPSCRAFT_LOCAL_RUNNER": "1",
            }
            url, _web = stack.enter_context(serving(binary, tmp_path / "web", "--workers", "0", **team))
            worker = stack.enter_context(worker_process(binary, tmp_path / "worker", name, **team))
            headers = first_admin(url)

            def alive() -> bool:
                assert worker.poll() is None, (tmp_path / "worker" / "worker.log").read_text(errors="replace")
                rows = httpx.get(f"{url}/api/v1/workers", headers=headers, timeout=30).json()["items"]
                return any(w["id"] == name and w["state"] == "alive" for w in rows)

            wait_for(alive, 120, f"worker {name} to be alive", every=0.2)

            def started() -> str:
                return (tmp_path / "worker" / "worker.log").read_text(errors="replace")

            # Its start-up line may follow its first heartbeat (seen under load: an empty log).
            line = f"worker {name} started"
            wait_for(lambda: line in started(), 60, "the worker's start-up line", every=0.2)
            assert "docker not offered (--runner)" in started(), started()  # not "not reachable"
            enabled = httpx.put(
                f"{url}/api/v1/settings", json={"local_runner_enabled": True}, headers=headers, timeout=30
            )
            assert enabled.status_code == 200, enabled.text
            execution_id = start_script(url, headers, 'echo "team-binary-$((6 * 7))"', runner="local")
            final = wait_execution(url, headers, execution_id, {"success", "failed", "error"}, timeout=120)
            assert final["status"] == "success" and final["worker_id"] == name, final
            assert "team-binary-42" in output(url, headers, execution_id)
    finally:
        redis.stop()


@pytest.mark.desktop
@pytest.mark.docker
def test_desktop_from_the_binary_alone_runs_a_script_and_shows_its_output(
    binary: Path, display: str, tmp_path: Path
) -> None:
    require_service(os.environ.get("OPSCRAFT_TEST_DOCKER") == "1", "Docker engine with the test images")
    data = {"OPSCRAFT_DATA_DIR": str(tmp_path / "data"), "OPSCRAFT_IMAGE_BASH": RUNNER_IMAGE}
    # At the head: the binary's own migrations run in test_the_binary_offers_the_cli's `db upgrade`.
    migrated_sqlite.seed(tmp_path / "data")
    created = run(
        binary, tmp_path, "user", "create", "ops", "--role", "admin", stdin="Ops-Pass-1234\n", **data
    )
    assert created.returncode == 0, created.stderr
    # No arguments: from a desktop session the binary opens the window.
    app = launch_desktop(
        [str(binary)], clean_env(tmp_path, **data), display, tmp_path / "desktop.log", tmp_path
    )
    try:
        assert app.window.title() == "OpsCraft"
        assert_not_blank(app.window.screenshot(ARTIFACTS / "binary_desktop.png"))
        headers = log_in(app.url, "ops", "Ops-Pass-1234")
        execution_id = start_script(app.url, headers, 'echo "binary-window-$((6 * 7))"')
        final = wait_execution(app.url, headers, execution_id, {"success", "failed", "error"}, timeout=180)
        assert final["status"] == "success", final
        app.page.go(f"/executions/{execution_id}")
        app.page.wait_for_text("binary-window-42", selector=".xterm-rows")
        assert_not_blank(app.window.screenshot(ARTIFACTS / "binary_desktop_execution.png"))
        assert app.close() == 0
    finally:
        app.kill()


@dataclass
class Served:
    """One `binary serve` (`serving`) and the bearer headers of its first admin (`first_admin`)."""

    url: str
    process: subprocess.Popen[bytes]
    headers: dict[str, str]


@pytest.fixture(scope="module")
def served(binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One `binary serve` for the module's runs in Docker (the test image) and on the local runner
    (allowed): each test names its runner, so neither depends on the other's settings. A start of
    the binary's server with its first admin costs seconds of CPU (imports, the API's route state,
    two real argon2 hashes); the clean SIGTERM shutdown is still checked, at the module's end
    (these tests come last in the module, so the server does not idle through the others)."""
    with serving(
        binary,
        tmp_path_factory.mktemp("binary-serve"),
        OPSCRAFT_IMAGE_BASH=RUNNER_IMAGE,
        OPSCRAFT_LOCAL_RUNNER="1",
    ) as (url, process):
        yield Served(url, process, first_admin(url))


def test_serve_is_its_own_python(binary: Path, served: Served) -> None:
    maps = Path(f"/proc/{served.process.pid}/maps").read_text()
    assert str(binary.parent / "_internal" / "libpython3") in maps  # its own Python, nothing else
    assert ".venv" not in maps and "/usr/lib/python3" not in maps


@pytest.mark.docker
def test_serve_registers_an_admin_and_runs_a_script_in_docker(served: Served) -> None:
    require_service(os.environ.get("OPSCRAFT_TEST_DOCKER") == "1", "Docker engine with the test images")
    url, headers = served.url, served.headers
    execution_id = start_script(url, headers, 'echo "from-binary-$((6 * 7))"')
    final = wait_execution(url, headers, execution_id, {"success", "failed", "error"}, timeout=180)
    assert final["status"] == "success" and final["runner"] == "docker", final
    assert "from-binary-42" in output(url, headers, execution_id)


def test_serve_runs_a_script_on_the_local_runner(served: Served) -> None:
    """Where there is no Docker: the binary has no Python to start the local runner's fork
    server with, so it starts itself as that (every local run ended in `error` before)."""
    url, headers = served.url, served.headers
    enabled = httpx.put(
        f"{url}/api/v1/settings", json={"local_runner_enabled": True}, headers=headers, timeout=30
    )
    assert enabled.status_code == 200, enabled.text
    execution_id = start_script(url, headers, 'echo "local-binary-$((6 * 7))"', runner="local")
    final = wait_execution(url, headers, execution_id, {"success", "failed", "error"}, timeout=120)
    assert final["status"] == "success" and final["runner"] == "local", final
    assert "local-binary-42" in output(url, headers, execution_id)
