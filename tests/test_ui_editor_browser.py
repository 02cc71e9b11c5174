"""The script editor: Ctrl+S saves, the size limit is said while typing and a refusal stays, dark theme."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.ui_journey import log_in, make_users, paste_code, type_code, wait_connected

pytestmark = pytest.mark.browser


def _background(page: Any, selector: str) -> tuple[int, ...]:
    color = page.evaluate(f"getComputedStyle(document.querySelector('{selector}')).backgroundColor")
    return tuple(int(part) for part in re.findall(r"\d+", color)[:3])


def test_ctrl_s_saves_size_refusal_stays_and_dark_editor(live_server: LiveServer, page: Any) -> None:
    make_users(live_server)
    log_in(page, live_server, "operator")
    page.goto(f"{live_server.url}/scripts/new")
    wait_connected(page)

    # 339 KiB pasted: the counter says the limit, the live check refuses, Save keeps the refusal shown.
    paste_code(page, "#!/bin/bash\n" + "echo 'padding line for the size limit check'\n" * 7900)
    page.get_by_test_id("content-size").get_by_text("347.2 KiB of 256 KiB").wait_for()
    page.get_by_test_id("content-refused").get_by_text("larger than the limit of 256 KiB").wait_for()
    assert page.get_by_test_id("checks-ok").count() == 0
    page.get_by_test_id("script-name").fill("too-big")
    page.get_by_test_id("save-script").click()
    page.wait_for_timeout(1500)  # a refusal that flashes away would be gone by now
    assert page.get_by_test_id("content-refused").is_visible()
    assert "text-negative" in (page.get_by_test_id("content-size").get_attribute("class") or "")

    # Back to a small script: Ctrl+S in the editor saves it.
    type_code(page, '#!/bin/bash\necho "saved with the keyboard"\n')
    page.get_by_test_id("checks-ok").wait_for()
    page.get_by_test_id("script-name").fill("keyboard-saved")
    page.locator('[data-testid="script-editor"] .cm-content').click()
    page.keyboard.press("Control+s")
    page.wait_for_url(re.compile(r".*/scripts/\d+$"))
    page.get_by_text("keyboard-saved").first.wait_for()

    # Dark mode darkens the editor too.
    page.goto(page.url + "/edit")
    wait_connected(page)
    light = _background(page, '[data-testid="script-editor"] .cm-editor')
    page.get_by_test_id("dark-toggle").click()
    page.wait_for_function(
        "() => { const e = document.querySelector('[data-testid=\"script-editor\"] .cm-editor');"
        " const c = getComputedStyle(e).backgroundColor.match(/\\d+/g).slice(0, 3).map(Number);"
        " return c[0] + c[1] + c[2] < 200; }"
    )
    assert sum(light) > 600
    page.get_by_test_id("dark-toggle").click()  # back to light for the next tests of this browser
