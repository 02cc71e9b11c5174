"""Rows of stored text people choose, as long as it may be, in the tables of the list pages: a
script's description of two sentences (shown cut to 28rem under its name) made the scripts table
1,230 px wide, so in a 1280 or 1440 px window with the navigation drawer open each row's Run
button was right of the table's edge until it was scrolled sideways; a 128-character name (no
space) did the same there, to the secrets table's Delete (4,455 px: a 300-character
description), the users table's columns (a 200-character full name) and the runs table's.
So did a cell of chips, never wrapped: a script's 20 tags made the scripts table 2,540 px wide
(its Version and Updated columns out of view), and a secret attached to five scripts pushed its
Last used and Updated columns under the row's buttons. Each table is made once by
`widgets.data_table`; the text and chip columns wrap (`WRAPPED`) and the columns of a row's
buttons stay at the table's right edge (`STICKY_ACTIONS`)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.ui_journey import API_TIMEOUT, create_script, journey_server, journey_tokens, signed_in, start_run

pytestmark = pytest.mark.browser

server = journey_server("wide-rows-ui")
tokens = journey_tokens()

VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
SCRIPT = "w" * 128
SENTENCES = (
    "Backs up the production database to the offsite bucket every night, then checks the copy "
    "and prunes the copies older than thirty days."
)
SECRET = "S" * 128
USER = "u" * 64
TAGS = [f"tag-{n:02d}-" + "t" * 43 for n in range(20)]  # the most tags, each of the longest
ATTACHED = [f"attached-{n}-" + "a" * 100 for n in range(5)]  # scripts the secret is attached to

# How much wider than its visible part the table `testid`'s scroll area is, in px.
WIDER_JS = """id => { const m = document.querySelector(`[data-testid=${id}] .q-table__middle`);
    return m.scrollWidth - m.clientWidth; }"""
# Whether the point at the centre of the element `id` shows that element (nothing over it).
SHOWN_AT_CENTRE_JS = """([x, y, id]) => !!document.elementFromPoint(x, y)?.closest(`[data-testid='${id}']`)"""


@pytest.fixture(scope="module")
def rows(server: LiveServer, tokens: dict[str, dict[str, str]]) -> dict[str, int]:
    """A script of the longest name with two sentences of description, 20 long tags, a version
    note of 500 characters and a run; a secret of the longest name and a long description,
    attached to 5 scripts of long names; a user of the longest username and full name."""
    operator = tokens["operator"]
    script = create_script(
        server, operator, SCRIPT, "echo hi\n", description=SENTENCES, status="active", tags=TAGS
    )
    api = f"{server.url}/api/v1"
    note = {"content": "echo hello\n", "change_note": "n" * 500}
    r = httpx.put(f"{api}/scripts/{script['id']}", json=note, headers=operator, timeout=API_TIMEOUT)
    assert r.status_code == 200, r.text
    start_run(server, operator, script["id"])
    secret = {"name": SECRET, "value": "wide-rows-1", "description": "D" * 300}
    r = httpx.post(f"{api}/secrets", json=secret, headers=operator, timeout=API_TIMEOUT)
    assert r.status_code == 201, r.text
    secret_id = r.json()["id"]
    for name in ATTACHED:
        attached = create_script(server, operator, name, "echo hi\n")
        r = httpx.post(
            f"{api}/scripts/{attached['id']}/secrets/{secret_id}", headers=operator, timeout=API_TIMEOUT
        )
        assert r.status_code == 201, r.text
    user = {"username": USER, "email": f"{'e' * 60}@example.com", "password": "Wide-rows-9x"}
    user["full_name"] = "F" * 200
    r = httpx.post(f"{api}/users", json=user, headers=tokens["admin"], timeout=API_TIMEOUT)
    assert r.status_code == 201, r.text
    return {"script": int(script["id"])}


def _assert_in_view(page: Any, testid: str, width: int) -> None:
    """The button `testid` is inside the window and drawn on top, without scrolling the table,
    its icon and label on one line (squeezed, the label went under the icon)."""
    button = page.get_by_test_id(testid)
    button.wait_for()
    box = button.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= width, (testid, box)
    assert box["height"] <= 40, (testid, box)
    centre = [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, testid]
    if centre[1] > page.viewport_size["height"]:
        button.scroll_into_view_if_needed()
        box = button.bounding_box()
        centre = [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2, testid]
    assert page.evaluate(SHOWN_AT_CENTRE_JS, centre), testid


@pytest.mark.parametrize("device", list(VIEWPORTS))
def test_each_rows_buttons_are_in_view_whatever_its_text(
    browser: Any, server: LiveServer, rows: dict[str, int], device: str
) -> None:
    """Run, a secret's Delete, a user's Delete and a version's Roll back are in view at 1280 px
    and at 390 px (where tables with many columns still scroll sideways), and on the desktop no
    table is wider than shown."""
    size = VIEWPORTS[device]
    context = browser.new_context(viewport=size)
    page = context.new_page()
    try:
        pages = (
            (f"/scripts?search={SCRIPT}", "scripts-table", f"run-{SCRIPT}"),
            (f"/secrets?search={SECRET[:64]}", "secrets-table", f"delete-{SECRET}"),
            (f"/users?search={USER}", "users-table", f"delete-{USER}"),
            (f"/scripts/{rows['script']}?tab=versions", "versions-table", "rollback-1"),
            (f"/executions?script_id={rows['script']}", "runs-table", None),
        )
        for path, table, button in pages:
            signed_in(page, server, "admin", path)
            page.get_by_test_id(table).locator("tbody tr").first.wait_for()
            if button is not None:
                _assert_in_view(page, button, size["width"])
            if device == "desktop":
                assert page.evaluate(WIDER_JS, table) <= 1, f"{path}: {page.evaluate(WIDER_JS, table)} px"
    finally:
        context.close()


# The widths in px of the cells with text of the column headed `label` in the table `id`.
COLUMN_WIDTHS_JS = """([id, label]) => {
    const table = document.querySelector(`[data-testid=${id}] table`);
    const at = [...table.querySelectorAll('thead th')].findIndex(th => th.innerText.trim() === label);
    return [...table.querySelectorAll('tbody tr')].map(tr => tr.cells[at])
        .filter(td => td && td.innerText.trim()).map(td => td.getBoundingClientRect().width); }"""


def test_the_audit_logs_details_are_readable_on_a_phone(
    browser: Any, server: LiveServer, rows: dict[str, int]
) -> None:
    """At 390 px the audit log's Details column, wrapped anywhere and given no width of its own,
    was squeezed to 63 px by the columns left of it: a script's creation took 400 px of height,
    four characters a line, most of it right of the table's visible part. It keeps 12rem (the
    table scrolls sideways, as every table of many columns on a phone)."""
    context = browser.new_context(viewport=VIEWPORTS["phone"])
    page = context.new_page()
    try:
        signed_in(page, server, "admin", "/audit?action=script.create")
        page.get_by_test_id("audit-table").locator("tbody tr").first.wait_for()
        widths = page.evaluate(COLUMN_WIDTHS_JS, ["audit-table", "Details"])
        assert widths and min(widths) >= 12 * 16, widths
    finally:
        context.close()


# The width in px of each visible button whose data-testid is in the list.
BUTTON_WIDTHS_JS = """ids => ids.map(id => [id, document.querySelector(`[data-testid=${id}]`)])
    .filter(([, b]) => b && b.offsetParent).map(([id, b]) => [id, b.getBoundingClientRect().width])"""


def test_the_add_buttons_are_as_wide_as_their_label(
    browser: Any, server: LiveServer, rows: dict[str, int]
) -> None:
    """Notifications' Add channel and Add rule and Inventories' New inventory stood straight in
    the page's column, which stretched them into bars 996 px wide at 1280 px, unlike every other
    page's Add button (a script's Add schedule, New secret...). Each is as wide as its label."""
    context = browser.new_context(viewport=VIEWPORTS["desktop"])
    page = context.new_page()
    try:
        pages = (
            ("/notifications", ["channel-add", "rule-add"]),
            ("/inventories", ["inventory-new"]),
            ("/secrets", ["new-secret"]),
            ("/users", ["new-user"]),
            ("/tokens", ["token-add"]),
            (f"/scripts/{rows['script']}?tab=schedules", ["schedule-add"]),
            (f"/scripts/{rows['script']}?tab=webhooks", ["webhook-add"]),
            (f"/scripts/{rows['script']}?tab=chains", ["chain-add"]),
        )
        for path, buttons in pages:
            signed_in(page, server, "admin", path)
            for testid in buttons:
                page.get_by_test_id(testid).wait_for()
            widths = page.evaluate(BUTTON_WIDTHS_JS, buttons)
            assert len(widths) == len(buttons) and all(width < 300 for _, width in widths), (path, widths)
    finally:
        context.close()
