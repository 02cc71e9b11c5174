"""A web-only process (`opscraft serve --workers 0`) declares lost workers, as every live process
does (docs/architecture.md, *Lost workers*): it did not dispatch run events, so once every
worker was gone (killed, crashed) nobody declared them lost, their runs stayed `running` and the
Workers page said `late` for ever."""

from __future__ import annotations

import sqlite3
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.conftest import PASSWORD, start_server, stop_server


def test_a_web_only_process_declares_a_dead_worker_lost(tmp_path: Path) -> None:
    env = {
        "OPSCRAFT_WORKERS": "0",
        "OPSCRAFT_WORKER_HEARTBEAT_SECONDS": "0.5",
        "OPSCRAFT_WORKER_LOST_SECONDS": "2",
    }
    server = start_server(tmp_path / "server", env)
    try:
        admin = {"username": "admin", "email": "admin@example.com", "password": PASSWORD, "full_name": ""}
        assert httpx.post(f"{server.url}/api/v1/auth/register", json=admin, timeout=60).status_code == 201
        credentials = {"username": "admin", "password": PASSWORD}
        login = httpx.post(f"{server.url}/api/v1/auth/login", json=credentials, timeout=60).json()
        headers = {"Authorization": f"Bearer {login['access_token']}"}
        beat = (datetime.now(UTC) - timedelta(minutes=5)).strftime("%Y-%m-%d %H:%M:%S.%f")
        with sqlite3.connect(tmp_path / "server" / "opscraft.db") as db:  # a worker killed 5 minutes ago
            db.execute(
                "INSERT INTO workers (id, host_name, pid, runners, slots, started_at, heartbeat_at, lost)"
                " VALUES ('gone', 'elsewhere', 4242, '[]', 2, ?, ?, 0)",
                (beat, beat),
            )
        deadline = time.monotonic() + 30
        while True:
            rows = httpx.get(f"{server.url}/api/v1/workers", headers=headers, timeout=60).json()["items"]
            state = {w["id"]: w["state"] for w in rows}["gone"]
            if state == "lost" or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert state == "lost", "no process declared the dead worker lost"
    finally:
        stop_server(server)
