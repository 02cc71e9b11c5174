"""tests/http_calls.py: httpx's one-call functions keep their default SSL context, and still check
certificates as httpx does (the CA bundle, or the `SSL_CERT_FILE` a test points elsewhere)."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import http_calls
from tests.automation.receivers import self_signed


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "5")
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *_: Any) -> None:
        pass


def _serving(cert: tuple[Path, Path] | None) -> Iterator[str]:
    """A loopback HTTP server (HTTPS with `cert`): its base URL, until the generator is closed."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    scheme = "http"
    if cert is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*cert)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"{scheme}://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def plain() -> Iterator[str]:
    yield from _serving(None)


@pytest.fixture
def tls(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    cert = self_signed(tmp_path)
    for url in _serving(cert):
        yield url, cert[0]


def test_one_call_functions_build_the_default_ssl_context_once(
    plain: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each `httpx.get` built a client whose SSL context loaded certifi's CA bundle (43 ms of CPU)."""
    built: list[object] = []
    real = httpx.create_ssl_context

    def counted(verify: Any = True, **kwargs: Any) -> ssl.SSLContext:
        if verify is True:  # a context passed in is returned as it is: nothing loaded
            built.append(kwargs)
        return real(verify=verify, **kwargs)

    monkeypatch.setattr(httpx, "create_ssl_context", counted)
    monkeypatch.setattr(httpx._transports.default, "create_ssl_context", counted)
    monkeypatch.setattr(http_calls, "_contexts", {})
    for call in (httpx.get, httpx.head, httpx.get, httpx.options, httpx.get):
        assert call(plain).status_code in (200, 501)
    assert len(built) == 1, built


def test_the_certificate_is_still_checked_against_what_ssl_cert_file_names(
    tls: tuple[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, cert = tls
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(url)  # a self-signed certificate is not in certifi's bundle
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    assert httpx.get(url).text == "hello"
    monkeypatch.delenv("SSL_CERT_FILE")
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(url)
