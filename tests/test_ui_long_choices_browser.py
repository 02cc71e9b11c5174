"""Pickers over more items than a dialog lists (opscraft/ui/choices.py): with 205 vault secrets
the webhook dialog and the script's Secrets tab list the first 200, say so under the field, and
find any other one by what the user types (they used to stop at 200 without a word)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from opscraft.ui.choices import CHOICES_LIMIT
from tests.conftest import LiveServer
from tests.ui_journey import create_script, journey_server, journey_tokens, log_in, wait_connected

pytestmark = pytest.mark.browser

server = journey_server("long-choices-ui")
tokens = journey_tokens()
COUNT = CHOICES_LIMIT + 5


@pytest.fixture(scope="module")
def vault(server: LiveServer, tokens: dict[str, dict[str, str]]) -> dict[str, int]:
    """COUNT secrets, KEY_000 ... KEY_204, made through the API: name -> id."""
    made: dict[str, int] = {}
    with httpx.Client(base_url=server.url, headers=tokens["admin"], timeout=30) as api:
        for n in range(COUNT):
            r = api.post("/api/v1/secrets", json={"name": f"KEY_{n:03d}", "value": f"v{n}" * 8})
            assert r.status_code == 201, r.text
            made[r.json()["name"]] = r.json()["id"]
    return made


def _field(page: Any, testid: str) -> Any:
    return page.locator(".q-field", has=page.get_by_test_id(testid))


def _find_and_pick(page: Any, testid: str, name: str) -> None:
    """Type `name` into the picker and choose the option the server's search returns."""
    _field(page, testid).locator("input").press_sequentially(name)
    page.get_by_role("option", name=name, exact=True).click()


def test_the_webhook_dialog_finds_a_secret_past_the_first_200(
    server: LiveServer, tokens: dict[str, dict[str, str]], vault: dict[str, int], page: Any
) -> None:
    script = create_script(server, tokens["admin"], "hooked", "#!/bin/bash\necho hi\n")
    log_in(page, server, "operator", then=f"/scripts/{script['id']}?tab=webhooks")
    wait_connected(page)
    page.get_by_test_id("webhook-add").click()
    page.get_by_test_id("webhook-name").fill("late-key")
    field = _field(page, "webhook-secret")
    field.get_by_text(f"The first {CHOICES_LIMIT} are listed: type to search them all").wait_for()
    # The last secret is not among the first 200: found by typing.
    field.click()
    page.get_by_role("option", name="KEY_000", exact=True).wait_for()
    assert page.get_by_role("option", name="KEY_204", exact=True).count() == 0
    page.keyboard.press("Escape")
    _find_and_pick(page, "webhook-secret", "KEY_204")
    page.get_by_test_id("webhook-submit").click()
    page.locator(".q-notification", has_text="Webhook").wait_for()
    url = f"{server.url}/api/v1/scripts/{script['id']}/webhooks"
    hooks = httpx.get(url, headers=tokens["admin"]).json()["items"]
    assert [(h["name"], h["secret_id"]) for h in hooks] == [("late-key", vault["KEY_204"])]


def test_the_secrets_tab_attaches_a_secret_past_the_first_200(
    server: LiveServer, tokens: dict[str, dict[str, str]], vault: dict[str, int], page: Any
) -> None:
    script = create_script(server, tokens["admin"], "attaching", "#!/bin/bash\necho hi\n")
    log_in(page, server, "operator", then=f"/scripts/{script['id']}?tab=secrets")
    wait_connected(page)
    field = _field(page, "attach-select")
    field.get_by_text(f"The first {CHOICES_LIMIT} are listed").wait_for()
    # Several matches: the note goes once all of them are listed.
    _field(page, "attach-select").locator("input").press_sequentially("KEY_20")
    field.get_by_text("are listed").wait_for(state="detached")
    options = page.get_by_role("option")
    options.filter(has_text="KEY_203").wait_for()
    assert options.all_inner_texts() == [f"KEY_{n}" for n in range(200, COUNT)]
    page.get_by_role("option", name="KEY_203", exact=True).click()
    page.get_by_test_id("attach-submit").click()
    page.get_by_test_id("attached-KEY_203").wait_for()
    url = f"{server.url}/api/v1/scripts/{script['id']}/secrets"
    attached = httpx.get(url, headers=tokens["admin"]).json()["items"]
    assert [a["secret_id"] for a in attached] == [vault["KEY_203"]]
