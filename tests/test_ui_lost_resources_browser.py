"""A page that lost a file of its own while loading loads itself again (`opscraft.ui.lost_resources`).

The real cause, Chromium's `ERR_NETWORK_CHANGED` for requests queued while an address of the
machine changes, is reproduced in tests/test_page_settle_browser.py; here the lost file is made
by Playwright aborting its request (the page sees the same `error` event either way).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from opscraft.ui.lost_resources import MAX_RELOADS
from tests.conftest import LiveServer
from tests.ui_journey import journey_server, signed_in, signed_in_blank, wait_connected

pytestmark = pytest.mark.browser

# The admin registered through the API, not made by a CLI process (about 1.3 s of CPU).
server = journey_server("lost-resources", users=[("admin", "admin")], env={}, through_api=True)

NICEGUI_JS = "**/static/nicegui.js"
WARNING = "did not load; loading the page again"


def _warnings(page: Any) -> list[str]:
    return [line for line in page.console_tail if WARNING in line]


# The files a load loses (route patterns) and the name the page's warning gives each: NiceGUI's
# script, and the pages' Tailwind CSS (`opscraft.ui.stylesheet`, linked after the reload script).
LOST_FILES = {"script": (NICEGUI_JS, "nicegui.js"), "stylesheet": ("**/opscraft-*.css", "/opscraft-")}


@pytest.mark.parametrize("lost_file", list(LOST_FILES))
def test_a_page_that_lost_a_file_loads_itself_again_and_connects(
    server: LiveServer, page: Any, lost_file: str
) -> None:
    pattern, named = LOST_FILES[lost_file]
    asked: list[str] = []

    def lose_the_first(route: Any) -> None:
        asked.append(route.request.url)
        if len(asked) == 1:
            route.abort()
        else:
            route.continue_()

    page.route(pattern, lose_the_first)
    page.goto(f"{server.url}/login", wait_until="commit")
    wait_connected(page)

    assert len(asked) == 2
    assert len(_warnings(page)) == 1 and named in _warnings(page)[0]
    page.get_by_test_id("login-username").fill("admin")  # a working page


def test_a_load_that_lost_several_scripts_counts_one_reload(server: LiveServer, page: Any) -> None:
    """One network change fails every script still queued (a CI run's page lost three): that load
    reloads once and counts once, so the next load, which loses a script to the next change, still
    reloads. Each lost script used to count: the first load spent every reload (`MAX_RELOADS`) and
    the second, which lost one script, stayed broken and never connected.

    Each load's component scripts are told apart by a `?load=N` the test adds to their addresses
    in that load's page (the old page may still fetch a script after its reload has begun)."""
    loads: list[int] = []
    # How many component scripts each load loses at most (every request for each): the first load
    # reloads as soon as it lost the first, so it asks for some of them only.
    lose = {1: 6, 2: 1}
    lost: dict[int, set[str]] = {1: set(), 2: set()}

    def document(route: Any) -> None:
        loads.append(len(loads) + 1)
        response = route.fetch()
        body = re.sub(r"(/components/[^\"?]+\.js)", rf"\1?load={len(loads)}", response.text())
        route.fulfill(response=response, body=body)

    def component(route: Any) -> None:
        found = re.search(r"/components/([^?]+)\?load=(\d)", route.request.url)
        if found:
            name, load = found.group(1), int(found.group(2))
            if name in lost.get(load, ()) or len(lost.get(load, ())) < lose.get(load, 0):
                lost[load].add(name)
                route.abort()
                return
        route.continue_()

    # Only the requests the test reads go through it (each routed request is a round trip
    # through Playwright's driver and this process).
    page.route(f"{server.url}/login", document)
    page.route("**/components/**", component)
    page.goto(f"{server.url}/login", wait_until="commit")
    wait_connected(page)

    assert len(lost[1]) > 1 and len(lost[2]) == 1, lost
    assert loads == [1, 2, 3]  # one reload for each load that lost scripts
    assert len(_warnings(page)) == 2, _warnings(page)
    page.get_by_test_id("login-username").fill("admin")  # a working page


def test_a_file_that_never_loads_is_tried_a_few_times_then_the_page_stays(
    server: LiveServer, page: Any
) -> None:
    asked: list[str] = []

    def lose_every(route: Any) -> None:
        asked.append(route.request.url)
        route.abort()

    lost: list[str] = []  # listened to before the first load: none is missed while it commits
    page.on("requestfailed", lambda request: lost.append(request.url) if request.url in asked else None)
    page.route(NICEGUI_JS, lose_every)
    page.goto(f"{server.url}/login", wait_until="commit")
    while len(lost) < MAX_RELOADS + 1:  # the first load and each reload lose it
        page.wait_for_event("requestfailed")
    page.wait_for_load_state("load")

    # A reload decided by the last page would have said so before loading it.
    assert len(_warnings(page)) == MAX_RELOADS
    assert len(asked) == MAX_RELOADS + 1


def test_a_file_lost_after_the_page_connected_reloads_nothing(server: LiveServer, page: Any) -> None:
    signed_in(page, server, "admin", then="/scripts")
    page.evaluate("window.before_the_loss = true")

    page.evaluate(
        """() => new Promise((resolve) => {
            const link = document.createElement("link");
            Object.assign(link, {rel: "stylesheet", href: "/no-such.css"});
            link.onerror = resolve;  // after the page's own listener, which listens while capturing
            document.head.append(link);
        })"""
    )

    assert page.evaluate("window.before_the_loss") is True
    assert _warnings(page) == []


# The components a page's HTML names (preloaded before its socket connects), by path.
PRELOADED = re.compile(r'<link rel="modulepreload" href="[^"]*/components/([^"]+)"')
# The dashboard's success chart drawn by its component (an unregistered one draws nothing inside).
CHART_DRAWN_JS = """document.querySelector('[data-testid="success-chart"] canvas')
  || document.querySelector('[data-testid="success-chart"] svg')"""
# Before each document's scripts: `window.testLoad`, which load of the tab's this document is
# (counted in `sessionStorage`: a reload counts 2), and each `console.warn` of the page also kept
# in `window.testWarned`.
LOAD_KEPT_JS = """window.testLoad = Number(sessionStorage.getItem('test-loads') || '0') + 1;
sessionStorage.setItem('test-loads', String(window.testLoad));
window.testWarned = [];
const warn = console.warn.bind(console);
console.warn = (...parts) => { window.testWarned.push(parts.join(' ')); warn(...parts); };"""


def test_a_component_lost_after_the_page_connected_is_imported_again(server: LiveServer, page: Any) -> None:
    """The components NiceGUI imports once a page has connected (the elements it draws then: the
    dashboard's chart and tables) came in one import: a CI run's script page lost one of them
    (`ERR_NETWORK_CHANGED`) and never drew its parameters table, and nothing tried again (a
    page that has shaken hands is not reloaded). Each is now imported again
    (`lost_resources.IMPORT_AGAIN_JS`): here the first request of every component the page's own
    HTML does not name fails, and the dashboard is drawn whole.

    Everything is read from the one document the test loads: its HTML's preloads, the requests
    made while it is the page's document, its warnings. Three whole runs failed with no warning
    in the page: the dashboard `signed_in` left open was still importing its late components (sent
    once it connects) when the test's route was in place, so the lost first requests were that
    page's (which warned), and the test's document loaded every component at the first try."""
    signed_in_blank(page, server, "admin")  # no document of the server's to ask for a component
    documents: list[Any] = []  # the responses of the page's documents: the test's load's
    preloaded: set[str] = set()
    asked: dict[str, int] = {}

    def lose_the_first(route: Any) -> None:
        if not preloaded:  # the first component asked for: the document's HTML has come
            preloaded.update(PRELOADED.findall(documents[-1].text()))
        component = route.request.url.split("/components/")[1]
        asked[component] = asked.get(component, 0) + 1
        if component not in preloaded and asked[component] == 1:
            route.abort("internetdisconnected")
        else:
            route.continue_()

    # Not routed: a document Playwright fulfils has no address, and Chromium's local network
    # checks then refuse its socket (`ERR_BLOCKED_BY_LOCAL_NETWORK_ACCESS_CHECKS`): the page
    # would talk over socket.io's long polling, whose pending request held the server's stop
    # for its 5 s of grace.
    page.on("response", lambda answer: answer.request.is_navigation_request() and documents.append(answer))
    page.route("**/components/**", lose_the_first)
    page.add_init_script(LOAD_KEPT_JS)
    page.goto(f"{server.url}/")
    page.wait_for_function(CHART_DRAWN_JS)

    # The document loaded, not a reload, on its socket.
    assert page.evaluate("window.testLoad") == 1 and len(documents) == 1, page.console_tail
    assert page.evaluate("window.socket.io.engine.transport.name") == "websocket"
    assert preloaded and all(n == 1 for component, n in asked.items() if component in preloaded), asked
    late = {component: n for component, n in asked.items() if component not in preloaded}
    assert any(component.endswith("/echart.js") for component in late), asked
    assert set(late.values()) == {2}, late  # each lost once, imported again once
    # What this document warned, kept in it: each lost component named once.
    said = page.evaluate("window.testWarned.filter((line) => line.includes('importing it again'))")
    named = sorted(component for line in said for component in late if f"/components/{component} " in line)
    assert len(said) == len(late) and named == sorted(late), said
