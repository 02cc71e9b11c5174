"""A run stopped (cancel, timeout) while the Docker engine creates, attaches or starts its cold
container ends at once: it used to wait for the engine's answer to each of those calls (up to
`ENGINE_TIMEOUT_SECONDS`, 20 s, each on a slow engine), since the run's kill only came once its
container had started. The container the engine makes after the run ended is removed.

The slow engine is the machine's own behind a proxy on a unix socket (DOCKER_HOST) that holds
one kind of request (`/containers/create`, `/attach`, `/start`) until the test lets it go.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opscraft import runtime
from opscraft.execution import docker_runner
from tests.conftest import LoggedIn
from tests.executions.conftest import BUSYBOX_IMAGE, make_script, require_docker, start, wait_for
from tests.waiting import until

ENGINE_SOCKET = "/var/run/docker.sock"
HOLD_LIMIT_SECONDS = 60
"""The longest the proxy holds a request (the test lets it go once the run ended)."""
STEPS = {
    "create": b"/containers/create",  # POST /v1.xx/containers/create HTTP/1.1
    "attach": b"/attach?",
    "start": b"/start HTTP/",
}

pytestmark = pytest.mark.docker


class SlowEngine:
    """A proxy to the machine's engine on a unix socket, which holds the first request whose
    request line has `pattern` until `release` is set (or `HOLD_LIMIT_SECONDS` pass)."""

    def __init__(self, pattern: bytes) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ocs-", dir="/tmp"))  # short: a socket path is bounded
        self.path = str(self.dir / "sock")
        self.pattern = pattern
        self.held = threading.Event()
        self.release = threading.Event()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                engine.connect(ENGINE_SOCKET)
                back = threading.Thread(target=_pump, args=(engine, self.request, None), daemon=True)
                back.start()
                _pump(self.request, engine, proxy)
                back.join()
                engine.close()

        self.server = socketserver.ThreadingUnixStreamServer(self.path, Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def hold(self, chunk: bytes) -> None:
        """Called with each chunk a client sends: the first with the pattern waits for `release`."""
        if self.pattern in chunk and not self.held.is_set():
            self.held.set()
            self.release.wait(HOLD_LIMIT_SECONDS)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
        with contextlib.suppress(OSError):
            Path(self.path).unlink()
            self.dir.rmdir()


def _pump(source: socket.socket, target: socket.socket, proxy: SlowEngine | None) -> None:
    """Copy `source` to `target` until `source` ends, then end `target`'s writing side."""
    with contextlib.suppress(OSError):
        while chunk := source.recv(65536):
            if proxy is not None:
                proxy.hold(chunk)
            target.sendall(chunk)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def step(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def slow_engine(step: str) -> Iterator[SlowEngine]:
    require_docker()
    proxy = SlowEngine(STEPS[step])
    try:
        yield proxy
    finally:
        proxy.close()


@pytest.fixture
def engine_settings(slow_engine: SlowEngine, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The runtime reaches the engine through the proxy; no warm pool: every run starts cold."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{slow_engine.path}")
    return {"OPSCRAFT_IMAGE_BASH": BUSYBOX_IMAGE, "OPSCRAFT_WARM_POOL_SIZE": 0}


def _containers_of(execution_id: int) -> str:
    """The containers of this runtime's worker for `execution_id` (other tests' workers, on the
    same engine, number their runs from 1 too)."""
    worker = runtime.current().worker
    assert worker is not None
    labels = [
        f"{docker_runner.LABEL_EXECUTION}={execution_id}",
        f"{docker_runner.LABEL_WORKER}={worker.worker_id}",
    ]
    listed = subprocess.run(
        ["docker", "ps", "-aq", *(part for label in labels for part in ("--filter", f"label={label}"))],
        capture_output=True,
        check=True,
        text=True,
        env={"PATH": "/usr/bin:/bin:/usr/local/bin", "DOCKER_HOST": f"unix://{ENGINE_SOCKET}"},
    )
    return listed.stdout.strip()


def _cold_starts() -> list[threading.Thread]:
    """The cold starts still waiting for the engine (`docker_runner._unless_stopped`)."""
    return [t for t in threading.enumerate() if t.name == docker_runner.COLD_START_THREAD and t.is_alive()]


@pytest.mark.parametrize(
    ("step", "how"),
    [("create", "cancel"), ("attach", "cancel"), ("start", "cancel"), ("create", "timeout")],
    indirect=["step"],
)
async def test_a_run_stopped_while_its_container_is_created_ends_at_once(
    client: httpx.AsyncClient, admin: LoggedIn, slow_engine: SlowEngine, step: str, how: str
) -> None:
    script_id = await make_script(client, admin, "echo never\n", timeout_seconds=3)
    started = await start(client, admin, script_id, "docker")
    assert await until(slow_engine.held.is_set, f"the run's {step} call to reach the engine", 30)
    stopped = time.monotonic()
    if how == "cancel":
        r = await client.post(f"/api/v1/executions/{started['id']}/cancel", headers=admin.headers)
        assert r.status_code == 200, r.text
    final = await wait_for(client, admin, started["id"], timeout=HOLD_LIMIT_SECONDS + 30)
    took = time.monotonic() - stopped
    slow_engine.release.set()
    assert final["status"] == ("cancelled" if how == "cancel" else "timed_out"), final
    assert took < 10, f"the run waited for the engine's answer to {step} ({took:.1f} s)"
    if how == "timeout":
        assert final["error_message"] == (
            "timed out after 3 s, but the run never started: " + docker_runner.CREATING
        ), final
    # The engine answers late: the container it made for the ended run is removed.
    await until(lambda: not _cold_starts(), "the engine's late answer", 60)
    await until(lambda: not _containers_of(started["id"]), "the late container's removal", 60)


@pytest.mark.parametrize("step", ["attach"], indirect=True)
async def test_an_engine_that_never_answers_the_attach_ends_the_run_in_error(
    client: httpx.AsyncClient, admin: LoggedIn, slow_engine: SlowEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docker-py's `attach_socket` calls the engine without the client's timeout: an engine
    that never answered it held the run (no cancel, no deadline) for as long as it stayed silent
    (here the proxy's minute), though every other call of a cold start gives up after
    `ENGINE_TIMEOUT_SECONDS`. Now the attach is bounded the same way."""
    monkeypatch.setattr(docker_runner, "ENGINE_TIMEOUT_SECONDS", 3)
    script_id = await make_script(client, admin, "echo never\n")
    started = await start(client, admin, script_id, "docker")
    assert await until(slow_engine.held.is_set, "the run's attach call to reach the engine", 30)
    held = time.monotonic()
    final = await wait_for(client, admin, started["id"], timeout=HOLD_LIMIT_SECONDS + 30)
    took = time.monotonic() - held
    slow_engine.release.set()
    assert final["status"] == "error", final
    assert final["error_message"] == "the Docker engine did not answer in 3 s: " + docker_runner.STARTING, (
        final
    )
    assert took < 3 + 10, took
    await until(lambda: not _cold_starts(), "the engine's late answer", 60)
    await until(lambda: not _containers_of(started["id"]), "the late container's removal", 60)
