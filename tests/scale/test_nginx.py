"""docker/nginx.conf, tested: Debian's nginx in front of two web processes (`serve --workers 0`)
on loopback, one worker, sessions in a private Redis, a scratch PostgreSQL database.

A browser logs in through nginx; its session then works on the other web process too (NiceGUI's
per-user storage is in Redis), the API and live output work through nginx, and the Workers page
shows the worker.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD, PG_URL, free_port, postgres_scratch_database, require_service
from tests.scale.cluster import FINAL, Cluster, RedisServer, wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.browser]
CONF = Path(__file__).resolve().parents[2] / "docker" / "nginx.conf"


class _ScratchDatabase:
    """`postgres_scratch_database` driven from synchronous fixtures."""

    def __init__(self) -> None:
        self._cm = postgres_scratch_database()
        self._loop = asyncio.new_event_loop()

    def __enter__(self) -> str:
        return self._loop.run_until_complete(self._cm.__aenter__())

    def __exit__(self, *exc: Any) -> None:
        self._loop.run_until_complete(self._cm.__aexit__(None, None, None))
        self._loop.close()


def nginx_config(web_ports: list[int], port: int, prefix: Path) -> str:
    """docker/nginx.conf with the test's ports, wrapped in a complete nginx.conf."""
    snippet = CONF.read_text()
    servers = "".join(f"    server 127.0.0.1:{p};\n" for p in web_ports)
    snippet = re.sub(r"(    server 127\.0\.0\.1:\d+;\n)+", servers, snippet)
    snippet = snippet.replace("listen 80;", f"listen 127.0.0.1:{port};")
    temp = " ".join(
        f"{name}_temp_path {prefix}/{name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # Workers of a master run as root are `nobody` unless told: they could not write a large
    # request body to the temporary directories under the test's private tmp_path.
    user = "user root;\n" if os.geteuid() == 0 else ""
    return (
        f"{user}pid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\nevents {{}}\n"
        f"http {{\n access_log {prefix}/access.log;\n {temp}\n{snippet}\n}}\n"
    )


@pytest.fixture(scope="module")
def behind_nginx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, str]]:
    require_service(bool(PG_URL), "PostgreSQL (OPSCRAFT_TEST_PG_URL)")
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    require_service(Path(nginx).exists(), "nginx (Debian package nginx)")
    root = tmp_path_factory.mktemp("nginx")
    redis = RedisServer(root / "redis")
    redis.start()
    process = None
    try:
        with _ScratchDatabase() as url:
            cluster = Cluster(root, url, redis.url)
            try:
                a, b = cluster.web("web-a"), cluster.web("web-b")
                worker = f"wn-{secrets.token_hex(3)}"
                cluster.worker(worker, slots=2, runner="local")
                port = free_port()
                conf = root / "nginx.conf"
                conf.write_text(
                    nginx_config([int(a.url.rsplit(":", 1)[1]), int(b.url.rsplit(":", 1)[1])], port, root)
                )  # type: ignore[union-attr]
                process = subprocess.Popen([nginx, "-p", str(root), "-c", str(conf), "-g", "daemon off;"])
                front = f"http://127.0.0.1:{port}"
                wait_for(
                    lambda: httpx.get(f"{front}/api/v1/health", timeout=2).status_code == 200, 60, "nginx"
                )
                # Runs are refused (409) until the worker has registered: tests must not race it.
                cluster.wait_workers_alive(a, {worker})
                yield cluster, front
            finally:
                if process is not None:
                    process.terminate()
                    process.wait(timeout=30)
                cluster.stop_all()
    finally:
        redis.stop()


def test_browser_session_through_nginx_survives_on_the_other_web_process(
    behind_nginx: tuple[Cluster, str], page: Any
) -> None:
    cluster, front = behind_nginx
    a, b = cluster.procs["web-a"], cluster.procs["web-b"]
    token = cluster.admin_token(a)  # the first account (admin), made through the API
    assert token
    page.goto(f"{front}/login")
    page.get_by_test_id("login-username").fill("admin")
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    page.wait_for_url(re.compile(r".*/$"))
    page.get_by_test_id("nav-workers").click()
    page.wait_for_url(re.compile(r".*/workers$"))
    page.get_by_test_id("workers-table").get_by_text("alive").first.wait_for()
    # The same browser session, sent straight to each web process: both know the user, because
    # the session's storage is in Redis, not in the process that served the login.
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    for web in (a, b):
        response = httpx.get(f"{web.url}/workers", cookies=cookies, timeout=30, follow_redirects=False)
        assert response.status_code == 200, (web.name, response.status_code, response.headers.get("location"))
    anonymous = httpx.get(f"{b.url}/workers", timeout=30, follow_redirects=False)
    assert anonymous.status_code == 303


def test_api_and_live_output_through_nginx(behind_nginx: tuple[Cluster, str]) -> None:
    import websockets

    cluster, front = behind_nginx
    a = cluster.procs["web-a"]
    script = cluster.script(a, 'for i in 1 2 3; do echo "via nginx $i"; sleep 0.2; done\n')
    headers = {"Authorization": f"Bearer {cluster.admin_token(a)}"}
    response = httpx.post(
        f"{front}/api/v1/executions",
        json={"script_id": script, "runner": "local"},
        headers=headers,
        timeout=30,
    )
    assert response.status_code == 202, response.text
    execution_id = response.json()["id"]

    async def follow() -> str:
        url = f"{front.replace('http', 'ws')}/ws/executions/{execution_id}?token={cluster.admin_token(a)}"
        text = ""
        async with websockets.connect(url, open_timeout=30) as ws:
            async for raw in ws:
                message = json.loads(raw)
                if message["type"] == "log":
                    text += message["content"]
                if message["type"] == "end":
                    assert message["status"] == "success"
                    return text
        return text

    # In a thread of its own: the module's Playwright browser keeps an event loop in this one.
    with ThreadPoolExecutor(1) as pool:
        text = pool.submit(asyncio.run, asyncio.wait_for(follow(), 120)).result()
    assert text == "via nginx 1\nvia nginx 2\nvia nginx 3\n"
    assert cluster.wait_status(a, execution_id, FINAL)["status"] == "success"


def test_a_run_streamed_in_its_answer_passes_nginx_unbuffered(behind_nginx: tuple[Cluster, str]) -> None:
    """`POST /api/v1/executions/stream` through nginx: each event arrives as it happens (nginx
    buffers no part of the answer), not once the run is over."""
    cluster, front = behind_nginx
    a = cluster.procs["web-a"]
    script = cluster.script(a, "echo first\nsleep 60\necho last\n")
    headers = {"Authorization": f"Bearer {cluster.admin_token(a)}"}
    body = {"script_id": script, "runner": "local"}
    names: list[str] = []
    with httpx.stream(
        "POST", f"{front}/api/v1/executions/stream", json=body, headers=headers, timeout=120
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            message = json.loads(line.removeprefix("data: "))
            names.append(message.get("type", "execution"))
            if names[-1] == "execution":
                execution_id = message["id"]
            elif names[-1] == "log":
                assert message["content"] == "first\n"
                running = httpx.get(f"{front}/api/v1/executions/{execution_id}", headers=headers, timeout=30)
                assert running.json()["status"] == "running", "the first line came while the run went on"
                cancel = httpx.post(
                    f"{front}/api/v1/executions/{execution_id}/cancel", headers=headers, timeout=30
                )
                assert cancel.status_code in (200, 202), cancel.text
            elif names[-1] == "end":
                assert message["status"] == "cancelled"
    assert names[0] == "execution" and names[-1] == "end" and "log" in names, names


def test_addresses_and_state_bodies_pass_nginx_as_sent(behind_nginx: tuple[Cluster, str]) -> None:
    """A redirect keeps the port the client used (the configuration sent `Host: $host`, without it:
    `/api/v1/scripts/` on nginx at :8080 redirected to port 80, and the webhook URL the UI shows
    lost its port too), and a Terraform state larger than the 2 MiB body cap reaches OpsCraft's
    state backend (it allows OPSCRAFT_MAX_STATE_BYTES, 64 MiB): nginx answered its own HTML 413,
    so a run with a real provider's state failed to save it."""
    _cluster, front = behind_nginx
    redirect = httpx.get(f"{front}/api/v1/scripts/", timeout=30, follow_redirects=False)
    assert redirect.status_code == 307
    assert redirect.headers["location"] == f"{front}/api/v1/scripts"
    state = b'{"version": 4, "padding": "' + b"x" * (3 * 1024 * 1024) + b'"}'
    stored = httpx.post(
        f"{front}/api/v1/terraform/state/1/default",
        content=state,
        headers={"Content-Type": "application/json"},
        timeout=60,
    )
    # OpsCraft's own answer (no run credentials sent), not nginx's 413 page.
    assert stored.status_code == 401, stored.text[:200]
    assert "run credentials required" in stored.json()["detail"]
    other = httpx.post(
        f"{front}/api/v1/scripts", content=state, headers={"Content-Type": "application/json"}, timeout=60
    )
    assert other.status_code == 413, "other routes keep the 2 MiB cap"
