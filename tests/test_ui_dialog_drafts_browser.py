"""Typing in the automation dialogs survives a reload (drafts kept per browser tab): the schedule,
webhook and "then run" dialogs opened again with what was typed; after a save or a Cancel
nothing comes back. A value shown once (a token, a webhook's URL) leaves the page when its
dialog is closed with Escape, as with Done."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import LiveServer
from tests.ui_journey import (
    SocketHold,
    api,
    create_script,
    journey_server,
    journey_tokens,
    reload_keeping,
    signed_in,
    wait_connected,
)

pytestmark = pytest.mark.browser

server = journey_server("dialog-drafts-ui")
tokens = journey_tokens()

# Whether a NiceGUI element of the page (shown or not) still holds `value` in its props.
HELD_JS = """(value) => Object.values(mounted_app.elements).some(
    (element) => element && element.props && Object.values(element.props).includes(value))"""


def _script(server: LiveServer, admin: dict[str, str], name: str) -> int:
    made = create_script(
        server, admin, name, "#!/bin/bash\necho $WHO\n", parameters={"WHO": "x"}, status="active"
    )
    return int(made["id"])


def test_a_new_schedule_typed_before_a_reload_comes_back_and_is_gone_once_added(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Before, the dialog was gone after a reload, and so was what was typed in it."""
    script_id = _script(server, tokens["admin"], "nightly-report")
    signed_in(page, server, "operator", then=f"/scripts/{script_id}?tab=schedules")
    page.get_by_test_id("schedule-add").click()
    page.get_by_test_id("schedule-name").fill("nightly-backup")
    page.get_by_test_id("schedule-cron").fill("15 2 * * *")
    reload_keeping(page, f"schedule:{script_id}:new", "nightly-backup")
    page.get_by_test_id("draft-restored").wait_for()
    assert page.get_by_test_id("schedule-name").input_value() == "nightly-backup"
    assert page.get_by_test_id("schedule-cron").input_value() == "15 2 * * *"
    page.get_by_test_id("schedule-submit").click()
    page.locator(".q-notification", has_text="Schedule added").wait_for()
    stored = api(server, "GET", f"/scripts/{script_id}/schedules", tokens["admin"])["items"]
    assert [(s["name"], s["cron"]) for s in stored] == [("nightly-backup", "15 2 * * *")]
    page.reload()
    wait_connected(page)
    page.get_by_text("15 2 * * *", exact=False).first.wait_for()
    assert page.get_by_test_id("schedule-name").count() == 0  # saved: no dialog opens again


def test_a_webhook_edit_typed_before_a_reload_comes_back_and_cancel_forgets_it(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    script_id = _script(server, tokens["admin"], "deploy-hooked")
    hook = api(server, "POST", f"/scripts/{script_id}/webhooks", tokens["admin"], json={"name": "github"})
    hook_id = hook["id"]
    signed_in(page, server, "operator", then=f"/scripts/{script_id}?tab=webhooks")
    page.get_by_test_id(f"webhook-edit-{hook_id}").click()
    page.get_by_test_id("webhook-name").fill("github-main")
    reload_keeping(page, f"webhook:{script_id}:{hook_id}", "github-main")
    page.get_by_test_id("draft-restored").wait_for()
    assert page.get_by_test_id("webhook-name").input_value() == "github-main"
    page.get_by_role("button", name="Cancel").click()
    page.get_by_test_id("webhook-name").wait_for(state="detached")
    page.reload()
    wait_connected(page)
    page.get_by_test_id(f"webhook-edit-{hook_id}").wait_for()
    assert page.get_by_test_id("webhook-name").count() == 0  # cancelled: no dialog opens again
    listed = api(server, "GET", f"/scripts/{script_id}/webhooks", tokens["admin"])["items"]
    assert [hook["name"] for hook in listed] == ["github"]


def _add_and_submit(page: Any, server: LiveServer, admin: dict[str, str], script_id: int, name: str) -> None:
    """Submit the one webhook dialog open (typed `name`), then check it was the only one: the
    webhook is saved with that name and no webhook form is left on the page."""
    page.get_by_test_id("webhook-name").fill(name)
    page.get_by_test_id("webhook-submit").click()
    page.get_by_test_id("webhook-url").wait_for()
    stored = api(server, "GET", f"/scripts/{script_id}/webhooks", admin)["items"]
    assert [hook["name"] for hook in stored] == [name]
    assert page.get_by_test_id("webhook-name").count() == 0


# The tab's answer to the page's draft checks (`ocDrafts.pending`, `ocDrafts.left`) held until the
# test calls `ocAnswerDraftChecks()`: a busy server or connection, where the check comes after the person's
# first clicks. (NiceGUI's socket cannot hold the question itself: the browser drops a message
# that arrives after a later one.)
SLOW_DRAFT_CHECK_JS = """
(() => {
  const waiting = [];
  window.ocAnswerDraftChecks = () => { waiting.splice(0).forEach((answer) => answer()); };
  window.ocDraftChecks = [];  // the prefixes and keys asked for
  window.ocDraftAnswers = {};  // what the tab answered to each
  let drafts;
  Object.defineProperty(window, "ocDrafts", {
    configurable: true,
    get() { return drafts; },
    set(value) {  // the page's own calls go through `drafts`; the tab's object is left as it is
      const held = (check) => (asked) => new Promise((resolve) => {
        window.ocDraftChecks.push(asked);
        waiting.push(() => {
          const given = value[check](asked);
          window.ocDraftAnswers[asked] = given;
          resolve(given);
        });
      });
      const checks = {pending: held("pending"), left: held("left")};  // by prefix; the run form's key
      drafts = new Proxy(value, {get: (target, name) => checks[name] || target[name]});
    },
  });
})();
"""


def _typed_before_the_check(
    page: Any, server: LiveServer, path: str, asked: str, form: tuple[str, str]
) -> Any:
    """An operator on `path` presses `form`'s opener and types "typed-first" in its field while the
    tab's answer to the page's draft check `asked` (a prefix or a run form's key) is held; then
    the tab answers. Returns what it answered."""
    opener, field = form
    page.add_init_script(SLOW_DRAFT_CHECK_JS)
    signed_in(page, server, "operator", then=path)
    page.wait_for_function("(asked) => ocDraftChecks.includes(asked)", arg=asked)
    page.get_by_test_id(opener).click()
    page.get_by_test_id(field).fill("typed-first")
    kept = "() => Object.values(sessionStorage).some((draft) => draft.includes('typed-first'))"
    page.wait_for_function(kept)
    page.evaluate("() => ocAnswerDraftChecks()")
    return page.evaluate("(asked) => ocDraftAnswers[asked]", asked)


def test_a_dialog_typed_in_before_the_pages_draft_check_is_not_opened_again_over_itself(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A page asks the tab for a dialog a reload interrupted (`drafts.reopen`). On a busy server
    the tab answered after the person had opened Add webhook and typed in it: it named that
    typing as a draft, and the page opened the dialog a second time over the first (a CI run's
    secret picker then never showed its options). A form of this page is not a draft left by an
    earlier one."""
    script_id = _script(server, tokens["admin"], "hooked-busy")
    path, asked = f"/scripts/{script_id}?tab=webhooks", f"webhook:{script_id}:"
    answer = _typed_before_the_check(page, server, path, asked, ("webhook-add", "webhook-name"))
    assert answer == []
    _add_and_submit(page, server, tokens["admin"], script_id, "typed-first")


def test_a_run_form_typed_in_before_the_pages_draft_check_is_not_opened_again_over_itself(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The same for a script's Execute form (`drafts.reopen_one`, asked by key): opened and typed in
    before the tab answered, it was opened a second time over itself."""
    script_id = _script(server, tokens["admin"], "run-busy")
    path, asked = f"/scripts/{script_id}", f"run:{script_id}"
    assert _typed_before_the_check(page, server, path, asked, ("execute-button", "param-WHO")) is False
    page.get_by_test_id("execute-submit").click()
    page.wait_for_url(f"{server.url}/executions/*")
    page.get_by_test_id("status-announcement").wait_for(state="attached")
    assert page.get_by_test_id("param-WHO").count() == 0
    runs = api(server, "GET", "/executions", tokens["admin"], params={"script_id": script_id})["items"]
    assert [run["parameters"] for run in runs] == [{"WHO": "typed-first"}]


def _reloaded_answer_held(page: Any, server: LiveServer, script_id: int) -> SocketHold:
    """Type "before-reload" into a new webhook's dialog, reload, and hold the reloaded page's
    answers to the server (the draft check's naming that dialog's draft among them)."""
    socket = SocketHold(page)
    signed_in(page, server, "operator", then=f"/scripts/{script_id}?tab=webhooks")
    page.get_by_test_id("webhook-add").click()
    page.get_by_test_id("webhook-name").fill("before-reload")
    socket.hold("javascript_response")
    reload_keeping(page, f"webhook:{script_id}:new", "before-reload")
    socket.wait_held(f"webhook:{script_id}:new")
    return socket


def test_a_dialog_opened_while_the_reloaded_pages_draft_comes_back_is_the_only_one(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """After a reload the tab named the interrupted dialog's draft, but its answer reached a busy
    server after the person had pressed Add webhook again: the page opened a second dialog over
    the one being typed in. None is opened over an open dialog (that one takes the draft)."""
    script_id = _script(server, tokens["admin"], "hooked-reloaded")
    socket = _reloaded_answer_held(page, server, script_id)
    page.get_by_test_id("webhook-add").click()
    page.get_by_test_id("webhook-name").wait_for()
    socket.release()
    page.get_by_test_id("draft-restored").wait_for()  # into the dialog opened
    assert page.get_by_test_id("webhook-name").input_value() == "before-reload"
    _add_and_submit(page, server, tokens["admin"], script_id, "after-reload")


def test_what_is_typed_once_a_restored_draft_shows_is_what_is_saved(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A restore set the field on the server, and NiceGUI followed that with a separate message
    putting the server's value back into the browser's field (`updateValue`), which may reach a
    busy page after the person, seeing the restored draft, typed over it: the typing was replaced
    (on screen and on the server) and the webhook saved as "before-reload". Whatever the server
    sends once the restored draft shows is held here until the person has typed."""
    script_id = _script(server, tokens["admin"], "hooked-typed-over")
    socket = SocketHold(page, toward_page=True)
    signed_in(page, server, "operator", then=f"/scripts/{script_id}?tab=webhooks")
    page.get_by_test_id("webhook-add").click()
    page.get_by_test_id("webhook-name").fill("before-reload")
    socket.hold_after("draft-restored")
    reload_keeping(page, f"webhook:{script_id}:new", "before-reload")
    page.get_by_test_id("draft-restored").wait_for()
    assert page.get_by_test_id("webhook-name").input_value() == "before-reload"
    page.get_by_test_id("webhook-name").fill("after-reload")
    socket.release()
    socket.wait_delivered()
    assert page.get_by_test_id("webhook-name").input_value() == "after-reload"
    page.get_by_test_id("webhook-submit").click()
    page.get_by_test_id("webhook-url").wait_for()
    stored = api(server, "GET", f"/scripts/{script_id}/webhooks", tokens["admin"])["items"]
    assert [hook["name"] for hook in stored] == ["after-reload"]


def test_add_pressed_as_the_reloaded_pages_draft_check_comes_back_opens_one_dialog(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The tab's answer naming the interrupted dialog's draft and the person's click on Add
    webhook reached a busy server together: each opened a dialog while the other's was still
    being built (reading the secrets to offer, between the check and the dialog), one over the
    other. A dialog being opened counts as open: the draft's dialog is the only one."""
    script_id = _script(server, tokens["admin"], "hooked-together")
    socket = _reloaded_answer_held(page, server, script_id)
    socket.hold('["event"')  # and the click, sent right after the answer
    page.get_by_test_id("webhook-add").click()
    socket.wait_held('["event"')
    socket.release()
    page.get_by_test_id("draft-restored").wait_for()
    assert page.get_by_test_id("webhook-name").input_value() == "before-reload"
    _add_and_submit(page, server, tokens["admin"], script_id, "before-reload")


def _run_form_reloaded_check_held(page: Any, script_id: int) -> None:
    """On the script page, type "before-reload" into the run form, reload, and hold the tab's
    answer to the reloaded page's draft check of that form (`ocAnswerDraftChecks()` gives it)."""
    page.get_by_test_id("execute-button").click()
    page.get_by_test_id("param-WHO").fill("before-reload")
    page.add_init_script(SLOW_DRAFT_CHECK_JS)
    reload_keeping(page, f"run:{script_id}", "before-reload")
    page.wait_for_function("(k) => ocDraftChecks.includes(k)", arg=f"run:{script_id}")


def test_add_webhook_pressed_as_the_reloaded_run_forms_draft_check_comes_back_opens_one_dialog(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The same between the Execute form's draft, reopened by the script page, and Add webhook
    pressed as the tab answered: the run form and the webhook dialog opened one over the other."""
    script_id = _script(server, tokens["admin"], "run-and-hook")
    socket = SocketHold(page)
    signed_in(page, server, "operator", then=f"/scripts/{script_id}?tab=webhooks")
    _run_form_reloaded_check_held(page, script_id)
    socket.hold("")  # from here every message to the server waits: the answer, then the click
    page.evaluate("() => ocAnswerDraftChecks()")
    socket.wait_held("javascript_response")
    page.get_by_test_id("webhook-add").click()
    socket.wait_held('["event"')
    socket.release()
    page.get_by_test_id("draft-restored").wait_for()
    assert page.get_by_test_id("param-WHO").input_value() == "before-reload"
    page.get_by_test_id("execute-submit").click()
    page.wait_for_url(f"{server.url}/executions/*")
    page.get_by_test_id("status-announcement").wait_for(state="attached")
    assert page.get_by_test_id("webhook-name").count() == 0


def test_a_then_run_link_typed_before_a_reload_comes_back(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    script_id = _script(server, tokens["admin"], "build-first")
    signed_in(page, server, "operator", then=f"/scripts/{script_id}?tab=chains")
    page.get_by_test_id("chain-add").click()
    page.get_by_test_id("chain-mapping").fill('{"WHO": "/parameters/WHO"}')
    reload_keeping(page, f"chain:{script_id}:new", "/parameters/WHO")
    page.get_by_test_id("draft-restored").wait_for()
    assert page.get_by_test_id("chain-mapping").input_value() == '{"WHO": "/parameters/WHO"}'


def test_a_then_run_links_fixed_values_come_back_after_a_reload(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The fixed values of the script chosen to start were not in the dialog's draft (the
    schedule's and webhook's are): the link came back with its script, its values empty."""
    script_id = _script(server, tokens["admin"], "build-then")
    _script(server, tokens["admin"], "greet-after")
    signed_in(page, server, "operator", then=f"/scripts/{script_id}?tab=chains")
    page.get_by_test_id("chain-add").click()
    page.get_by_test_id("chain-target").click()
    page.get_by_role("option", name="greet-after").click()
    page.get_by_test_id("param-WHO").fill("fixed-who")
    reload_keeping(page, f"chain:{script_id}:new", "fixed-who")
    page.get_by_test_id("draft-restored").wait_for()
    assert page.get_by_test_id("chain-target").input_value() == "greet-after"
    assert page.get_by_test_id("param-WHO").input_value() == "fixed-who"
    page.get_by_test_id("chain-submit").click()
    page.locator(".q-notification", has_text="Link added").wait_for()
    (made,) = api(server, "GET", f"/scripts/{script_id}/chains", tokens["admin"])["items"]
    assert made["parameters"] == {"WHO": "fixed-who"}


def test_a_schedule_begun_on_the_schedules_page_comes_back_there(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Its dialog was not opened again after a reload of /schedules: only the script's own
    Schedules tab, visited later, opened it."""
    script_id = _script(server, tokens["admin"], "listed-report")
    signed_in(page, server, "operator", then="/schedules")
    page.get_by_test_id("schedule-add").click()
    page.get_by_test_id("schedule-script").click()
    page.get_by_role("option", name="listed-report").click()
    page.get_by_test_id("schedule-script-next").click()
    page.get_by_test_id("schedule-name").fill("from-the-list")
    page.wait_for_function(  # a draft holds it (its key is the page's business)
        "(typed) => Object.keys(sessionStorage).some((k) => sessionStorage.getItem(k).includes(typed))",
        arg="from-the-list",
    )
    page.reload()
    wait_connected(page)
    page.get_by_text("Add a schedule to listed-report").wait_for()
    page.get_by_test_id("draft-restored").wait_for()
    assert page.get_by_test_id("schedule-name").input_value() == "from-the-list"
    page.get_by_test_id("schedule-submit").click()
    page.locator(".q-notification", has_text="Schedule added").wait_for()
    (made,) = api(server, "GET", f"/scripts/{script_id}/schedules", tokens["admin"])["items"]
    assert made["name"] == "from-the-list"


def test_a_token_shown_once_leaves_the_page_when_its_dialog_is_closed_with_escape(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """Done emptied the field; Escape closed the dialog with the token still in the page."""
    signed_in(page, server, "viewer", then="/tokens")
    page.get_by_test_id("token-add").click()
    page.get_by_test_id("token-name").fill("laptop")
    page.get_by_test_id("token-submit").click()
    shown = page.get_by_test_id("token-value")
    shown.wait_for()
    page.wait_for_function("() => document.querySelector('[data-testid=token-value]').value !== ''")
    token = shown.input_value()
    assert page.evaluate(HELD_JS, token)
    page.keyboard.press("Escape")
    shown.wait_for(state="hidden")
    page.wait_for_function(f"(value) => !({HELD_JS})(value)", arg=token)


def test_the_run_form_is_not_reopened_over_a_delete_question_opened_before_the_check_came_back(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """After a reload interrupting the run form, the person pressed Delete before the tab's
    answer reached a busy server: the page must not reopen the run form over the "Delete …?"
    question (`widgets.opening_dialog(by_page=True)` asks `open_dialogs`), or the question cannot
    be answered (Cancel under the run form's backdrop). The run form, opened by the person
    afterwards, takes the draft. (Guards the rule: without the open-dialog check it fails.)"""
    script_id = _script(server, tokens["admin"], "run-or-delete")
    signed_in(page, server, "operator", then=f"/scripts/{script_id}")
    _run_form_reloaded_check_held(page, script_id)
    page.get_by_test_id("delete-script").click()
    question = page.get_by_test_id("delete-dialog")
    question.wait_for()
    page.evaluate("() => ocAnswerDraftChecks()")
    assert page.evaluate("(k) => ocDraftAnswers[k]", f"run:{script_id}") is True  # a draft was left
    question.get_by_role("button", name="Cancel").click()
    question.wait_for(state="hidden")
    page.get_by_test_id("execute-button").click()  # the person's own run form takes the draft
    page.get_by_test_id("draft-restored").wait_for()
    assert page.get_by_test_id("param-WHO").input_value() == "before-reload"
    assert page.get_by_test_id("execute-dialog").count() == 1
