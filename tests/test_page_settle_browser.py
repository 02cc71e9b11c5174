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
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from playwright.sync_api import Error as PlaywrightError

from opscraft.ui.lost_resources import RELOAD_JS
from tests.conftest import NETWORK_CHANGED, require_service, settle
from tests.waiting import wait_until

pytestmark = pytest.mark.browser

HELD = 6  # Chromium's connections per host for HTTP/1.1
ADDRESS = "192.0.2.77/32"  # TEST-NET-1: routes nowhere
# A stylesheet added while the page's parser waits for its held scripts: its request waits in
# Chromium's queue, and its loss is seen at once (a parser-blocking script's only when reached).
LATE_STYLESHEET_JS = """setTimeout(() => {
  const sheet = Object.assign(document.createElement("link"), {rel: "stylesheet", href: "/late.css"});
  document.head.append(sheet);
}, 300);"""


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
                if self.path.startswith("/first"):
                    body, kind = "<html><body><script>window.first = true</script>", "text/html"
                elif self.path in ("/page", "/reloading"):
                    # `/reloading` loads itself again when it lost a file, as the product's pages do
                    # (lost_resources), and asks for a stylesheet once the held scripts block it.
                    reloading = self.path == "/reloading"
                    head = f"{RELOAD_JS}<script>{LATE_STYLESHEET_JS}</script>" if reloading else ""
                    held = "".join(f'<script src="/held{i}.js"></script>' for i in range(HELD))
                    body = f"<html><head>{head}</head><body>{held}<script src='/last.js'></script>"
                    kind = "text/html"
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
    """A function adding `ADDRESS` to `lo`, or removing it when added (either is a change of the
    machine's addresses, as a container with a network makes); the address is removed afterwards."""
    require_service(os.geteuid() == 0 and shutil.which("ip") is not None, "root and `ip` (iproute2)")
    added: list[bool] = []

    def change() -> None:
        subprocess.run(["ip", "addr", "del" if added else "add", ADDRESS, "dev", "lo"], check=True)
        if added:
            added.clear()
        else:
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


def _navigation_losing_its_document(
    page: Any, site: _Site, address_change: Callable[[], None], navigate: Callable[[], Any], target: str
) -> None:
    """Run `navigate()` (a Playwright navigation of `page` to the site's `target` path) while the
    site's six held scripts hold every connection, so that its document request waits in Chromium's
    queue, and change the machine's addresses until that request fails with `NETWORK_CHANGED`; the
    held scripts are released then, so that a navigation tried again can load."""
    lost, done = threading.Event(), threading.Event()
    url = f"{site.url}{target}"
    changes: list[threading.Thread] = []

    def started(request: Any) -> None:
        if request.url == url and request.is_navigation_request() and not changes:
            changes.append(threading.Thread(target=change_until_lost, daemon=True))
            changes[0].start()

    def change_until_lost() -> None:
        # The request event comes as the browser starts the request: an address changed before it
        # waits in the connection queue fails nothing, so the change is made again until it does.
        while not done.is_set():
            address_change()
            if lost.wait(1.0):
                return

    def failed(request: Any) -> None:
        if request.url == url and NETWORK_CHANGED in (request.failure or ""):
            lost.set()
            site.release.set()

    page.on("request", started)
    page.on("requestfailed", failed)
    try:
        navigate()
    finally:
        done.set()
        for change in changes:
            change.join()
    assert lost.is_set(), f"the navigation to {target} never lost its document to a network change"
    assert f"requestfailed: {url} {NETWORK_CHANGED}" in page.console_tail


@contextmanager
def _changing_until_lost(page: Any, address_change: Callable[[], None], url: str) -> Iterator[None]:
    """Change the machine's addresses once a second, from the first request of `page` on, until
    its request of `url` failed with `NETWORK_CHANGED` (asserted) or the block ends."""
    lost, done = threading.Event(), threading.Event()
    changes: list[threading.Thread] = []

    def change_until_lost() -> None:
        while not done.is_set():
            address_change()
            if lost.wait(1.0):
                return

    def started(request: Any) -> None:
        if not changes:
            changes.append(threading.Thread(target=change_until_lost, daemon=True))
            changes[0].start()

    def failed(request: Any) -> None:
        if request.url == url and NETWORK_CHANGED in (request.failure or ""):
            lost.set()

    page.on("request", started)
    page.on("requestfailed", failed)
    try:
        yield
    finally:
        done.set()
        for change in changes:
            change.join()
        page.remove_listener("request", started)
        page.remove_listener("requestfailed", failed)
    assert lost.is_set(), f"{url} was never lost to a network change"


def _page_held(page: Any, site: _Site) -> None:
    """`page` on the site's page, its six scripts held by the site: every connection of the
    page's browser context to the site is taken."""
    page.goto(f"{site.url}/page", wait_until="commit")
    wait_until(lambda: site.held == HELD, "the six held scripts reach the site", timeout=30)


def test_a_reload_that_lost_its_document_to_a_network_change_is_tried_again(
    page: Any, site: _Site, address_change: Callable[[], None]
) -> None:
    _page_held(page, site)

    _navigation_losing_its_document(page, site, address_change, page.reload, "/page")

    page.wait_for_function("window.loaded === true")
    assert page.url == f"{site.url}/page"


def test_a_way_back_that_lost_its_document_to_a_network_change_is_tried_again(
    page: Any, site: _Site, address_change: Callable[[], None]
) -> None:
    page.goto(f"{site.url}/first")
    _page_held(page, site)

    _navigation_losing_its_document(page, site, address_change, page.go_back, "/first")

    page.wait_for_function("window.first === true")
    assert page.url == f"{site.url}/first"


def test_a_page_whose_script_navigation_lost_its_document_is_loaded_where_it_was_going(
    page: Any, site: _Site, address_change: Callable[[], None]
) -> None:
    page.goto(f"{site.url}/first")
    # The connections are held by another tab: a page's own navigation would abort its own loads.
    _page_held(page.context.new_page(), site)

    def navigate() -> None:  # as a NiceGUI `ui.navigate.to` or a link's click does
        page.evaluate("location.href = '/first?again'")
        page.wait_for_url(f"{site.url}/first?again")

    _navigation_losing_its_document(page, site, address_change, navigate, "/first?again")

    page.wait_for_function("window.first === true")
    assert "test: reloaded the error page after net::ERR_NETWORK_CHANGED" in page.console_tail


def test_a_goto_whose_page_reloaded_itself_onto_the_error_page_is_tried_again(
    page: Any, site: _Site, address_change: Callable[[], None]
) -> None:
    # A CI run's `goto` failed with "interrupted by another navigation to chrome-error://
    # chromewebdata/", naming no NETWORK_CHANGED: its page lost a file to a network change and
    # loaded itself again (lost_resources), and that reload's document was lost too, to the next
    # change of the burst (a container's veth changes the addresses more than once); here that
    # second loss is the reload's document refused (Chromium's error page either way).
    url, late = f"{site.url}/reloading", f"{site.url}/late.css"
    documents: list[str] = []

    def document(route: Any) -> None:
        documents.append(route.request.url)
        if len(documents) == 2:
            site.release.set()
            route.abort("failed")
        else:
            route.continue_()

    page.route(url, document)
    with _changing_until_lost(page, address_change, late):
        page.goto(url)

    page.wait_for_function("window.loaded === true")
    assert len(documents) == 3  # the goto, the page's reload of itself, the goto tried again
    assert f"requestfailed: {url} net::ERR_FAILED" in page.console_tail


def test_a_goto_the_server_refused_is_not_tried_again_and_says_why(page: Any, site: _Site) -> None:
    # Only a loss to a network change is tried again: a server down or refusing is the test's
    # failure, and the report says what the document's request met.
    url = f"{site.url}/first"
    page.route(url, lambda route: route.abort("connectionrefused"))
    with pytest.raises(PlaywrightError, match="ERR_CONNECTION_REFUSED"):
        page.goto(url)
    assert f"requestfailed: {url} net::ERR_CONNECTION_REFUSED" in page.console_tail
