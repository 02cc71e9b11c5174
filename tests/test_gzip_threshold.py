"""Answers shorter than `app.GZIP_MIN_BYTES` are sent uncompressed even to a client that accepts
gzip (a short one takes no fewer packets compressed, and compressing it cost the event loop
~100 us); longer ones are still compressed. A real server (NiceGUI's middleware stack)."""

from __future__ import annotations

import httpx

from opscraft.app import GZIP_MIN_BYTES
from tests.conftest import LiveServer

PASSWORD = "Gzip-Threshold-9"


def test_short_answers_are_sent_as_they_are_long_ones_compressed(live_server: LiveServer) -> None:
    account = {"username": "gzipper", "email": "gzipper@example.com", "password": PASSWORD}
    httpx.post(f"{live_server.url}/api/v1/auth/register", json=account).raise_for_status()
    # A login's answer (two tokens) is longer than Starlette's 500-byte default, shorter than ours.
    login = httpx.post(
        f"{live_server.url}/api/v1/auth/login",
        json={"username": "gzipper", "password": PASSWORD},
        headers={"Accept-Encoding": "gzip"},
    )
    assert login.status_code == 200, login.text
    assert 500 <= int(login.headers["content-length"]) < GZIP_MIN_BYTES
    assert "content-encoding" not in login.headers
    token = login.json()["access_token"]
    # The OpenAPI document is far longer: compressed.
    with httpx.Client(headers={"Accept-Encoding": "gzip", "Authorization": f"Bearer {token}"}) as client:
        raw = client.get(f"{live_server.url}/openapi.json")
        assert raw.status_code == 200
        assert raw.headers["content-encoding"] == "gzip"
        assert raw.json()["openapi"]  # httpx decoded it
