"""A request its client aborts ends quietly (opscraft/api/client_gone.py): a real server, requests
cut off by the client before the server read them, and a log without a traceback."""

from __future__ import annotations

import json
import re
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nicegui
import pytest

from tests.conftest import LiveServer, start_server, stop_server

METRICS_TOKEN = "metrics-token-" + "m" * 20


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    live = start_server(tmp_path / "server", {"OPSCRAFT_METRICS_TOKEN": METRICS_TOKEN})
    try:
        yield live
    finally:
        stop_server(live)


def _abort(server: LiveServer, head: str) -> None:
    """Send a request's head announcing a body, then close the connection without sending it
    (a browser aborting a request while it uploads)."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as conn:
        conn.sendall(head.encode() + b"Host: x\r\nContent-Type: text/plain\r\nContent-Length: 1000\r\n\r\n")


def _reset(server: LiveServer, path: str) -> None:
    """GET `path` and reset the connection at once (SO_LINGER 0: a browser leaving a page while
    its scripts load)."""
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: gzip\r\n\r\n".encode())
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def _closed_count(server: LiveServer) -> int:
    """How many requests the server ended as abandoned by their client (status 499)."""
    r = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert r.status_code == 200, r.text
    counts = re.findall(r'^opscraft_http_requests_total\{[^}]*status="499"[^}]*\} (\S+)$', r.text, re.M)
    return int(sum(float(n) for n in counts))


def test_an_aborted_request_leaves_no_traceback(server: LiveServer) -> None:
    # The page's socket handshake, then its polling request cut off (what leaving a page does).
    r = httpx.get(f"{server.url}/_nicegui_ws/socket.io/?EIO=4&transport=polling")
    assert r.status_code == 200, r.text
    sid = json.loads(r.text[1:])["sid"]
    aborted = [
        f"POST /_nicegui_ws/socket.io/?EIO=4&transport=polling&sid={sid} HTTP/1.1\r\n",
        "GET /_nicegui_ws/socket.io/?EIO=4&transport=polling HTTP/1.1\r\n",
        "POST /login HTTP/1.1\r\n",
    ]
    for head in aborted:
        _abort(server, head)
    # Scripts and styles whose download the browser cut off: compression held the response's
    # start until its body, which never came, and NiceGUI's middlewares raised "No response
    # returned." with a traceback.
    static = f"/_nicegui/{nicegui.__version__}/static"
    for _ in range(3):
        for name in ("quasar.umd.prod.js", "vue.esm-browser.prod.js", "nicegui.js", "tailwindcss.min.js"):
            _reset(server, f"{static}/{name}")
    assert httpx.get(f"{server.url}{static}/nicegui.js").status_code == 200
    # Each abandoned request is counted when the server has finished with it.
    deadline = time.monotonic() + 60
    while _closed_count(server) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _closed_count(server) >= 2, server.log()
    # The server still answers, and its log tells of no error.
    assert httpx.get(f"{server.url}/api/v1/health").status_code == 200
    log = server.log()
    assert "Traceback" not in log, log
    assert "No response returned" not in log, log
    assert "Exception in ASGI application" not in log, log
    assert " 500 " not in log, log
