"""The script editor's tags: every tag typed is saved, however fast or however it is left."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.ui_journey import journey_server, journey_tokens, log_in, wait_connected

pytestmark = pytest.mark.browser

server = journey_server("tags-ui", env={})  # the default settings, as `live_server`
tokens = journey_tokens()

# Every NiceGUI event reaches the server 300 ms late, in order: a slow link, made repeatable.
SLOW_LINK_JS = """() => {
    const send = window.socket.emit.bind(window.socket);
    window.socket.emit = (...args) => setTimeout(() => send(...args), 300);
}"""


def _saved_tags(page: Any, server: LiveServer, headers: dict[str, str]) -> list[str]:
    page.wait_for_url(re.compile(r".*/scripts/\d+$"))
    script_id = page.url.rsplit("/", 1)[1]
    response = httpx.get(f"{server.url}/api/v1/scripts/{script_id}", headers=headers)
    return list(response.json()["tags"])


def test_tags_typed_quickly_or_left_unconfirmed_are_all_saved(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    log_in(page, server, "operator", then="/scripts/new")
    wait_connected(page)
    page.get_by_test_id("script-name").fill("tagged")
    page.evaluate(SLOW_LINK_JS)

    # Two tags entered within one round trip; a third typed again (kept, not toggled off), and
    # a last one typed without Enter before Save.
    page.get_by_test_id("script-tags").click()
    for key in ("demo", "Enter", "ops", "Enter", "demo", "Enter", "nightly"):
        page.keyboard.press(key) if key == "Enter" else page.keyboard.type(key)
    # Leaving the field keeps the unconfirmed text, as a chip (Quasar alone would clear it).
    page.get_by_test_id("script-description").click()
    page.locator(".q-chip", has_text="nightly").wait_for()
    page.get_by_test_id("save-script").click()

    assert _saved_tags(page, server, tokens["operator"]) == ["demo", "ops", "nightly"]

    # Editing: a chip removed goes, the others stay.
    page.get_by_test_id("edit-script").click()
    wait_connected(page)
    page.locator(".q-chip", has_text="ops").locator(".q-chip__icon--remove").click()
    page.get_by_test_id("save-script").click()
    assert _saved_tags(page, server, tokens["operator"]) == ["demo", "nightly"]


def test_tags_come_back_with_the_rest_of_the_draft_after_a_reload(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The editor's draft kept every field but the tags: a reload (what NiceGUI does after the
    server dropped the page) brought the form back without them."""
    log_in(page, server, "operator", then="/scripts/new")
    wait_connected(page)
    page.get_by_test_id("script-name").fill("kept-tags")
    page.get_by_test_id("script-tags").click()
    for key in ("prod", "Enter", "web", "Enter", "half-typed"):
        page.keyboard.press(key) if key == "Enter" else page.keyboard.type(key)
    page.wait_for_function("sessionStorage.getItem('oc-draft:script:new')?.includes('half-typed')")

    page.reload()
    wait_connected(page)
    page.get_by_test_id("draft-restored").wait_for()
    for tag in ("prod", "web", "half-typed"):
        page.locator(".q-chip", has_text=tag).wait_for()
    page.get_by_test_id("save-script").click()
    assert _saved_tags(page, server, tokens["operator"]) == ["prod", "web", "half-typed"]
