"""Helpers of the browser journeys: a live server per test module with its users (the API or the
CLI), log-in, editor typing, runs through the API, axe-core.

axe-core comes from the npm registry (tests/js/package.json, installed by tests/run with
`npm ci --prefix tests/js`); it is injected into each page by Playwright, never fetched at run time.
"""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import (
    ARTIFACTS,
    PASSWORD,
    ROOT,
    LiveServer,
    require_service,
    settle,
    start_server,
    stop_server,
)
from tests.waiting import wait_until

AXE = ROOT / "tests" / "js" / "node_modules" / "axe-core" / "axe.min.js"
# Seconds an API call of a journey may take: a login hashes with the server's real argon2
# parameters, slow on a busy machine (httpx's default is 5 s).
API_TIMEOUT = 60
# Rules whose failures are reported as serious or critical and that the journeys must pass.
BLOCKING_IMPACTS = ("serious", "critical")


# Whether any element of the page, as the browser holds them (NiceGUI's element store: a hidden
# dialog's fields too, which are not in the DOM), has the value `v` in its properties.
ELEMENTS_HOLD_JS = "v => JSON.stringify(Object.values(mounted_app.elements).map(e => e.props)).includes(v)"


def token(server: LiveServer, username: str) -> dict[str, str]:
    response = httpx.post(
        f"{server.url}/api/v1/auth/login",
        json={"username": username, "password": PASSWORD},
        timeout=API_TIMEOUT,
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


class Tokens(dict[str, dict[str, str]]):
    """Bearer headers by user name on `server`, each signed in (`token`) at its first use: a
    sign-in is an argon2 check at the live server's real cost (0.25 s of its CPU), and most
    modules use one or two of `make_users`' three people (docs/benchmarks.md, session 54)."""

    def __init__(self, server: LiveServer, **known: dict[str, str]) -> None:
        super().__init__(known)
        self.server = server

    def __missing__(self, username: str) -> dict[str, str]:
        self[username] = token(self.server, username)
        return self[username]

    def __or__(self, other: Mapping[str, dict[str, str]]) -> Tokens:
        """These and `other`'s, still signed in at their first use (a plain dict's `|` is a
        plain dict: the people not signed in yet would be missing from it)."""
        joined = Tokens(self.server, **self)
        joined.update(other)
        return joined


def make_users(server: LiveServer) -> Tokens:
    """The first registration makes the admin; the admin adds an operator and a viewer. Returns
    their bearer headers by user name (`Tokens`: the admin's from this sign-in, the others' made
    at their first use)."""
    body = {"username": "admin", "email": "admin@example.com", "password": PASSWORD, "full_name": "Ada Admin"}
    response = httpx.post(f"{server.url}/api/v1/auth/register", json=body, timeout=API_TIMEOUT)
    assert response.status_code == 201, (response.status_code, response.text)
    admin = token(server, "admin")
    for role in ("operator", "viewer"):
        body = {"username": role, "email": f"{role}@example.com", "password": PASSWORD, "role": role}
        response = httpx.post(f"{server.url}/api/v1/users", json=body, headers=admin, timeout=API_TIMEOUT)
        assert response.status_code == 201, response.text
    return Tokens(server, admin=admin)


def cli_user(server: LiveServer, username: str, role: str) -> None:
    """Create a user with `opscraft user create` against the server's database (password on stdin)."""
    subprocess.run(
        [sys.executable, "-m", "opscraft", "user", "create", username, "--role", role],
        input=PASSWORD + "\n",
        text=True,
        env=server.env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )


def api_users(server: LiveServer, users: Sequence[tuple[str, str]]) -> None:
    """Users (user name, role) made through the API, as `cli_user` makes them (e-mail
    `<name>@localhost.localdomain`) without a CLI process's seconds of imports each: the first,
    an admin, registers (the first registration makes the admin) and adds the others."""
    (first, role), *others = users
    assert role == "admin", users
    body = {"username": first, "email": f"{first}@localhost.localdomain", "password": PASSWORD}
    response = httpx.post(f"{server.url}/api/v1/auth/register", json=body, timeout=API_TIMEOUT)
    assert response.status_code == 201, response.text
    if others:  # the admin's sign-in is an argon2 check (about 0.25 s of the server's CPU)
        admin = token(server, first)
        for username, role in others:
            api_user(server, admin, username, role)


def api_user(server: LiveServer, admin: dict[str, str], username: str, role: str) -> None:
    """A user added by an admin (bearer headers `admin`) through the API, as `cli_user` makes one."""
    email = f"{username}@localhost.localdomain"
    body = {"username": username, "email": email, "password": PASSWORD, "role": role}
    response = httpx.post(f"{server.url}/api/v1/users", json=body, headers=admin, timeout=API_TIMEOUT)
    assert response.status_code == 201, response.text


def field_messages(page: Any, testid: str) -> Any:
    """The newest messages block under the input `testid` (a hint, a length limit said under the
    field: `widgets.says_limit`, or an error). While Quasar animates a change of the field's
    messages (the limit giving way to an error, one error to another) the leaving block is still
    in the page, before the entering one: a locator of every block matched both."""
    return page.locator(".q-field", has=page.get_by_test_id(testid)).locator(".q-field__messages").last


def field_error(page: Any, testid: str) -> Any:
    """The error shown under the input `testid` (Quasar's `role="alert"` message in the newest
    block, `field_messages`): never the field's hint, whose words an error may share ("At most
    500 characters" under the field, "must be at most 500 characters, not 501" once refused)."""
    return field_messages(page, testid).get_by_role("alert")


def log_in(page: Any, server: LiveServer, username: str, then: str | None = None) -> None:
    """Sign in on the login page, which goes to the dashboard, or with `then` (a path, query
    allowed) straight to that page (`/login?next=...`), connected (`wait_connected`): a test
    that opens a page after signing in builds no dashboard first (about a second of the
    server's and the browser's time)."""
    target = f"{server.url}{then or '/'}"
    page.goto(f"{server.url}/login" if then is None else f"{server.url}/login?next={quote(then, safe='')}")
    page.get_by_test_id("login-username").fill(username)
    page.get_by_test_id("login-password").fill(PASSWORD)
    page.get_by_test_id("login-submit").click()
    if then is None:
        page.wait_for_url(target)
    else:
        page.wait_for_url(lambda url: url == target)
        wait_connected(page)


# The session cookies of each (server's data folder, user name) after its first `signed_in`.
_SESSIONS: dict[tuple[str, str], list[Any]] = {}


def signed_in(page: Any, server: LiveServer, username: str, then: str = "/") -> None:
    """`page` on `then` (a path, query allowed) as `username`, connected, for a test that does not
    test signing in: the first call for a server and user signs in on the login page (`log_in`)
    and keeps the session's cookies, later calls (other tests' fresh contexts) start with those
    cookies and open `then` directly. Each sign-in is a login page, an argon2 hash at the
    server's real cost and a redirect: about a second of CPU saved per test. A kept session that
    has ended (the page goes to the login page) is replaced by a new sign-in."""
    key = (str(server.data_dir), username)
    target = f"{server.url}{then}"
    if key in _SESSIONS:
        page.context.add_cookies(_SESSIONS[key])
        page.goto(target)
        if page.url == target:
            wait_connected(page)
            return
        page.context.clear_cookies()
    log_in(page, server, username, then=None if then == "/" else then)
    _SESSIONS[key] = page.context.cookies()


def signed_in_blank(page: Any, server: LiveServer, username: str) -> None:
    """`page` (a fresh context's, on `about:blank`) left on `about:blank` holding `username`'s
    session, no page of the server's open in it: for a test whose next load must be the only
    document asking the server for anything (its routes then see that document's requests
    alone). The cookies `signed_in` kept are added without opening a page (not checked: a kept
    session that has ended sends the next load to the login page); without kept ones, `signed_in`
    signs in, then the page it opened is left."""
    key = (str(server.data_dir), username)
    if key in _SESSIONS:
        page.context.add_cookies(_SESSIONS[key])
        return  # a fresh context's page is on about:blank
    signed_in(page, server, username)
    page.goto("about:blank")


def log_out(page: Any, server: LiveServer) -> None:
    """Log out as a person does on `/logout`: the page asks, the click ends the session."""
    page.goto(f"{server.url}/logout")
    page.get_by_test_id("logout-confirm").click()
    page.wait_for_url(f"{server.url}/login?notice=logout")


def type_code(page: Any, text: str, testid: str = "script-editor") -> None:
    """Replace the editor's content by typing, as a person would."""
    page.locator(f'[data-testid="{testid}"] .cm-content').click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)


def paste_code(page: Any, text: str, testid: str = "script-editor") -> None:
    """Replace the editor's content in one paste (typing hundreds of KiB key by key takes minutes)."""
    page.evaluate(
        """([id, text]) => {
            const view = getElement(document.querySelector(`[data-testid='${id}']`)).editor;
            const changes = {from: 0, to: view.state.doc.length, insert: text};
            view.dispatch({changes, userEvent: "input.paste"});
        }""",
        [testid, text],
    )


class SocketHold:
    """Holds chosen messages on NiceGUI's socket, to make a race happen on demand (Playwright's
    `route_web_socket`; set up before the page is opened): those from the page to the server, or
    with `toward_page` those from the server to the page.

    `hold(words)`: from then on, every message holding `words` waits (an editor's change set:
    "sections"; a JavaScript answer: "javascript_response"; toward the page, the question a form's
    draft asks: "ocDrafts.take"); `hold_after(words)`: the first message holding `words` goes
    through and every message after it waits (toward the page, whatever the server sends once
    something is shown: NiceGUI's browser drops a message older than one it already has, so a
    message held alone there would be lost); `wait_held(words)` until one holding `words` is
    held; `release()` sends the held ones in their order and holds no more; `stop()` drops them;
    `wait_delivered()` (toward the page) until the page has taken every message released.
    """

    def __init__(self, page: Any, *, toward_page: bool = False) -> None:
        self.page = page
        self.toward_page = toward_page
        self.words: str | None = None
        # `hold_after`'s words, until the message holding them went through (then `words` is "").
        self.after: str | None = None
        self.held: list[tuple[Any, str | bytes]] = []
        # NiceGUI's number (`_id`) of the last message released toward the page, -1 before any.
        self.released_id = -1
        page.route_web_socket(re.compile(r".*/_nicegui_ws/.*"), self._route)

    def _route(self, ws: Any) -> None:
        upstream = ws.connect_to_server()
        sender, receiver = (upstream, ws) if self.toward_page else (ws, upstream)

        def forward(message: str | bytes) -> None:
            if self.words is not None and self.words in str(message):
                self.held.append((receiver, message))
                return
            receiver.send(message)
            if self.after is not None and self.after in str(message):
                self.after, self.words = None, ""

        sender.on_message(forward)

    def hold(self, words: str) -> None:
        """Hold every message holding `words` from now on."""
        self.words = words

    def hold_after(self, words: str) -> None:
        """Let the first message holding `words` through, then hold every message after it."""
        self.after = words

    def wait_held(self, words: str, timeout: float = 30.0) -> None:
        """Until a held message holds `words` (Playwright calls deliver the socket's messages)."""
        deadline = time.monotonic() + timeout
        while not any(words in str(message) for _, message in self.held):
            assert time.monotonic() < deadline, f"no message holding {words!r} was held in {timeout} s"
            self.page.wait_for_timeout(50)

    def stop(self) -> None:
        """Hold nothing more; the held messages are dropped (their page is being left)."""
        self.words = self.after = None
        self.held.clear()

    def release(self) -> None:
        """Send the held messages in their order; hold nothing more."""
        self.words = self.after = None
        for receiver, message in self.held:
            receiver.send(message)
            numbered = re.search(r'"_id":\s*(\d+)', str(message))
            if numbered:
                self.released_id = max(self.released_id, int(numbered.group(1)))
        self.held.clear()

    def wait_delivered(self) -> None:
        """Toward the page: until the page has taken the last message released (NiceGUI's
        `window.nextMessageId` is past its `_id`); its handler has run by the next Playwright
        call (a run_javascript's code, an update's redraw: the browser's microtasks)."""
        self.page.wait_for_function("(last) => window.nextMessageId > last", arg=self.released_id)


@contextmanager
def database_locked(server: LiveServer) -> Iterator[None]:
    """Hold SQLite's write lock on the server's database while the block runs: its writers wait
    (up to their busy timeout, `db.engine.SQLITE_BUSY_TIMEOUT_MS`: 10 s), as on a busy database."""
    connection = sqlite3.connect(server.data_dir / "opscraft.db", timeout=10, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        yield
    finally:
        connection.execute("ROLLBACK")
        connection.close()


def held_reloads(page: Any) -> SocketHold:
    """Set up before the page is opened: the page never reloads on the server's word (NiceGUI's
    `ui.navigate.reload`, "history.go(0)"), which is how the page's own periodic re-check
    (`layout.guard(ticking=True)`, every `OPSCRAFT_LIVE_SECONDS`) redraws a page drawn for a role
    the user no longer has. A test that demotes the signed-in user and then clicks is thereby
    refused by the click's handler's own re-check, whenever the periodic one comes: under load
    that one could redraw the page as "may not open this page" first, and the click then found
    no dialog or no button (its own refusal is `test_ui_admin_sessions_browser`'s). Returns the
    hold (`stop()` it to let later reloads through)."""
    hold = SocketHold(page, toward_page=True)
    hold.hold("history.go(0)")
    return hold


# Held at its attempt to reconnect (socket.io's manager `open`, which its reconnection timer calls):
# `ocReopen()` lets that attempt go on.
HOLD_RECONNECT_JS = """() => {
  const manager = window.socket.io;
  const open = manager.open;
  manager.open = function (callback) {
    window.ocReopen = () => { manager.open = open; delete window.ocReopen; open.call(manager, callback); };
    return manager;
  };
  manager.engine.close();
}"""


def dropped_connection(page: Any, meanwhile: Callable[[], Any]) -> None:
    """Drop `page`'s NiceGUI socket as when the server gave up on a ping the page answered late (a
    busy machine: NiceGUI pings every 8 s and waits 4 s), run `meanwhile` (typing, a click) while
    the page's own reconnection is held at its first attempt, then let it reconnect and wait for
    the handshake (`wait_connected`)."""
    page.evaluate(HOLD_RECONNECT_JS)
    page.wait_for_function("typeof window.ocReopen === 'function'")  # disconnected, trying again
    meanwhile()
    page.evaluate("window.ocReopen()")
    wait_connected(page)


def code(page: Any, testid: str = "script-editor") -> str:
    return str(
        page.evaluate(
            f"getElement(document.querySelector('[data-testid=\"{testid}\"]')).editor.state.doc.toString()"
        )
    )


def wait_connected(page: Any) -> None:
    """Until NiceGUI's socket has shaken hands (events reach the server from then on); a page
    that lost a request to a network change is loaded again (`settle`)."""
    settle(page, "window.did_handshake === true && window.socket && window.socket.connected")


def reload_keeping(page: Any, key: str, typed: str) -> None:
    """Reload once the tab's draft `key` (`ui.drafts`) holds `typed` (the capture runs on each
    input), and wait for the reloaded page's connection."""
    page.wait_for_function(
        "([k, typed]) => (sessionStorage.getItem('oc-draft:' + k) || '').includes(typed)", arg=[key, typed]
    )
    page.reload()
    wait_connected(page)


def pick_utc_today(page: Any, testid: str) -> str:
    """Choose "Today (UTC)" in the day-range field `testid` (`opscraft.ui.date_range`, empty
    before) and apply it; returns the day it then shows (`YYYY-MM-DD → YYYY-MM-DD`, one day).

    Not Quasar's own `.q-date__today` cell: that is the browser's date, the day before or after
    UTC's for hours of the day in a zone away from UTC (the browser takes the machine's zone).
    The day is UTC's date when the button was pressed: asserted to be the date read before or
    after, as UTC midnight may pass in between (the tests run at any hour)."""
    before = datetime.now(UTC).date().isoformat()
    page.get_by_test_id(testid).click()
    page.get_by_test_id(f"{testid}-today").click()
    page.get_by_test_id(f"{testid}-apply").click()
    page.wait_for_function(
        "id => document.querySelector(`[data-testid=\"${id}\"]`).value.includes(' → ')", arg=testid
    )
    after = datetime.now(UTC).date().isoformat()
    shown = page.get_by_test_id(testid).input_value()
    day = shown.split(" → ")[0]
    assert shown == f"{day} → {day}" and day in {before, after}, (shown, before, after)
    return day


def terminal_js(expression: str) -> str:
    """A JS function for `page.evaluate`/`wait_for_function` that evaluates `expression` with `t`
    bound to the page's xterm.js terminal; "" while the page is still being built (no terminal)."""
    return (
        "() => { const el = document.querySelector('[data-testid=\"terminal\"]');"
        " const c = el && getElement(el.id.slice(1)); if (!c || !c.terminal) return '';"
        f" const t = c.terminal; return ({expression}); }}"
    )


# The terminal's whole buffer (scrollback included), one string per line.
TERMINAL_TEXT_JS = terminal_js(
    "Array.from({length: t.buffer.active.length},"
    " (_, i) => t.buffer.active.getLine(i).translateToString(true)).join('\\n')"
)


def terminal_text(page: Any) -> str:
    return str(page.evaluate(TERMINAL_TEXT_JS))


def wait_for_output(page: Any, pattern: str, timeout: float = 30) -> str:
    """Poll the terminal until `pattern` (a regex) appears; return the text then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        text = terminal_text(page)
        if re.search(pattern, text, re.M):
            return text
        time.sleep(0.1)
    raise AssertionError(f"{pattern!r} not in the terminal:\n{terminal_text(page)[-2000:]}")


def script_id_from_url(page: Any) -> int:
    match = re.search(r"/scripts/(\d+)", page.url)
    assert match, page.url
    return int(match.group(1))


def api(server: LiveServer, method: str, path: str, headers: dict[str, str], **body: Any) -> Any:
    """`method` on `/api/v1{path}` (httpx keywords `body`: json=, params=), asserted to succeed;
    the answer's JSON (None for an empty one)."""
    response = httpx.request(
        method, f"{server.url}/api/v1{path}", headers=headers, timeout=API_TIMEOUT, **body
    )
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


def create_script(
    server: LiveServer, headers: dict[str, str], name: str, content: str, **extra: Any
) -> dict[str, Any]:
    body = {"name": name, "script_type": "bash", "content": content, **extra}
    response = httpx.post(f"{server.url}/api/v1/scripts", json=body, headers=headers, timeout=API_TIMEOUT)
    assert response.status_code == 201, response.text
    return dict(response.json())


# True when no animation or CSS transition of the page is running but endless ones (a spinner).
AT_REST_JS = """() => document.getAnimations().every(a => a.playState !== "running"
    || !isFinite(a.effect.getComputedTiming().endTime))"""


def wait_at_rest(page: Any) -> None:
    """Wait until the page's animations and transitions have ended (`AT_REST_JS`): a dialog has
    finished opening (Quasar's 300 ms), a notification fading in or out has its own colours.
    Raises Playwright's TimeoutError after 30 s."""
    page.wait_for_function(AT_REST_JS, timeout=30_000)


def check_accessibility(page: Any, label: str, rules: list[str] | None = None) -> None:
    """Run axe-core on the current page (only `rules`, axe-core rule ids, when given): no serious
    or critical violation (the report is kept)."""
    require_service(AXE.exists(), f"axe-core ({AXE}; run `npm ci --prefix tests/js`)")
    installed, wanted = _axe_versions()
    # An older copy misjudges colours (4.10 read a light dialog's buttons on its backdrop).
    assert installed == wanted, f"axe-core {installed} installed, {wanted} wanted: `npm ci --prefix tests/js`"
    page.wait_for_load_state("load")
    # Colours are judged at rest: a notification fading in or out has transitional colours.
    wait_at_rest(page)
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate(
        """async (rules) => {
            const only = rules ? {runOnly: {type: "rule", values: rules}} : {};
            const r = await axe.run(document, {resultTypes: ["violations"], ...only});
            return r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                nodes: v.nodes.slice(0, 5).map(n => n.target.join(" ") + " :: " + n.html.slice(0, 120)
                    + " :: " + (n.failureSummary || "").slice(0, 200))}));
        }""",
        rules,
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / f"axe-{label}.json").write_text(json.dumps(result, indent=2))
    blocking = [v for v in result if v["impact"] in BLOCKING_IMPACTS]
    assert not blocking, f"{label}: {json.dumps(blocking, indent=2)}"


# The scroll areas of the page's tables that a keyboard cannot reach or a screen reader cannot
# name (`layout.A11Y_JS`): each as its table's test id (else the start of its HTML).
UNMARKED_TABLES_JS = """() => [...document.querySelectorAll(".q-table__middle.scroll")]
    .filter((r) => !(r.tabIndex === 0 && r.getAttribute("role") === "region"
        && (r.getAttribute("aria-label") || "").trim()))
    .map((r) => r.closest("[data-testid]")?.dataset.testid || r.outerHTML.slice(0, 80))"""


def assert_tables_keyboard_scrollable(page: Any, label: str) -> None:
    """Every table's scroll area on the page takes the keyboard's focus and is a named region."""
    unmarked = page.evaluate(UNMARKED_TABLES_JS)
    assert not unmarked, f"{label}: tables whose scroll area the keyboard cannot reach: {unmarked}"


def _axe_versions() -> tuple[str, str]:
    """(installed, wanted) versions of axe-core: its package.json under node_modules, and the
    pinned one of tests/js/package.json."""
    installed = json.loads((AXE.parent / "package.json").read_text())["version"]
    wanted = json.loads((ROOT / "tests" / "js" / "package.json").read_text())["dependencies"]["axe-core"]
    return str(installed), str(wanted)


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def timed_goto(page: Any, url: str) -> float:
    """Seconds from starting a navigation to its `load` event."""
    start = time.monotonic()
    page.goto(url, wait_until="load")
    return time.monotonic() - start


RUN_IMAGE = "opscraft-test/runner:1"
# Runs go to Docker with the locally built test image when the engine answers, else to the local runner.
RUN_ENV = {
    "OPSCRAFT_LOCAL_RUNNER": "1",
    # Viewers run scripts in these journeys: on the local runner where Docker is missing.
    "OPSCRAFT_LOCAL_RUNNER_ROLE": "viewer",
    **{f"OPSCRAFT_IMAGE_{kind}": RUN_IMAGE for kind in ("BASH", "PYTHON", "ANSIBLE", "TERRAFORM")},
}

# `RUN_ENV` with open pages re-reading their lists every second and re-checking the session (the
# navigation badge) every 2 s (`OPSCRAFT_LIVE_SECONDS`, 5 s by default): a test waiting for a
# change made elsewhere to show waits about a second, not up to 5 (10 for the badge).
LIVE_ENV = {**RUN_ENV, "OPSCRAFT_LIVE_SECONDS": "1"}

# (user name, role) pairs for `serving` (the CLI makes them, or the API after an admin).
OPERATOR_AND_VIEWER = (("operator", "operator"), ("viewer", "viewer"))


@contextmanager
def serving(
    tmp_path_factory: pytest.TempPathFactory,
    label: str,
    env: Mapping[str, str] = RUN_ENV,
    *,
    users: Sequence[tuple[str, str]] = (),
    port: int | None = None,
    through_api: bool = False,
) -> Iterator[LiveServer]:
    """A live `opscraft serve` for one test module in a fresh data folder named after `label`,
    with `users` (user name, role) made by the CLI, or through the API (`api_users`, the first
    an admin) when `through_api`; stopped when the block ends."""
    live = start_server(Path(tmp_path_factory.mktemp(label)) / "server", dict(env), port=port)
    try:
        if through_api and users:
            api_users(live, users)
        else:
            for username, role in users:
                cli_user(live, username, role)
        yield live
    finally:
        stop_server(live)


def journey_server(
    label: str,
    *,
    users: Sequence[tuple[str, str]] = (),
    env: Mapping[str, str] = RUN_ENV,
    through_api: bool = False,
) -> Any:
    """A module-scoped `server` fixture (assign it as `server = journey_server(...)`): `serving`
    with the run settings of the journeys (`RUN_ENV`), or `env` ({}: the defaults, as the
    per-test `live_server`), and `users` (`through_api`: as `serving` says). One server for a
    module's tests, each with rows of its own names: a server's start is 2.4-2.8 s of CPU
    (imports, the API's route state; docs/benchmarks.md, sessions 27 and 48), often more than
    the test."""

    @pytest.fixture(scope="module")
    def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
        with serving(tmp_path_factory, label, env, users=users, through_api=through_api) as live:
            yield live

    return server


def journey_tokens() -> Any:
    """A module-scoped `tokens` fixture (assign it as `tokens = journey_tokens()`): the bearer
    headers of the admin, operator and viewer `make_users` registers on the module's `server`."""

    @pytest.fixture(scope="module")
    def tokens(server: LiveServer) -> dict[str, dict[str, str]]:
        return make_users(server)

    return tokens


def start_run(server: LiveServer, headers: dict[str, str], script_id: int, **parameters: Any) -> int:
    body = {"script_id": script_id, "parameters": parameters}
    response = httpx.post(f"{server.url}/api/v1/executions", json=body, headers=headers, timeout=API_TIMEOUT)
    assert response.status_code == 202, response.text
    return int(response.json()["id"])


def wait_run(
    server: LiveServer, headers: dict[str, str], execution_id: int, timeout: float = 90
) -> dict[str, Any]:
    """Until the run has finished; returns the execution with its stdout joined as `output`."""
    url = f"{server.url}/api/v1/executions/{execution_id}"

    def finished() -> dict[str, Any] | None:
        run = httpx.get(url, headers=headers, timeout=API_TIMEOUT).json()
        return run if run["finished_at"] is not None else None

    run = wait_until(finished, f"execution {execution_id} to finish", timeout, 0.3)
    logs = httpx.get(
        f"{server.url}/api/v1/executions/{execution_id}/logs", headers=headers, timeout=API_TIMEOUT
    ).json()
    run["output"] = "".join(chunk["content"] for chunk in logs["items"] if chunk["stream"] == "stdout")
    return dict(run)
