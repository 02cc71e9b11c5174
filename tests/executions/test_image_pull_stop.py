"""A run stopped (cancel, timeout) while the Docker engine pulls its image ends at once: it used
to stay `running` until the pull ended (a slow registry held it for minutes; docker-py's reads
wait 60 s each), since the run's kill only came once its container had started. The registry
here is a real HTTP server that never answers in time, in a container on the engine's network."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import LoggedIn
from tests.executions.conftest import TEST_IMAGE, make_script, start, wait_for
from tests.waiting import until, wait_until

PORT = random.randint(20000, 60000)  # in the engine's network namespace
# Accepts the engine's connection, then holds every request for a minute.
REGISTRY = """
import http.server, sys, time
class Slow(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        print("request", flush=True)
        time.sleep(60)
    do_HEAD = do_GET
server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Slow)
print("ready", flush=True)
server.serve_forever()
"""

SLOW_IMAGE = f"127.0.0.1:{PORT}/opscraft-slow:1"
pytestmark = [
    pytest.mark.docker,
    pytest.mark.parametrize("engine_settings", [{"OPSCRAFT_IMAGE_BASH": SLOW_IMAGE}]),
]


@pytest.fixture
def backend() -> str:
    return "sqlite"


@pytest.fixture
def slow_registry(docker_client: Any) -> Iterator[Any]:
    command = ["python3", "-c", REGISTRY, str(PORT)]
    container = docker_client.containers.run(
        TEST_IMAGE, command, network_mode="host", detach=True, user="65534:65534"
    )
    try:
        wait_until(lambda: b"ready" in container.logs(), "the registry to listen", 30)
        yield container
    finally:
        container.remove(force=True)


@pytest.mark.parametrize("how", ["cancel", "timeout"])
async def test_a_run_stopped_while_its_image_is_pulled_ends_at_once(
    client: httpx.AsyncClient, admin: LoggedIn, slow_registry: Any, how: str
) -> None:
    script_id = await make_script(client, admin, "echo never\n", timeout_seconds=3)
    started = await start(client, admin, script_id, "docker")
    assert await until(lambda: b"request" in slow_registry.logs(), "the pull to reach the registry", 30)
    stopped = time.monotonic()
    if how == "cancel":
        r = await client.post(f"/api/v1/executions/{started['id']}/cancel", headers=admin.headers)
        assert r.status_code == 200, r.text
    final = await wait_for(client, admin, started["id"], timeout=50)
    assert final["status"] == ("cancelled" if how == "cancel" else "timed_out"), final
    assert time.monotonic() - stopped < 10, "the run waited for the pull"
    if how == "timeout":
        assert final["error_message"].startswith("timed out after 3 s, but the run never started:"), final
