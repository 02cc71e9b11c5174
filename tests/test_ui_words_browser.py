"""What a new user reads on every page and dialog (field report, h3's brief): the buttons in one
casing, and help texts that say what the user needs rather than where the code keeps it. One
server with a row of each kind; each test walks every main page (`PAGES`) as the admin.

- Buttons said "Add channel" on one page and "NEW INVENTORY" or "ADD" on another: Quasar shows a
  button's words in upper case unless it says `no-caps`, and half of them did. Every button,
  button toggle and tab now shows its words as written (`widgets.sentence_case_buttons`), in
  sentence case: the first word capitalised, the others not, but for names (`PROPER`).
- `/users` broke an e-mail address in the middle of its domain at 1280 px: a table's cell of an
  identifier (e-mail, user name, host) keeps it on one line, cut with "…", whole in its tooltip.
- The Webhooks tab said "See docs/automation.md for signing", the Then run tab pointed at the same
  file, the Settings page named environment variables an admin in the UI cannot set
  ("OPSCRAFT_LOCAL_RUNNER=1 allows ..."), the Workers page `OPSCRAFT_WORKER_LOST_SECONDS` and the
  `opscraft worker` command: no page names a file, a module or a variable (`INTERNAL`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import PASSWORD, LiveServer
from tests.ui_journey import (
    RUN_ENV,
    create_script,
    field_error,
    make_users,
    paste_code,
    serving,
    signed_in,
    wait_at_rest,
    wait_connected,
)

pytestmark = pytest.mark.browser

# The server's environment fixes two of the settings the Settings page offers (their notes show),
# and a script's content takes at most 1 KiB (a refusal of its size is quick to reach).
ENV = {**RUN_ENV, "OPSCRAFT_WARM_POOL_SIZE": "0", "OPSCRAFT_MAX_SCRIPT_BYTES": "1024"}

# A file path or name, a Python module, an environment variable, the CLI's commands.
INTERNAL = re.compile(
    r"\bdocs/|\b[\w/-]+\.(?:md|py)\b|\bopscraft\.\w|\bservices/|\bui/\w|OPSCRAFT_\w+"
    r"|\bopscraft (?:serve|worker)\b"
)

# Identifiers a table shows (`widgets.IDENTIFIER`): longer than their column at 1280 px.
LONG_EMAIL = "marie-claire.vandenberghe@infrastructure-operations.example.com"
LONG_USERNAME = "marie-claire.vandenberghe-infrastructure-operations"
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}

# Words a button may capitalise after its first: names, and abbreviations said letter by letter.
PROPER = {"API", "URL", "UTC", "OpsCraft", "GitHub", "GitLab", "JSON", "SSH", "Ctrl+C", "ID", "CSV", "I"}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    """A server with a script (a webhook, a schedule and a "then run" link), a secret and an
    inventory; returns it and the paths of the pages walked."""
    with serving(tmp_path_factory, "words-ui", ENV) as server:
        admin = make_users(server)["admin"]
        script = create_script(server, admin, "words-deploy", "#!/bin/bash\necho hi\n", status="active")
        then = create_script(server, admin, "words-notify", "#!/bin/bash\necho done\n", status="active")
        base = f"{server.url}/api/v1/scripts/{script['id']}"
        for path, body in (
            ("/chains", {"target_script_id": then["id"]}),
            ("/webhooks", {"name": "on-push"}),
            ("/schedules", {"name": "nightly", "cron": "0 3 * * *"}),
        ):
            r = httpx.post(base + path, json=body, headers=admin, timeout=60)
            assert r.status_code == 201, r.text
        person = {"username": LONG_USERNAME, "email": LONG_EMAIL, "password": PASSWORD, "role": "operator"}
        r = httpx.post(f"{server.url}/api/v1/users", json=person, headers=admin, timeout=60)
        assert r.status_code == 201, r.text
        secret = {"name": "API_TOKEN", "value": "s3cr3t-value", "description": "deploy token"}
        assert httpx.post(f"{server.url}/api/v1/secrets", json=secret, headers=admin).status_code == 201
        hosts = {"name": "web-hosts", "content": "[web]\nweb1 ansible_host=192.0.2.10\n"}
        r = httpx.post(f"{server.url}/api/v1/inventories", json=hosts, headers=admin, timeout=60)
        assert r.status_code == 201, r.text
        paths = {
            "dashboard": "/",
            "scripts": "/scripts",
            "script": f"/scripts/{script['id']}",
            "script-content": f"/scripts/{script['id']}?tab=content",
            "script-versions": f"/scripts/{script['id']}?tab=versions",
            "script-executions": f"/scripts/{script['id']}?tab=executions",
            "script-secrets": f"/scripts/{script['id']}?tab=secrets",
            "script-schedules": f"/scripts/{script['id']}?tab=schedules",
            "script-webhooks": f"/scripts/{script['id']}?tab=webhooks",
            "script-chains": f"/scripts/{script['id']}?tab=chains",
            "script-edit": f"/scripts/{script['id']}/edit",
            "script-new": "/scripts/new",
            "executions": "/executions",
            "schedules": "/schedules",
            "inventories": "/inventories",
            "approvals": "/approvals",
            "secrets": "/secrets",
            "users": "/users",
            "audit": "/audit",
            "workers": "/workers",
            "settings": "/settings",
            "notifications": "/notifications",
            "tokens": "/tokens",
            "profile": "/profile",
        }
        yield server, paths


# What a tab read once the browser connected shows with its first read (its rows and help come
# with it); the other pages are drawn whole before they are sent.
FIRST_READ = {"script-schedules": "nightly", "script-webhooks": "on-push", "script-chains": "words-notify"}

# (page, the test id of the button that opens a dialog on it)
DIALOGS = [
    ("users", "new-user"),
    ("secrets", "new-secret"),
    ("tokens", "token-add"),
    ("inventories", "inventory-new"),
    ("notifications", "channel-add"),
    ("notifications", "rule-add"),
    ("script-schedules", "schedule-add"),
    ("script-webhooks", "webhook-add"),
    ("script-chains", "chain-add"),
    ("script", "execute-button"),
    ("script", "delete-script"),
]

# Every visible button-like element's words (without its icon's ligature name) and how they are
# shown (their CSS text-transform); not the account menu's, which says the user's name.
BUTTONS_JS = """() => [...document.querySelectorAll('.q-btn, .q-tab')]
    .filter(b => b.offsetParent !== null && b.dataset.testid !== 'user-menu')
    .map(b => {
        const words = b.querySelector('.q-btn__content, .q-tab__label') || b;
        const copy = words.cloneNode(true);
        copy.querySelectorAll('.q-icon').forEach(icon => icon.remove());
        const shown = [...words.childNodes].find(n => n.nodeType === 1 && !n.classList.contains('q-icon'));
        return [copy.textContent.trim(), getComputedStyle(shown || words).textTransform];
    })
    .filter(([text]) => /[A-Za-z]/.test(text))"""


def _not_sentence_case(text: str) -> str | None:
    """Why `text` (a button's words) is not in sentence case, or None when it is: the first word
    begins with a capital; no later word is capitalised or in capitals, but for `PROPER` names,
    numbers and what a page fills in (a quoted name)."""
    first, *rest = text.split()
    if first[0].isalpha() and not first[0].isupper():
        return "its first word has no capital"
    for word in rest:
        bare = word.strip("()\"'.,:…")
        if not bare or bare in PROPER or not bare[0].isalpha() or not bare[0].isupper():
            continue
        return f"{bare!r} is capitalised"
    if first.isupper() and len(first) > 1 and first not in PROPER:
        return f"{first!r} is in capitals"
    return None


def _buttons(page: Any) -> list[tuple[str, str]]:
    return [(str(text), str(shown)) for text, shown in page.evaluate(BUTTONS_JS)]


def _go(page: Any, url: str) -> None:
    page.goto(url)
    wait_connected(page)
    page.wait_for_function("document.querySelector('main, .q-page') !== null")


def test_every_button_shows_its_words_in_sentence_case(
    page: Any, site: tuple[LiveServer, dict[str, str]]
) -> None:
    server, paths = site
    signed_in(page, server, "admin", "/")
    found: dict[str, set[str]] = {}

    def check(where: str) -> None:
        for text, shown in _buttons(page):
            if shown != "none":
                found.setdefault(f"{text!r} shown in {shown}", set()).add(where)
            why = _not_sentence_case(text)
            if why:
                found.setdefault(f"{text!r}: {why}", set()).add(where)

    for name, path in paths.items():
        _go(page, server.url + path)
        check(name)
    for name, opener in DIALOGS:
        url = server.url + paths[name]
        if page.url != url:
            _go(page, url)
        page.get_by_test_id(opener).click()
        page.locator(".q-dialog").first.wait_for()
        wait_at_rest(page)  # the dialog's opening transition: its buttons are visible once it ends
        check(f"{name} dialog {opener}")
        page.keyboard.press("Escape")
        page.locator(".q-dialog").wait_for(state="detached")
    assert not found, "\n".join(
        f"{what} on {', '.join(sorted(where))}" for what, where in sorted(found.items())
    )


def test_no_help_text_names_a_file_a_module_or_a_variable(
    page: Any, site: tuple[LiveServer, dict[str, str]]
) -> None:
    server, paths = site
    signed_in(page, server, "admin", "/")
    found: dict[str, list[str]] = {}
    for name, path in paths.items():
        _go(page, server.url + path)
        if name in FIRST_READ:  # a tab's list and help come with its first read
            page.get_by_text(FIRST_READ[name]).first.wait_for()
        text = page.locator("body").inner_text()
        named = sorted(set(INTERNAL.findall(text)))
        if named:
            found[name] = named
    assert not found, found


def test_a_refusal_says_the_servers_limit_in_words_and_what_to_do(
    page: Any, site: tuple[LiveServer, dict[str, str]]
) -> None:
    """The editor said "split the script or raise OPSCRAFT_MAX_SCRIPT_BYTES" under a script past
    the content limit, and "Must be at most 86400 (OPSCRAFT_MAX_TIMEOUT_SECONDS), not 1000000"
    under the timeout: the services' messages name the settings for the API (as its docs do),
    the UI says them in words (`ui.plain_words`)."""
    server, paths = site
    signed_in(page, server, "admin", paths["script-new"])
    page.get_by_test_id("script-name").fill("words-too-long")
    paste_code(page, "#!/bin/bash\n" + "echo 0123456789abcdef\n" * 60)
    refused = page.get_by_test_id("content-refused")
    refused.get_by_text("larger than the limit of 1 KiB").wait_for()
    said = refused.inner_text()
    assert INTERNAL.search(said) is None, said
    assert "split the script or ask the server's administrator to raise that limit" in said, said
    paste_code(page, "#!/bin/bash\necho short\n")
    page.get_by_test_id("timeout").fill("1000000")
    page.get_by_test_id("save-script").click()
    field_error(page, "timeout").get_by_text("Must be at most 86400, not 1000000", exact=True).wait_for()


# For each table cell showing one of `values`: the number of lines its text takes, its text, and
# the tooltip (`title`) of the element holding the text or of one around it.
IDENTIFIER_CELLS_JS = """values => [...document.querySelectorAll('.q-table tbody td')]
    .filter(td => td.offsetParent !== null && values.some(v => td.textContent.includes(v)))
    .map(td => {
        const walker = document.createTreeWalker(td, NodeFilter.SHOW_TEXT);
        const tops = new Set();
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            const range = document.createRange();
            range.selectNodeContents(node);
            [...range.getClientRects()].forEach(r => r.width > 0 && tops.add(Math.round(r.top)));
        }
        const holder = td.querySelector('[title]') || td;
        const cut = [td, ...td.querySelectorAll('*')].some(e => e.scrollWidth > e.clientWidth + 1);
        return {text: td.textContent.trim(), lines: tops.size, title: holder.getAttribute('title'), cut};
    })"""


@pytest.mark.parametrize("device", list(VIEWPORTS))
def test_an_identifier_in_a_table_stays_on_one_line_whole_in_its_tooltip(
    browser: Any, site: tuple[LiveServer, dict[str, str]], device: str
) -> None:
    """The users table (e-mail and user name; the phone hides the e-mail column) at 1280 and
    390 px: each identifier on one line; cut, it is whole in its tooltip."""
    server, paths = site
    context = browser.new_context(viewport=VIEWPORTS[device])
    context.set_default_timeout(30_000)
    page = context.new_page()
    try:
        signed_in(page, server, "admin", paths["users"])
        page.get_by_text(LONG_USERNAME).first.wait_for()
        cells = page.evaluate(IDENTIFIER_CELLS_JS, [LONG_EMAIL, LONG_USERNAME])
        shown = {c["text"] for c in cells}
        assert LONG_USERNAME in shown and (device == "phone" or LONG_EMAIL in shown), cells
        for cell in cells:
            assert cell["lines"] == 1, cell
            assert not cell["cut"] or cell["title"] == cell["text"], cell
    finally:
        context.close()
