"""The browser tests' `settle` (tests/conftest.py) against Chromium's real `ERR_NETWORK_CHANGED`.

Chromium fails every request still waiting for a connection when an address of the machine
changes. In the suite that happens when the other worker starts a container with a network (its
veth gets an IPv6 link-local address) while a page here loads more scripts than Chromium opens
connections to one host (6): the page's last scripts fail and it never connects (a CI run lost
`test_a_failing_run_sends_slack_and_email` so). Here the address change is made on purpose: an
address from TEST-NET-1 (RFC 5737) added to `lo` while six scripts hold every connection.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from tests.conftest import NETWORK_CHANGED, require_service, settle
from tests.waiting import wait_until

pytestmark = pytest.mark.browser

HELD = 6  # Chromium's connections per host for HTTP/1.1
ADDRESS = "192.0.2.77/32"  # TEST-NET-1: routes nowhere


class _Site:
    """A local site whose page loads `HELD` scripts that wait for `release`, then `/last.js`."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.held = 0
        self.lock = threading.Lock()
        site = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                if self.path == "/page":
                    held = "".join(f'<script src="/held{i}.js"></script>' for i in range(HELD))
                    body, kind = f"<html><body>{held}<script src='/last.js'></script>", "text/html"
                elif self.path.startswith("/held"):
                    with site.lock:
                        site.held += 1
                    site.release.wait(60)
                    body, kind = "", "text/javascript"
                else:
                    body, kind = "window.loaded = true", "text/javascript"
                data = body.encode()
                self.send_response(200)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def site() -> Iterator[_Site]:
    served = _Site()
    thread = threading.Thread(target=served.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        served.release.set()
        served.server.shutdown()
        served.server.server_close()


@pytest.fixture
def address_change() -> Iterator[Callable[[], None]]:
    """A function adding `ADDRESS` to `lo` (a change of the machine's addresses, as a container
    with a network makes); the address is removed afterwards."""
    require_service(os.geteuid() == 0 and shutil.which("ip") is not None, "root and `ip` (iproute2)")
    added: list[bool] = []

    def change() -> None:
        subprocess.run(["ip", "addr", "add", ADDRESS, "dev", "lo"], check=True)
        added.append(True)

    try:
        yield change
    finally:
        if added:
            subprocess.run(["ip", "addr", "del", ADDRESS, "dev", "lo"], check=False, capture_output=True)


def test_a_page_that_lost_a_script_to_a_network_change_is_loaded_again(
    page: Any, site: _Site, address_change: Callable[[], None]
) -> None:
    last = f"{site.url}/last.js"
    with page.expect_request(last):
        page.goto(f"{site.url}/page", wait_until="commit")
    # Six scripts hold Chromium's six connections to the site: `/last.js` waits in its queue.
    wait_until(lambda: site.held == HELD, "the six held scripts reach the site", timeout=30)
    with page.expect_event("requestfailed", lambda request: request.url == last) as failed:
        address_change()
    assert failed.value.failure == NETWORK_CHANGED
    site.release.set()
    page.wait_for_load_state("load")
    assert page.evaluate("window.loaded === true") is False  # the page lost its last script

    settle(page, "window.loaded === true")

    assert page.evaluate("window.loaded === true") is True
    assert f"requestfailed: {last} {NETWORK_CHANGED}" in page.console_tail
    assert any(line.startswith("test: reloaded after") for line in page.console_tail)
