"""A service's refusal shown in a red notification reads as a sentence.

Field report (session 52): the services say their messages in lower case (the API's `detail`,
by design), and the UI's notifications showed them so ("secret X is attached to 1 script(s)
..."). The UI capitalises them at one place (`ui.layout.sentence`, in `notify_error`), never
in the services: the API's words stay as they are, and a message that starts with a name keeps
its case.
"""

from __future__ import annotations

from typing import Any

import pytest

from opscraft.ui.layout import sentence
from tests.conftest import LiveServer
from tests.ui_journey import api, create_script, journey_server, journey_tokens, signed_in

pytestmark = pytest.mark.browser

server = journey_server("notice-sentence-ui", env={})
tokens = journey_tokens()


def test_a_refusal_in_a_notification_starts_with_a_capital(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    admin = tokens["admin"]
    secret = api(server, "POST", "/secrets", admin, json={"name": "SENTENCE_KEY", "value": "x"})
    script = create_script(server, admin, "sentence-script", "true\n")
    api(server, "POST", f"/scripts/{script['id']}/secrets/{secret['id']}", admin)
    signed_in(page, server, "admin", "/secrets")
    page.get_by_test_id("delete-SENTENCE_KEY").click()
    page.get_by_test_id("delete-confirm").click()
    notice = page.locator(".q-notification").filter(has_text="is attached to 1 script(s)")
    notice.wait_for()
    said = notice.locator(".q-notification__message").inner_text()
    assert said.startswith("Secret SENTENCE_KEY is attached to 1 script(s)"), said


def test_a_message_starting_with_a_name_keeps_its_case() -> None:
    assert sentence("script_id: must be a whole number (it is text)") == (
        "script_id: must be a whole number (it is text)"
    )
    assert sentence("x-opscraft-timestamp is missing") == "x-opscraft-timestamp is missing"
    assert sentence("your role (viewer) may not do this") == "Your role (viewer) may not do this"
