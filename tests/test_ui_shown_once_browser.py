"""A value shown once (a new API token, a new webhook's URL holding its token) has a Copy button
(`widgets.shown_once`): users had to select the text by hand. It writes the value to the
clipboard and says so; where the browser offers no Clipboard API (a page served on plain http
from another machine is not a secure context: `navigator.clipboard` is then absent), it selects
the text and says to press Ctrl+C. The value goes into no address and no server log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from opscraft.ui.widgets import COPIED, PRESS_TO_COPY
from tests.conftest import LiveServer
from tests.ui_journey import create_script, journey_server, journey_tokens, signed_in

pytestmark = pytest.mark.browser

server = journey_server("shown-once-ui")
tokens = journey_tokens()

# What a page on plain http from another machine lacks (Chromium defines `navigator.clipboard`
# in secure contexts only; the tests' server is on 127.0.0.1, which is one).
NOT_SECURE_JS = "Object.defineProperty(Navigator.prototype, 'clipboard', {get: () => undefined});"


def _new_token(page: Any, server: LiveServer, _tokens: dict[str, dict[str, str]], name: str) -> str:
    signed_in(page, server, "operator", "/tokens")
    page.get_by_test_id("token-add").click()
    page.get_by_test_id("token-name").fill(name)
    page.get_by_test_id("token-submit").click()
    return "token-value"


def _new_webhook(page: Any, server: LiveServer, tokens: dict[str, dict[str, str]], name: str) -> str:
    script = create_script(server, tokens["admin"], name, "#!/bin/bash\necho hi\n", status="active")
    signed_in(page, server, "operator", f"/scripts/{script['id']}?tab=webhooks")
    page.get_by_test_id("webhook-add").click()
    page.get_by_test_id("webhook-name").fill(name)
    page.get_by_test_id("webhook-submit").click()
    return "webhook-url"


Make = Callable[[Any, LiveServer, dict[str, dict[str, str]], str], str]
SHOWN_ONCE: list[Make] = [_new_token, _new_webhook]


def _shown(page: Any, testid: str) -> str:
    field = page.get_by_test_id(testid)
    page.wait_for_function(
        "id => document.querySelector(`[data-testid='${id}']`)?.value", arg=testid, timeout=30_000
    )
    return str(field.input_value())


@pytest.mark.parametrize("make", SHOWN_ONCE, ids=["token", "webhook"])
def test_copy_puts_the_value_on_the_clipboard_and_says_so(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any, make: Any
) -> None:
    from playwright.sync_api import expect

    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=server.url)
    testid = make(page, server, tokens, f"copied-{make.__name__[1:]}")
    value = _shown(page, testid)
    page.get_by_test_id(f"{testid}-copy").click()
    expect(page.get_by_test_id(f"{testid}-copied")).to_have_text(COPIED)
    assert page.evaluate("navigator.clipboard.readText()") == value
    assert value not in page.url and value not in server.log()
    page.keyboard.press("Escape")
    page.get_by_test_id(testid).wait_for(state="hidden")


@pytest.mark.parametrize("make", SHOWN_ONCE, ids=["token", "webhook"])
def test_without_a_clipboard_copy_selects_the_value_and_says_press_ctrl_c(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any, make: Any
) -> None:
    from playwright.sync_api import expect

    page.add_init_script(NOT_SECURE_JS)
    testid = make(page, server, tokens, f"selected-{make.__name__[1:]}")
    value = _shown(page, testid)
    page.get_by_test_id(f"{testid}-copy").click()
    expect(page.get_by_test_id(f"{testid}-copied")).to_have_text(PRESS_TO_COPY)
    selected = page.evaluate(
        "() => { const f = document.activeElement;"
        " return f && f.value ? f.value.slice(f.selectionStart, f.selectionEnd) : ''; }"
    )
    assert selected == value
