"""The pages' Tailwind CSS compiled ahead of time (`opscraft.ui.stylesheet`): no page loads
Tailwind's browser build any more, the stylesheet they link is what the sources make
(`tests.tailwind_css`), and Tailwind's build, put into a page, finds no class it lacks."""

from __future__ import annotations

from typing import Any

import pytest

from opscraft.ui.stylesheet import TAILWIND_CSS
from tests.conftest import LiveServer
from tests.tailwind_css import BUILT_JS, TAILWIND_JS, TAILWIND_SETUP, candidates, compile_css
from tests.ui_journey import create_script, journey_server, signed_in, token, wait_connected

pytestmark = pytest.mark.browser

server = journey_server("tailwind-css", users=[("admin", "admin")], through_api=True, env={})

# Every selector of the style rules of a style sheet, at any depth (layers, media, nesting).
SELECTORS_JS = """sheet => {
    const found = [];
    const walk = (rules) => { for (const rule of rules) {
        if (rule.selectorText) found.push(rule.selectorText);
        if (rule.cssRules) walk(rule.cssRules);
    } };
    walk(sheet.cssRules);
    return found;
}"""
LINKED_JS = f"""() => {{
    const sheet = [...document.styleSheets].find(s => (s.href || "").includes("/opscraft-"));
    return sheet ? ({SELECTORS_JS})(sheet) : null;
}}"""


def test_the_stylesheet_is_what_the_sources_make(browser: Any) -> None:
    made = compile_css(browser, candidates())
    assert made == TAILWIND_CSS.read_text(), (
        f"{TAILWIND_CSS} is not what the sources make: run `python -m tests.tailwind_css` and commit it"
    )


def _missing_rules(page: Any) -> list[str]:
    """The selectors Tailwind's browser build makes for the page's elements as they are now that
    the page's linked stylesheet lacks (the build is put into the page, then taken out again)."""
    linked = page.evaluate(LINKED_JS)
    assert linked, f"{page.url}: no stylesheet /opscraft-....css loaded"
    page.evaluate(
        """setup => document.head.append(Object.assign(document.createElement("style"),
            {type: "text/tailwindcss", textContent: setup}))""",
        TAILWIND_SETUP,
    )
    page.add_script_tag(path=str(TAILWIND_JS))
    page.wait_for_function(f"!!{BUILT_JS}")
    built = page.evaluate(f"({SELECTORS_JS})({BUILT_JS}.sheet)")
    return sorted(set(built) - set(linked))


def test_pages_load_no_tailwind_build_and_it_finds_no_class_the_stylesheet_lacks(
    server: LiveServer, page: Any
) -> None:
    """NiceGUI put Tailwind's browser build into every page, which compiled CSS in each tab on
    every load and DOM change. The pages (signed out and in, with a dialog open, a 404) link the
    CSS compiled ahead instead; Tailwind's build, put into each, makes no rule that CSS lacks."""
    admin = token(server, "admin")
    script = create_script(server, admin, "styled", "echo hi\n", status="active")
    loads: list[str] = []
    page.on("request", lambda request: loads.append(request.url) if "tailwindcss" in request.url else None)
    page.goto(f"{server.url}/login")
    assert not _missing_rules(page), "login"
    visits = {
        "/": None,
        "/scripts": None,
        f"/scripts/{script['id']}": "execute-button",
        f"/scripts/{script['id']}/edit": None,
        "/executions": None,
        "/users": "new-user",
        "/settings": None,
        "/notifications": "channel-add",
        "/no-such-page": None,
    }
    signed_in(page, server, "admin", "/")
    for path, opener in visits.items():
        page.goto(server.url + path)
        wait_connected(page)
        if opener is not None:
            page.get_by_test_id(opener).click()
            page.wait_for_function("!!document.activeElement?.closest('.q-dialog')")
        missing = _missing_rules(page)
        assert not missing, f"{path}: the stylesheet lacks {missing}: run `python -m tests.tailwind_css`"
    assert not loads, f"pages loaded Tailwind's browser build: {loads}"
