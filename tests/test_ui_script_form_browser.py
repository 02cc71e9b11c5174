"""The script editor keeps what it did not change and says each problem under its field: a choice
option holding a comma, a string parameter's empty default, the tags and the change note."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from opscraft.ui import labels
from opscraft.ui.script_edit import STARTER
from tests.conftest import LiveServer, note_element_ids, trace_socket
from tests.ui_journey import (
    SocketHold,
    code,
    create_script,
    dropped_connection,
    field_error,
    journey_server,
    journey_tokens,
    signed_in,
    type_code,
    wait_connected,
)

pytestmark = pytest.mark.browser

server = journey_server("script-form-ui")
tokens = journey_tokens()


def _parameters(server: LiveServer, headers: dict[str, str], script_id: int) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/api/v1/scripts/{script_id}", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    return dict(response.json()["parameters"])


def _edit(page: Any, server: LiveServer, script_id: int) -> None:
    """The script's edit page, signed in as the operator (`signed_in`), its socket traced for a
    failure's report (`trace_socket`)."""
    trace_socket(page)
    signed_in(page, server, "operator", f"/scripts/{script_id}/edit")
    page.get_by_test_id("checks-ok").wait_for()  # the form is settled: its first tick has run
    note_element_ids(page)


def _save(page: Any, server: LiveServer, script_id: int) -> None:
    page.wait_for_function("window.ocDirty === true")  # the server has the edit (its 1 s tick)
    page.get_by_test_id("save-script").click()
    page.wait_for_url(re.compile(rf"{re.escape(server.url)}/scripts/{script_id}$"))


def test_choice_options_holding_a_comma_survive_an_edit_and_can_be_typed(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    # The Options box was one comma-separated text: "Paris, France" came back as two options
    # (and its default, no longer one of them, refused the save of an unrelated edit).
    city = {"name": "CITY", "type": "choice", "options": ["Paris, France", "Bonn"]}
    city["default"] = "Paris, France"
    script = create_script(server, tokens["admin"], "city-job", 'echo "$CITY"\n', parameters=[city])
    _edit(page, server, script["id"])
    page.get_by_test_id("add-parameter").click()
    page.get_by_test_id("param-name-1").fill("PLACE")
    page.get_by_test_id("param-type-1").click()
    page.get_by_role("option", name=labels.PARAM_TYPE["choice"], exact=True).click()
    page.get_by_test_id("param-options-1").fill("Rome, Italy")
    page.keyboard.press("Enter")
    page.get_by_test_id("param-options-1").fill("Oslo")
    page.keyboard.press("Enter")
    page.get_by_test_id("param-default-1").fill("Rome, Italy")
    _save(page, server, script["id"])
    stored = _parameters(server, tokens["admin"], script["id"])
    assert stored["CITY"]["options"] == ["Paris, France", "Bonn"]
    assert stored["CITY"]["default"] == "Paris, France"
    assert stored["PLACE"]["options"] == ["Rome, Italy", "Oslo"]
    assert stored["PLACE"]["default"] == "Rome, Italy"


def test_an_empty_default_stays_empty_when_another_parameter_is_edited(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    # Default "" sets the variable to ""; no default leaves it unset (`set -u` stops on it). The
    # editor showed both as an empty box and saved "" as no default.
    declared = [{"name": "SUFFIX", "type": "string", "default": ""}, {"name": "WHO", "default": "a"}]
    script = create_script(server, tokens["admin"], "suffix-job", 'echo "$WHO$SUFFIX"\n', parameters=declared)
    _edit(page, server, script["id"])
    page.get_by_test_id("param-default-1").fill("b")
    _save(page, server, script["id"])
    stored = _parameters(server, tokens["admin"], script["id"])
    assert stored["SUFFIX"]["default"] == ""
    assert stored["WHO"]["default"] == "b"


def test_what_is_typed_while_the_connection_is_down_is_saved(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    # A busy server or browser misses NiceGUI's socket ping (4 s) and the page reconnects: what
    # is typed meanwhile waits in socket.io's buffer and reaches the server after the new
    # socket's handshake (the server drops an event of a client without one), so Save stores it.
    # Checked for a CI run that saved a choice parameter's default as None: not that.
    declared = [{"name": "WHO", "default": "a"}]
    script = create_script(server, tokens["admin"], "offline-job", 'echo "$WHO"\n', parameters=declared)
    _edit(page, server, script["id"])
    page.get_by_test_id("param-description-0").fill("who to greet")
    page.wait_for_function("window.ocDirty === true")  # the server has that edit
    dropped_connection(page, lambda: page.get_by_test_id("param-default-0").fill("b"))
    page.get_by_test_id("save-script").click()
    page.wait_for_url(re.compile(rf"{re.escape(server.url)}/scripts/{script['id']}$"))
    stored = _parameters(server, tokens["admin"], script["id"])
    assert stored["WHO"] == {**stored["WHO"], "default": "b", "description": "who to greet"}


def test_tags_and_change_note_problems_show_under_their_fields(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    script = create_script(server, tokens["admin"], "noted-job", "echo hi\n")
    _edit(page, server, script["id"])
    page.get_by_test_id("change-note").fill("n" * 501)
    page.get_by_test_id("script-tags").fill("a\u202eb")
    page.keyboard.press("Enter")
    page.get_by_test_id("save-script").click()
    field_error(page, "script-tags").get_by_text("U+202E").wait_for()
    field_error(page, "change-note").get_by_text("at most 500 characters").wait_for()
    assert page.locator(".q-notification").count() == 0
    assert page.url == f"{server.url}/scripts/{script['id']}/edit"


def test_an_edit_restored_after_a_conflict_does_not_overwrite_the_other_save(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    # The 409 says "reload it and apply your change again"; the reload restored the tab's draft
    # onto the new version and the next Save replaced the other save without a word.
    script = create_script(server, tokens["admin"], "two-authors", "echo 1\n")
    url = f"{server.url}/api/v1/scripts/{script['id']}"
    _edit(page, server, script["id"])
    type_code(page, "echo 1\necho mine\n")
    page.wait_for_function("window.ocDirty === true")  # the draft has the edit
    theirs = {"content": "echo 1\necho theirs\n", "base_version": 1}
    assert httpx.put(url, json=theirs, headers=tokens["admin"], timeout=30).status_code == 200
    page.get_by_test_id("save-script").click()
    page.locator(".q-notification").get_by_text("your edit started from version 1").wait_for()
    page.reload()
    wait_connected(page)
    page.get_by_test_id("draft-stale").get_by_text("started from version 1").wait_for()
    assert "echo mine" in page.locator('[data-testid="script-editor"] .cm-content').inner_text()
    page.get_by_test_id("save-script").click()
    page.locator(".q-notification").get_by_text("your edit started from version 1").last.wait_for()
    stored = httpx.get(url, headers=tokens["admin"], timeout=30).json()
    assert stored["content"] == "echo 1\necho theirs\n"
    # Kept on purpose, the edit replaces version 2.
    page.get_by_test_id("draft-take-over").click()
    _save(page, server, script["id"])
    stored = httpx.get(url, headers=tokens["admin"], timeout=30).json()
    assert (stored["content"], stored["current_version"]) == ("echo 1\necho mine\n", 3)


def test_an_update_sent_while_an_edit_travels_to_the_server_does_not_undo_it(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    # Field report: `echo 1` replaced by typing two lines was saved as the two lines + `echo 1`.
    # Every update of the editor the server sends (a theme, the live checks' line marks) carried
    # the server's copy of the text; one sent while the typed change was on its way put the old
    # text back in the browser only, and the next change was applied to each copy elsewhere.
    # The typed changes are held between page and server here until the server has sent such an
    # update (Dark mode sets the editor's theme).
    socket = SocketHold(page)
    script = create_script(server, tokens["admin"], "travelling-edit", "echo 1\n")
    _edit(page, server, script["id"])
    socket.hold("sections")  # an editor's change set
    type_code(page, "echo 1\necho mine\n")
    socket.wait_held("echo mine")
    page.get_by_test_id("dark-toggle").click()
    editor = "getElement(document.querySelector('[data-testid=\"script-editor\"]'))"
    page.wait_for_function(f"{editor}.theme === 'githubDark'")
    # NiceGUI applies an update's text after Vue's next tick: wait past it.
    page.evaluate(f"{editor}.$nextTick().then(() => new Promise((done) => setTimeout(done, 0)))")
    assert code(page) == "echo 1\necho mine\n"
    socket.release()
    _save(page, server, script["id"])
    stored = httpx.get(f"{server.url}/api/v1/scripts/{script['id']}", headers=tokens["admin"], timeout=30)
    assert stored.json()["content"] == "echo 1\necho mine\n"


def test_a_text_the_server_sets_still_replaces_the_editor_s_after_a_focus(
    server: LiveServer, page: Any
) -> None:
    # The editor keeps its text over the server's copy (above), but not over a text the server
    # sets: a new script's starter follows its type, also once the editor has had the focus.
    signed_in(page, server, "operator", "/scripts/new")
    page.get_by_test_id("checks-ok").wait_for()
    page.locator('[data-testid="script-editor"] .cm-content').click()
    page.get_by_test_id("script-type").click()
    page.get_by_role("option", name="python", exact=True).click()
    page.wait_for_function(
        "getElement(document.querySelector('[data-testid=\"script-editor\"]'))"
        ".editor.state.doc.toString().startsWith('import os')"
    )
    assert code(page) == STARTER["python"]


def test_a_reload_restores_only_what_this_tab_changed(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    # The draft kept every field as the page first showed it: after a reload (or NiceGUI's
    # reconnect) it put back the old tags and status, and Save undid another user's change.
    script = create_script(server, tokens["admin"], "reviewed-job", "echo 1\n")
    url = f"{server.url}/api/v1/scripts/{script['id']}"
    _edit(page, server, script["id"])
    type_code(page, "echo 1\necho mine\n")
    page.wait_for_function("window.ocDirty === true")
    theirs = {"tags": ["reviewed"], "status": "active"}
    assert httpx.put(url, json=theirs, headers=tokens["admin"], timeout=30).status_code == 200
    page.reload()
    wait_connected(page)
    page.get_by_test_id("draft-restored").wait_for()
    _save(page, server, script["id"])
    stored = httpx.get(url, headers=tokens["admin"], timeout=30).json()
    assert stored["content"] == "echo 1\necho mine\n"
    assert (stored["tags"], stored["status"]) == (["reviewed"], "active")


PASTE_JS = """([selector, text]) => {
    const data = new DataTransfer();
    data.setData("text/plain", text);
    const event = new ClipboardEvent("paste", {clipboardData: data, bubbles: true, cancelable: true});
    document.querySelector(selector).dispatchEvent(event);
}"""


def test_a_paste_too_long_for_the_connection_is_refused_and_saves_stay_true(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Field report: a 1.2 MB paste into the editor never reached the server (one change, one
    NiceGUI message, dropped by the browser over 1 MB); `echo hi` typed above it then reached the
    server's stale copy, and Save stored `echo hi` + the old content, which nobody had seen. The
    paste is now refused on the page and the editor keeps what the server has."""
    script = create_script(server, tokens["admin"], "big-paste", "echo 1\n")
    _edit(page, server, script["id"])
    content = '[data-testid="script-editor"] .cm-content'
    page.locator(content).click()
    page.evaluate(PASTE_JS, [content, "#" * 1_200_000 + "\n"])
    page.get_by_test_id("content-refused").get_by_text("Not pasted: 1.2 MB").wait_for()
    assert page.evaluate(
        "getElement(document.querySelector('[data-testid=\"script-editor\"]')).editor.state.doc.length"
    ) == len("echo 1\n")
    page.keyboard.press("Control+Home")
    page.keyboard.insert_text("echo hi\n")
    _save(page, server, script["id"])
    stored = httpx.get(f"{server.url}/api/v1/scripts/{script['id']}", headers=tokens["admin"]).json()
    assert stored["content"] == "echo hi\necho 1\n"

    # A paste the connection carries still goes in whole (and the size check speaks for it).
    _edit(page, server, script["id"])
    page.locator(content).click()
    page.keyboard.press("Control+End")
    page.evaluate(PASTE_JS, [content, "# " + "y" * 300_000 + "\n"])
    page.get_by_test_id("content-refused").get_by_text("larger than the limit of 256 KiB").wait_for()


def test_no_field_is_reset_by_the_page_that_built_it(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Field report (a CI run, then reproduced under load): a parameter's Default typed right
    after the editor opened went back to its old value, on screen and on the server, and Ctrl+S
    then saved nothing. Fields were given their value after being built, and NiceGUI follows such
    a set with an `updateValue` call that waits for the connection and then puts the built value
    back over whatever was typed meanwhile. No page sends one while it loads."""
    parameters = [{"name": "TARGET", "type": "string", "default": "web", "description": "where"}]
    script = create_script(server, tokens["admin"], "built-values", "echo $TARGET\n", parameters=parameters)
    signed_in(page, server, "admin")
    frames: list[str] = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: frames.append(str(payload))))
    for path in (f"/scripts/{script['id']}/edit", "/profile", "/settings"):
        frames.clear()
        page.goto(server.url + path)
        wait_connected(page)
        page.get_by_role("heading", level=1).wait_for()
        page.wait_for_timeout(1500)  # a page's first tick and its queued calls have arrived by now
        assert not [frame for frame in frames if "updateValue" in frame], path
