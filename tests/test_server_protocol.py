"""A request `opscraft serve` cannot read (its request line or headers malformed, or past the
parser's limit) is answered with the API's `{detail, errors}` body, not uvicorn's plain text
`Invalid HTTP request received.` (opscraft.server_protocol, through `app.server_protocols`)."""

from __future__ import annotations

import importlib
import json
import socket
from pathlib import Path

from opscraft.app import server_protocols
from opscraft.server_protocol import BAD_REQUEST_DETAIL, JsonErrorHTTPProtocol
from tests.conftest import start_server, stop_server


async def asgi_app(scope: object, receive: object, send: object) -> None:
    """An ASGI app for building a config (never called)."""


def test_ui_run_config_gets_the_json_error_protocol() -> None:
    ui_run = importlib.import_module("nicegui.ui_run")
    with server_protocols():
        config = ui_run.CustomServerConfig(asgi_app, log_level="warning")
        config.load()
    assert config.http_protocol_class is JsonErrorHTTPProtocol


def _answer(host: str, port: int, request: bytes) -> tuple[bytes, dict[str, str], bytes]:
    """(status line, headers, body) of the answer to the raw `request`, read until the server closes."""
    with socket.create_connection((host, port), timeout=30) as connection:
        connection.sendall(request)
        received = b""
        while chunk := connection.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = {k.decode().lower(): v.decode().strip() for k, _, v in (line.partition(b":") for line in lines)}
    return status, headers, body


def test_a_request_the_server_cannot_read_is_answered_as_json(tmp_path: Path) -> None:
    server = start_server(tmp_path / "server")
    host, port = server.url.removeprefix("http://").split(":")
    try:
        too_long = b"GET /api/v1/scripts?search=" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
        malformed = b"GE T / HTTP/1.1\r\nHost: x\r\n\r\n"
        for request in (too_long, malformed):
            status, headers, body = _answer(host, int(port), request)
            assert status == b"HTTP/1.1 400 Bad Request", (status, body[:200])
            assert headers["content-type"] == "application/json" and headers["connection"] == "close"
            assert json.loads(body) == {"detail": BAD_REQUEST_DETAIL, "errors": []}
            assert int(headers["content-length"]) == len(body)
    finally:
        stop_server(server)
