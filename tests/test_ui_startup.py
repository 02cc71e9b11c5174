"""Start-up: no request is answered with a 500 before the server is ready (503 + Retry-After)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import ROOT, free_port


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
