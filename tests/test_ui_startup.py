"""Start-up: no request is answered with a 500 before the server is ready (503 + Retry-After);
a start that fails ends the server with one line; its log lines all have `LOG_FORMAT`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine

from opscraft.execution import store
from tests import migrated_sqlite
from tests.conftest import ROOT, free_port, start_server, stop_server


def test_requests_during_startup_get_503_with_retry_after_never_500(tmp_path: Path) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"},
        "OPSCRAFT_DATA_DIR": str(tmp_path / "data"),
        "SECRET_KEY": "startup-secret-" + "z" * 32,
        "OPSCRAFT_NO_BOOTSTRAP": "1",
    }
    log = (tmp_path / "server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "opscraft", "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    seen: list[int] = []
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=5) as client:
            while time.monotonic() < deadline:
                assert process.poll() is None, (tmp_path / "server.log").read_text()
                try:
                    response = client.get(f"http://127.0.0.1:{port}/login")
                except httpx.TransportError:
                    continue  # not listening yet: fine
                seen.append(response.status_code)
                assert response.status_code != 500, response.text
                if response.status_code == 503:
                    assert int(response.headers["Retry-After"]) >= 1
                    assert "starting" in response.text
                    api = client.get(f"http://127.0.0.1:{port}/api/v1/health")
                    assert api.status_code in (200, 503), api.text
                    continue
                if response.status_code in (200, 303):
                    break
            else:
                raise AssertionError(f"server never became ready: {seen}")
    finally:
        process.terminate()
        process.wait(timeout=20)
        log.close()
    assert seen[-1] in (200, 303), seen


def test_a_start_that_fails_after_the_checks_ends_the_server_with_one_line(tmp_path: Path) -> None:
    """The runtime's start runs once the server listens (NiceGUI's startup hook). When it failed
    there (here: the worker id belongs to a live worker on another host; in a container, the
    worker of the container this one replaced after a `docker kill`), the server logged a
    traceback and went on answering 503 "starting" for ever: a container up, never healthy, that
    no restart policy restarts. It now stops with status 1 and the one line the CLI's own checks
    give."""
    data_dir = tmp_path / "data"
    migrated_sqlite.seed(data_dir)
    engine = create_engine(f"sqlite:///{data_dir / migrated_sqlite.DATABASE_FILE}")
    with engine.begin() as conn:
        store.register(conn, store.WorkerInfo("taken", "elsewhere", 4242, 2), ["docker"])
    engine.dispose()
    env = {
        **{k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"},
        "OPSCRAFT_DATA_DIR": str(data_dir),
        "SECRET_KEY": "startup-secret-" + "z" * 32,
        "OPSCRAFT_NO_BOOTSTRAP": "1",
        "OPSCRAFT_WORKER_ID": "taken",
    }
    done = subprocess.run(
        [sys.executable, "-m", "opscraft", "serve", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    last = done.stderr.strip().splitlines()[-1]
    taken = "opscraft: configuration error: worker id 'taken' is in use by a live worker on elsewhere"
    assert last.startswith(taken), done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_log_format_json_puts_the_servers_own_lines_in_json_too(tmp_path: Path) -> None:
    """With `LOG_FORMAT=json` (docker-compose.yml's default) uvicorn's lines (start, one per
    request, stop) were its own `INFO:     ...` text between the JSON objects, so a log shipper
    parsing JSON dropped or mangled the access log. Every line is now one JSON object."""
    server = start_server(tmp_path / "data", {"LOG_FORMAT": "json"})
    answer = httpx.get(f"{server.url}/api/v1/health", params={"probe": "json-log"}, timeout=10)
    assert answer.status_code == 200
    stop_server(server)
    records = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    messages = [(record["logger"], record["message"]) for record in records]
    assert any(
        logger == "uvicorn.access" and "GET /api/v1/health?probe=json-log HTTP/1.1" in message
        for logger, message in messages
    ), messages
    assert any(message.startswith("Finished server process") for _, message in messages), messages
    assert {"time", "level", "logger", "message"} <= set(records[0])
