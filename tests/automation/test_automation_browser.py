"""Browser journeys of automation against a real `opscraft serve` process: a schedule created in
the UI fires; personal tokens are created (shown once) and revoked."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from opscraft.ui import labels
from tests.automation.conftest import LOOPBACK_RECEIVERS
from tests.conftest import PASSWORD, LiveServer
from tests.cron_times import far_yearly_cron
from tests.ui_journey import RUN_ENV, Tokens, serving, signed_in, token
from tests.waiting import wait_until

pytestmark = pytest.mark.browser


@dataclass
class Env:
    server: LiveServer
    admin: dict[str, str]
    # Bearer headers by user name, each signed in at its first use (`Tokens`: a sign-in is an
    # argon2 check at the server's real cost).
    tokens: Tokens

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.server.url}{path}", headers=self.admin, timeout=30, **kwargs)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    users = (("admin", "admin"), ("second", "operator"))
    # The notification receivers are on 127.0.0.1. The scheduler keeps its default idle time (5 s):
    # polling every half second for the one test that waits for a fire cost the server a second
    # of CPU a minute for the whole module (docs/benchmarks.md, session 51).
    settings = {**RUN_ENV, **LOOPBACK_RECEIVERS}
    with serving(tmp_path_factory, "automation-ui", settings, users=users, through_api=True) as server:
        admin = token(server, "admin")
        yield Env(server, admin, Tokens(server, admin=admin))


def bring_forward(env: Env, schedule_id: int) -> None:
    """Move the schedule's next fire time to the minute that just began, as if the clock had
    reached it (the live server's SQLite file; the scheduler re-reads it within its idle time,
    5 s)."""
    due = datetime.now(UTC).replace(second=0, microsecond=0).replace(tzinfo=None)
    with sqlite3.connect(env.server.data_dir / "opscraft.db", timeout=30) as db:
        db.execute(
            "UPDATE schedules SET next_fire_at = ? WHERE id = ?",
            (due.strftime("%Y-%m-%d %H:%M:%S.%f"), schedule_id),
        )


def test_create_a_schedule_and_see_it_fire(page: Any, env: Env) -> None:
    body = {"name": "tick", "script_type": "python", "status": "active", "content": "print('tick')\n"}
    r = env.api("POST", "/api/v1/scripts", json=body)
    assert r.status_code == 201, r.text
    script_id = r.json()["id"]
    signed_in(page, env.server, "admin", then=f"/scripts/{script_id}")
    page.get_by_test_id("tab-schedules").click()
    page.get_by_test_id("schedule-add").click()
    # A yearly cron expression months away: it never fires by itself during the test (an
    # every-minute one fired a second time on a loaded machine; `0 0 1 1 *` would at UTC's New
    # Year), so the only fire is the one brought forward below.
    page.get_by_test_id("schedule-name").fill("far-yearly")
    page.get_by_test_id("schedule-cron").fill(far_yearly_cron())
    page.get_by_test_id("schedule-submit").click()
    page.get_by_text("far-yearly").wait_for()
    (schedule,) = env.api("GET", f"/api/v1/scripts/{script_id}/schedules").json()["items"]
    assert len(schedule["next_fire_times"]) == 5
    next_shown = page.get_by_test_id(f"schedule-next-{schedule['id']}").inner_text()
    assert next_shown.startswith("Next:") and next_shown.count(",") == 4, next_shown

    bring_forward(env, schedule["id"])
    # The fire is read from the API, then the page must show it: reloading the page every half
    # second while waiting never let a slow machine finish drawing it (a CI failure).
    schedules_url = f"/api/v1/scripts/{script_id}/schedules"
    fired = wait_until(
        lambda: env.api("GET", schedules_url).json()["items"][0]["last_execution_id"],
        "the schedule to fire",
        120,
    )
    page.goto(f"{env.server.url}/schedules")
    last = page.get_by_test_id(f"schedule-last-{schedule['id']}").filter(has_text=f"run #{fired}")
    last.wait_for()
    last.click()
    page.wait_for_url(f"{env.server.url}/executions/*")
    runs = env.api("GET", f"/api/v1/executions?script_id={script_id}").json()
    assert runs["total"] == 1
    assert page.url.endswith(f"/executions/{runs['items'][0]['id']}")


def test_personal_token_shown_once_then_revoked(page: Any, env: Env) -> None:
    signed_in(page, env.server, "admin", then="/tokens")
    page.get_by_test_id("token-add").click()
    page.get_by_test_id("token-name").fill("ci")
    page.get_by_test_id("token-submit").click()
    value = page.get_by_test_id("token-value").input_value()
    assert value.startswith("ocp_")
    me = httpx.get(f"{env.server.url}/api/v1/auth/me", headers={"Authorization": f"Bearer {value}"})
    assert me.status_code == 200 and me.json()["username"] == "admin"
    page.get_by_test_id("token-done").click()
    page.reload()
    page.get_by_test_id("token-add").wait_for()
    assert value not in page.content(), "shown once"
    token_id = env.api("GET", "/api/v1/tokens").json()["items"][0]["id"]
    row = page.get_by_test_id(f"token-{token_id}")
    # The list says from which address the token was last used (docs/automation.md), not only when.
    row.get_by_text("from 127.0.0.1").wait_for()
    # Revoking cannot be undone and breaks whatever uses the token: one stray click did it at once.
    page.get_by_test_id(f"token-revoke-{token_id}").click()
    page.get_by_role("dialog", name="Revoke the token ci?").get_by_role("button", name="Cancel").click()
    page.get_by_test_id("confirm-revoke").wait_for(state="detached")
    me = httpx.get(f"{env.server.url}/api/v1/auth/me", headers={"Authorization": f"Bearer {value}"})
    assert me.status_code == 200, "Cancel keeps the token"
    page.get_by_test_id(f"token-revoke-{token_id}").click()
    page.get_by_test_id("confirm-revoke").click()
    row.get_by_text("revoked", exact=True).wait_for()
    me = httpx.get(f"{env.server.url}/api/v1/auth/me", headers={"Authorization": f"Bearer {value}"})
    assert me.status_code == 401


def test_an_expired_token_can_be_revoked_to_reuse_its_name(page: Any, env: Env) -> None:
    """An expired token keeps its name until it is revoked (a new one is refused it: "revoke the
    old token first"), but the page showed it as "expired" with no Revoke button: a dead end."""
    # Created valid, then expired by its row (as the clock would): an expiry 2 s ahead had passed
    # before the request was served on a loaded machine (422 "must be in the future").
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    created = env.api("POST", "/api/v1/tokens", json={"name": "nightly", "expires_at": tomorrow})
    assert created.status_code == 201, created.text
    token_id = created.json()["id"]
    past = (datetime.now(UTC) - timedelta(seconds=1)).replace(tzinfo=None)
    with sqlite3.connect(env.server.data_dir / "opscraft.db", timeout=30) as db:
        db.execute(
            "UPDATE api_tokens SET expires_at = ? WHERE id = ?",
            (past.strftime("%Y-%m-%d %H:%M:%S.%f"), token_id),
        )
    assert not env.api("GET", "/api/v1/tokens").json()["items"][0]["active"], "the token expired"
    signed_in(page, env.server, "admin", then="/tokens")
    row = page.get_by_test_id(f"token-{token_id}")
    row.get_by_text("expired", exact=True).wait_for()
    page.get_by_test_id(f"token-revoke-{token_id}").click()
    page.get_by_text("frees its name").wait_for()
    page.get_by_test_id("confirm-revoke").click()
    row.get_by_text("revoked", exact=True).wait_for()
    page.get_by_test_id("token-add").click()
    page.get_by_test_id("token-name").fill("nightly")
    page.get_by_test_id("token-submit").click()
    assert page.get_by_test_id("token-value").input_value().startswith("ocp_")


def test_a_demoted_owners_token_says_the_role_it_acts_as(page: Any, env: Env) -> None:
    """A token acts with the lower of its role and its owner's current role: the page said only
    "operator" for the token of an owner demoted to viewer."""
    second = env.tokens["second"]
    created = httpx.post(f"{env.server.url}/api/v1/tokens", json={"name": "deploy-bot"}, headers=second)
    assert created.status_code == 201, created.text
    (second_id,) = [
        u["id"] for u in env.api("GET", "/api/v1/users").json()["items"] if u["username"] == "second"
    ]
    assert env.api("PUT", f"/api/v1/users/{second_id}", json={"role": "viewer"}).status_code == 200
    try:
        signed_in(page, env.server, "admin", then="/tokens")
        page.get_by_test_id("tokens-all").click()
        role = page.get_by_test_id(f"token-role-{created.json()['id']}")
        role.get_by_text("operator (acts as viewer: owner's role now)").wait_for()
    finally:
        assert env.api("PUT", f"/api/v1/users/{second_id}", json={"role": "operator"}).status_code == 200


def test_a_long_token_name_stays_within_a_phone_screen(page: Any, env: Env) -> None:
    """A token's name may be 64 characters without a space, a username 64 too: the tokens page
    was twice as wide as a phone's screen, its Revoke buttons off to the side."""
    created = env.api("POST", "/api/v1/tokens", json={"name": "W" * 64})
    assert created.status_code == 201, created.text
    page.set_viewport_size({"width": 375, "height": 800})
    signed_in(page, env.server, "admin", then="/tokens")
    page.get_by_test_id(f"token-revoke-{created.json()['id']}").wait_for()
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{overflow} px wider than the screen"


# Elements of the page's main part whose text is cut or reaches past the window: the page wider
# than the window, or a box that hides what overflows it (a card) holding more than it shows.
# Scrolling parts (tabs, tables) and text cut with an ellipsis on purpose are not counted.
CUT_TEXT = """() => {
  const out = [], width = window.innerWidth;
  for (const e of document.querySelectorAll('.q-page *')) {
    if (e.closest('.q-tabs, .q-table__middle, .q-field, .q-scrollarea')) continue;
    const style = getComputedStyle(e), box = e.getBoundingClientRect();
    const hides = ['hidden', 'clip'].includes(style.overflowX) && style.textOverflow !== 'ellipsis';
    if ((hides && e.scrollWidth > e.clientWidth + 1) || (box.width > 0 && box.right > width + 1))
      out.push(e.tagName + ' ' + (e.innerText || '').slice(0, 40));
  }
  return out;
}"""


def test_long_automation_settings_wrap_within_a_phone_screen(page: Any, env: Env) -> None:
    """A schedule's cron list, a webhook's or link's mapping (a JSON pointer of up to 1,024
    characters), a channel's recipients, an Ansible host pattern and a script's 128-character
    name hold no space to break at: the Schedules, Notifications and Approvals pages were up to
    2.4 times as wide as a phone's screen, and the script page's cards cut the text off."""
    long_name = "n" * 128
    params = [{"name": "ENV", "type": "string", "default": "x"}]
    ids = []
    for name in (long_name, "wrap-target"):
        body = {"name": name, "script_type": "bash", "content": "echo\n", "parameters": params}
        r = env.api("POST", "/api/v1/scripts", json=body | {"status": "active"})
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    source, target = ids
    cron = ",".join(str(minute) for minute in range(0, 60, 2)) + " 0 1 1 *"
    pointer = "/" + "p" * 900  # a webhook's into the body, a link's into the run's outputs
    mail = {"host": "mail.example.com", "from": "ops@example.com", "to": "a" * 64 + "@example.com"}
    channel = {"name": "wide-mail", "kind": "email", "config": mail}
    made = [
        env.api("POST", f"/api/v1/scripts/{source}/schedules", json={"name": "wide", "cron": cron}),
        env.api(
            "POST", f"/api/v1/scripts/{source}/webhooks", json={"name": "wide", "mapping": {"ENV": pointer}}
        ),
        env.api(
            "POST",
            f"/api/v1/scripts/{source}/chains",
            json={"target_script_id": target, "outcome": "any", "mapping": {"ENV": "/outputs" + pointer}},
        ),
        env.api("POST", "/api/v1/notifications/channels", json=channel),
    ]
    assert [r.status_code for r in made] == [201] * 4, [r.text for r in made]
    playbook = {"script_type": "ansible", "content": "- hosts: all\n  tasks: []\n", "inventory": "web1\n"}
    r = env.api("POST", "/api/v1/scripts", json=playbook | {"name": "wrap-ansible", "status": "active"})
    ansible = r.json()["id"]
    limit = ":".join(f"web{n:03d}" for n in range(70))  # a host pattern: `Ansible: --limit=...`
    schedule = {"name": "wide", "cron": "0 0 1 1 *", "run_options": {"limit": limit}}
    r = env.api("POST", f"/api/v1/scripts/{ansible}/schedules", json=schedule)
    assert r.status_code == 201, r.text
    # a run of the long-named script waiting for approval, then cancelled: both Approvals lists
    env.api("PUT", f"/api/v1/scripts/{source}/approval", json={"required": 1})
    waiting = env.api("POST", "/api/v1/executions", json={"script_id": source}).json()["id"]
    page.set_viewport_size({"width": 390, "height": 800})
    signed_in(page, env.server, "admin", then="/schedules")
    cut = {}
    for path, shown in (
        ("/schedules", "0,2,4,6"),
        ("/notifications", "aaaa"),
        (f"/scripts/{source}?tab=schedules", "0,2,4,6"),
        (f"/scripts/{source}?tab=webhooks", "pppp"),
        (f"/scripts/{source}?tab=chains", "pppp"),
        (f"/scripts/{ansible}?tab=schedules", "web000:web001"),
    ):
        page.goto(f"{env.server.url}{path}")
        page.get_by_text(shown).first.wait_for()
        cut[path] = page.evaluate(CUT_TEXT)
    page.goto(f"{env.server.url}/approvals")
    page.get_by_test_id(f"pending-{waiting}").wait_for()
    cut["/approvals (waiting)"] = page.evaluate(CUT_TEXT)
    assert env.api("POST", f"/api/v1/executions/{waiting}/cancel").status_code == 200
    page.get_by_test_id(f"ended-{waiting}").wait_for()
    cut["/approvals (ended)"] = page.evaluate(CUT_TEXT)
    assert cut == {path: [] for path in cut}, cut


def test_a_run_waits_until_a_second_user_approves(page: Any, env: Env) -> None:
    body = {
        "name": "guarded",
        "script_type": "python",
        "status": "active",
        "content": "print('approved ok')\n",
    }
    script_id = env.api("POST", "/api/v1/scripts", json=body).json()["id"]
    r = env.api("PUT", f"/api/v1/scripts/{script_id}/approval", json={"required": 1})
    assert r.status_code == 200, r.text
    # the admin requests the run in the UI
    signed_in(page, env.server, "admin", then=f"/scripts/{script_id}")
    page.get_by_test_id("execute-button").click()
    page.get_by_test_id("execute-submit").click()
    page.wait_for_url(f"{env.server.url}/executions/*")
    run_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    page.get_by_test_id("approval-panel").wait_for()
    assert page.get_by_test_id(f"approve-{run_id}").count() == 0, "no self-approval"
    time.sleep(2)  # give a wrongly queued run the time to start
    assert env.api("GET", f"/api/v1/executions/{run_id}").json()["status"] == "awaiting_approval"

    # a second user sees the badge, opens the pending list and approves
    page.context.clear_cookies()  # another person, in the same tab
    signed_in(page, env.server, "second")
    page.get_by_test_id("nav-badge-approvals").wait_for()
    assert page.get_by_test_id("nav-badge-approvals").inner_text() == "1"
    page.get_by_test_id("nav-approvals").click()
    page.get_by_test_id(f"pending-{run_id}").wait_for()
    page.get_by_test_id(f"approval-comment-{run_id}").fill("go ahead")
    page.get_by_test_id(f"approve-{run_id}").click()
    page.get_by_test_id("approvals-empty").wait_for()
    final = wait_until(
        lambda: (b := env.api("GET", f"/api/v1/executions/{run_id}").json())["status"] == "success" and b,
        "the approved run did not finish",
    )
    assert final["status"] == "success"
    page.goto(f"{env.server.url}/executions/{run_id}")
    assert "go ahead" in page.get_by_test_id("approval-trail-second").inner_text()


def _waiting_run(
    env: Env, name: str, content: str, *, required: int, requester: str, author: str = "admin"
) -> tuple[int, int]:
    """An active python script `name` written by `author` (who may not approve its runs) that
    needs `required` approvals, and a run of it submitted by `requester`, awaiting approval:
    (script id, run id)."""
    body = {"name": name, "script_type": "python", "status": "active", "content": content}
    made = httpx.post(f"{env.server.url}/api/v1/scripts", json=body, headers=env.tokens[author], timeout=30)
    assert made.status_code == 201, made.text
    script_id = made.json()["id"]
    r = env.api("PUT", f"/api/v1/scripts/{script_id}/approval", json={"required": required})
    assert r.status_code == 200, r.text
    r = httpx.post(
        f"{env.server.url}/api/v1/executions",
        json={"script_id": script_id},
        headers=env.tokens[requester],
        timeout=30,
    )
    assert r.status_code == 202 and r.json()["status"] == "awaiting_approval", r.text
    return script_id, r.json()["id"]


def test_a_run_you_approved_waits_for_the_others_without_your_buttons_or_badge(page: Any, env: Env) -> None:
    """With two approvals required, the first approver's Approve and Reject stayed on the
    Approvals page and the run page (a second click: 409 "already decided") and the navigation
    badge went on counting the run as waiting for them. A script edited while its run waits
    says so: the run executes the version it was requested with, not the one the script page
    shows."""
    body = {"username": "third", "email": "third@example.com", "password": PASSWORD, "role": "operator"}
    assert env.api("POST", "/api/v1/users", json=body).status_code == 201
    script_id, run_id = _waiting_run(
        env, "two-keys", "print('ok')\n", required=2, requester="third", author="third"
    )
    # edited while the run waits: the approver is told which version the run executes
    r = env.api("PUT", f"/api/v1/scripts/{script_id}", json={"content": "print('edited')\n"})
    assert r.status_code == 200 and r.json()["current_version"] == 2, r.text

    signed_in(page, env.server, "second")
    page.get_by_test_id("nav-badge-approvals").filter(has_text="1").wait_for()
    page.get_by_test_id("nav-approvals").click()
    note = page.get_by_test_id(f"approval-note-{run_id}")
    note.wait_for()
    assert "runs version 1, as requested (the script is at version 2 now)" in note.inner_text()
    page.get_by_test_id(f"approve-{run_id}").click()
    own = page.get_by_test_id(f"approval-own-{run_id}")
    own.wait_for()
    assert "You approved this run" in own.inner_text()
    assert page.get_by_test_id(f"approve-{run_id}").count() == 0
    assert page.get_by_test_id(f"reject-{run_id}").count() == 0
    page.goto(f"{env.server.url}/executions/{run_id}")
    page.get_by_test_id(f"approval-own-{run_id}").wait_for()
    assert page.get_by_test_id(f"approve-{run_id}").count() == 0, "the run page too"
    assert page.get_by_test_id("nav-badge-approvals").is_hidden(), "nothing waits for this user"
    second = httpx.get(f"{env.server.url}/api/v1/approvals", headers=env.tokens["second"]).json()["items"]
    (mine,) = [p for p in second if p["execution"]["id"] == run_id]
    assert mine["decided_by_you"] is True and mine["approvals"] == 1
    (theirs,) = [
        p for p in env.api("GET", "/api/v1/approvals").json()["items"] if p["execution"]["id"] == run_id
    ]
    assert theirs["decided_by_you"] is False
    r = env.api("POST", f"/api/v1/executions/{run_id}/approve", json={"comment": ""})
    assert r.status_code == 200 and r.json()["status"] != "awaiting_approval", r.text


def test_a_run_cancelled_while_it_waits_shows_its_request_cancelled(page: Any, env: Env) -> None:
    """The request of a run cancelled while it waited kept no outcome: the run page showed no
    approval panel and the Approvals page nothing. Both now say it was cancelled, by whom."""
    _, run_id = _waiting_run(env, "called-off", "print(1)\n", required=1, requester="second")
    r = env.api("POST", f"/api/v1/executions/{run_id}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled", r.text

    signed_in(page, env.server, "second", then=f"/executions/{run_id}")
    outcome = page.get_by_test_id("approval-outcome")
    outcome.wait_for()
    assert outcome.inner_text().startswith("Cancelled by admin at "), outcome.inner_text()
    assert page.get_by_test_id("cancelled-by").inner_text() == "admin"
    page.goto(f"{env.server.url}/approvals")
    ended = page.get_by_test_id(f"ended-outcome-{run_id}")
    ended.wait_for()
    assert ended.inner_text().startswith("Cancelled by admin at "), ended.inner_text()
    assert page.get_by_test_id(f"pending-{run_id}").count() == 0


def test_a_failing_run_sends_slack_and_email(page: Any, env: Env) -> None:
    from tests.automation.receivers import http_receiver, smtp_receiver

    with http_receiver() as slack, smtp_receiver() as smtp:
        secret = env.api(
            "POST", "/api/v1/secrets", json={"name": "SLACK_HOOK", "value": f"{slack.url}/services/T/B/X"}
        )
        assert secret.status_code == 201, secret.text
        channels = [
            {"name": "team-slack", "kind": "slack", "secret_id": secret.json()["id"]},
            {
                "name": "oncall-mail",
                "kind": "email",
                "config": {
                    "host": smtp.host,
                    "port": smtp.port,
                    "security": "none",
                    "from": "opscraft@example.com",
                    "to": "oncall@example.com",
                },
            },
        ]
        body = {
            "name": "breaks",
            "script_type": "python",
            "status": "active",
            "content": "raise SystemExit('disk full')\n",
        }
        script_id = env.api("POST", "/api/v1/scripts", json=body).json()["id"]
        for channel in channels:
            r = env.api("POST", "/api/v1/notifications/channels", json=channel)
            assert r.status_code == 201, r.text
            rule = {"channel_id": r.json()["id"], "script_id": script_id, "events": ["failure"]}
            assert env.api("POST", "/api/v1/notifications/rules", json=rule).status_code == 201

        signed_in(page, env.server, "admin", then=f"/scripts/{script_id}")
        page.get_by_test_id("execute-button").click()
        page.get_by_test_id("execute-submit").click()
        page.wait_for_url(f"{env.server.url}/executions/*")

        wait_until(lambda: slack.requests, "no Slack message")
        wait_until(lambda: smtp.messages, "no email")
        text = json.loads(slack.requests[0].body)["text"]
        assert slack.requests[0].path == "/services/T/B/X" and "breaks failed" in text
        assert "disk full" in text, "the output excerpt"
        mail = smtp.messages[0]
        assert mail["To"] == "oncall@example.com" and "breaks failed" in mail["Subject"]

        page.goto(f"{env.server.url}/notifications")
        table = page.get_by_test_id("deliveries")
        wait_until(lambda: table.inner_text().count("delivered") >= 2 or page.reload(), "delivery log")
        # each row names its channel (the log had no channel column: two rows, which is which?)
        for name in ("team-slack", "oncall-mail"):
            assert table.get_by_role("row").filter(has_text=name).count() == 1, table.inner_text()


def test_a_failed_delivery_says_when_it_is_tried_again(page: Any, env: Env) -> None:
    """The delivery log showed a failed attempt as `pending` with its error, and neither whether
    nor when it would be sent again."""
    from tests.automation.receivers import http_receiver

    with http_receiver() as hook:
        hook.statuses = [503] * 20
        body = {"name": "breaks-often", "script_type": "python", "status": "active", "content": "1/0\n"}
        script_id = env.api("POST", "/api/v1/scripts", json=body).json()["id"]
        channel = {"name": "flaky-hook", "kind": "webhook", "config": {"url": hook.url}}
        r = env.api("POST", "/api/v1/notifications/channels", json=channel)
        assert r.status_code == 201, r.text
        rule = {"channel_id": r.json()["id"], "script_id": script_id, "events": ["failure"]}
        assert env.api("POST", "/api/v1/notifications/rules", json=rule).status_code == 201
        r = env.api("POST", "/api/v1/executions", json={"script_id": script_id})
        assert r.status_code == 202, r.text
        wait_until(lambda: hook.requests, "no delivery attempt")

        signed_in(page, env.server, "admin", then="/notifications")
        row = page.get_by_test_id("deliveries").get_by_role("row").filter(has_text="flaky-hook")
        row.filter(has_text="answered HTTP 503").wait_for()
        # the next attempt (the second, or a later one on a slow machine: 5 s, 10 s... apart)
        shown = row.inner_text()
        assert re.search(r"attempt [2-8] of 8, \d{4}-\d\d-\d\d \d\d:\d\d UTC", shown), shown


def test_configure_a_then_run_link_and_follow_the_chain(page: Any, env: Env) -> None:
    """A link configured in the UI (a refusal shown under its field first); a run of the first
    script starts the second with a printed output; each run's page links to the other."""
    first = {
        "name": "build-then",
        "script_type": "python",
        "status": "active",
        "content": "print('::set-output name=version::7.1')\n",
    }
    second = {
        "name": "deploy-after",
        "script_type": "python",
        "status": "active",
        "content": "import os\nprint('deploying', os.environ['VERSION'])\n",
        "parameters": [{"name": "VERSION", "type": "string", "required": True}],
    }
    first_id = env.api("POST", "/api/v1/scripts", json=first).json()["id"]
    second_id = env.api("POST", "/api/v1/scripts", json=second).json()["id"]
    signed_in(page, env.server, "admin", then=f"/scripts/{first_id}")
    page.get_by_test_id("tab-chains").click()
    page.get_by_test_id("chains-empty").wait_for()
    page.get_by_test_id("chain-add").click()
    page.get_by_test_id("chain-target").click()
    page.get_by_role("option", name="deploy-after").click()
    page.get_by_test_id("chain-mapping").fill('{"NOPE": "/outputs/version"}')
    page.get_by_test_id("chain-submit").click()
    field = page.locator(".q-field", has=page.get_by_test_id("chain-mapping"))
    field.get_by_text("unknown parameter").wait_for()
    page.get_by_test_id("chain-mapping").fill('{"VERSION": "/outputs/version"}')
    page.get_by_test_id("chain-submit").click()
    (link,) = wait_until(
        lambda: env.api("GET", f"/api/v1/scripts/{first_id}/chains").json()["items"], "no link saved"
    )
    assert link["target_script_id"] == second_id and link["mapping"] == {"VERSION": "/outputs/version"}
    page.get_by_test_id(f"chain-target-{link['id']}").wait_for()

    page.get_by_test_id("execute-button").click()
    page.get_by_test_id("execute-submit").click()
    page.wait_for_url(f"{env.server.url}/executions/*")
    run_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    started = page.get_by_test_id("chain-panel").locator("[data-testid^=chain-started-]")
    started.wait_for(timeout=60_000)
    chained_id = int(str(started.get_attribute("data-testid")).rsplit("-", 1)[1])
    started.click()
    page.wait_for_url(f"{env.server.url}/executions/{chained_id}")
    assert page.get_by_test_id("chain-started-by").inner_text() == f"run #{run_id}"
    assert page.get_by_test_id("param-value-VERSION").inner_text() == "7.1"
    final = wait_until(
        lambda: (b := env.api("GET", f"/api/v1/executions/{chained_id}").json())["status"] == "success" and b,
        "the chained run did not finish",
    )
    assert final["trigger"] == "chain" and final["trigger_ref"] == f"execution:{run_id}"


def choose(page: Any, testid: str, option: str) -> None:
    """Pick `option` in an empty select (its field is what takes the click)."""
    page.locator(".q-field", has=page.get_by_test_id(testid)).click()
    page.get_by_role("option", name=option, exact=True).click()


def test_a_disabled_channel_or_rule_says_so_and_a_channel_is_switched_back_on(page: Any, env: Env) -> None:
    """A channel or rule disabled through the API (`enabled: false`) was listed like one that
    sends: nothing on the page said its events went nowhere, and nothing there turned it on."""
    hook = {"name": "quiet-hook", "kind": "webhook", "config": {"url": "http://127.0.0.1:9/q"}}
    r = env.api("POST", "/api/v1/notifications/channels", json=hook)
    assert r.status_code == 201, r.text
    channel_id = r.json()["id"]
    for events, enabled in ((["success"], True), (["failure"], False)):
        rule = {"channel_id": channel_id, "events": events, "enabled": enabled}
        assert env.api("POST", "/api/v1/notifications/rules", json=rule).status_code == 201
    r = env.api("PUT", f"/api/v1/notifications/channels/{channel_id}", json={"enabled": False})
    assert r.status_code == 200, r.text

    signed_in(page, env.server, "admin", then="/notifications")
    page.get_by_test_id("channel-disabled-quiet-hook").wait_for()
    rules = page.locator("[data-testid^=rule-]")
    rules.filter(has_text="of every script → quiet-hook (disabled: nothing is sent)").wait_for()
    rules.filter(has_text="→ quiet-hook (its channel is disabled: nothing is sent)").wait_for()

    page.get_by_test_id("channel-turn-quiet-hook").click()
    page.get_by_test_id("channel-disabled-quiet-hook").wait_for(state="detached")
    stored = env.api("GET", f"/api/v1/notifications/channels/{channel_id}").json()
    assert stored["enabled"] is True and stored["config"]["url"] == "http://127.0.0.1:9/…", stored
    page.get_by_text("its channel is disabled").wait_for(state="detached")
    rules.filter(has_text="(disabled: nothing is sent)").wait_for()  # the rule itself still is
    page.get_by_test_id("channel-turn-quiet-hook").click()
    page.get_by_test_id("channel-disabled-quiet-hook").wait_for()
    assert env.api("GET", f"/api/v1/notifications/channels/{channel_id}").json()["enabled"] is False


def _rule_enabled(env: Env, rule_id: int) -> bool:
    rules = env.api("GET", "/api/v1/notifications/rules", params={"limit": 500}).json()["items"]
    return bool(next(r for r in rules if r["id"] == rule_id)["enabled"])


def test_a_rule_is_switched_off_and_on_from_its_row(page: Any, env: Env) -> None:
    """A rule could not be switched: the page had no button, the API no `PUT`; one had to delete
    it and add it again. Its row's Disable / Enable sends only that switch."""
    hook = {"name": "switch-hook", "kind": "webhook", "config": {"url": "http://127.0.0.1:9/s"}}
    r = env.api("POST", "/api/v1/notifications/channels", json=hook)
    assert r.status_code == 201, r.text
    rule = {"channel_id": r.json()["id"], "events": ["recovery"]}
    r = env.api("POST", "/api/v1/notifications/rules", json=rule)
    assert r.status_code == 201, r.text
    rule_id = r.json()["id"]

    signed_in(page, env.server, "admin", then="/notifications")
    row, turn = page.get_by_test_id(f"rule-{rule_id}"), page.get_by_test_id(f"rule-turn-{rule_id}")
    turn.filter(has_text="Disable").click()
    row.filter(has_text="→ switch-hook (disabled: nothing is sent)").wait_for()
    turn.filter(has_text="Enable").wait_for()
    assert _rule_enabled(env, rule_id) is False
    turn.click()
    row.filter(has_text="(disabled: nothing is sent)").wait_for(state="detached")
    turn.filter(has_text="Disable").wait_for()
    assert _rule_enabled(env, rule_id) is True


def test_a_notification_rule_and_a_webhook_name_their_script_and_secret(page: Any, env: Env) -> None:
    """Shared objects are chosen and shown by name, not typed in or shown as ids."""
    body = {"name": "nightly-report", "script_type": "bash", "content": "echo hi\n", "status": "active"}
    r = env.api("POST", "/api/v1/scripts", json=body)
    assert r.status_code == 201, r.text
    script_id = r.json()["id"]
    hook = {"name": "ops-hook", "kind": "webhook", "config": {"url": "http://127.0.0.1:9/hook"}}
    assert env.api("POST", "/api/v1/notifications/channels", json=hook).status_code == 201
    r = env.api("POST", "/api/v1/secrets", json={"name": "HOOK_SIGNING_KEY", "value": "k" * 32})
    assert r.status_code == 201, r.text
    secret_id = r.json()["id"]

    signed_in(page, env.server, "admin", then="/notifications")
    page.get_by_test_id("rule-add").click()
    choose(page, "rule-channel", "ops-hook")
    choose(page, "rule-script", "nightly-report")
    page.get_by_test_id("rule-submit").click()
    page.locator("[data-testid^=rule-]").filter(has_text="of script nightly-report → ops-hook").wait_for()

    page.goto(f"{env.server.url}/scripts/{script_id}?tab=webhooks")
    page.get_by_test_id("webhook-add").click()
    page.get_by_test_id("webhook-name").fill("signed-hook")
    choose(page, "webhook-secret", "HOOK_SIGNING_KEY")
    # GitHub's form of the signature: the only form was OpsCraft's, which GitHub cannot send.
    choose(page, "webhook-signature-scheme", labels.SIGNATURE_SCHEME["github"])
    page.get_by_test_id("webhook-submit").click()
    (created,) = wait_until(
        lambda: env.api("GET", f"/api/v1/scripts/{script_id}/webhooks").json()["items"], "no webhook"
    )
    assert created["secret_id"] == secret_id and created["signature_scheme"] == "github"
    page.get_by_test_id(f"webhook-{created['id']}").get_by_text("signed (github)").wait_for()
    # The URL shown once is one a sender can be given: without OPSCRAFT_PUBLIC_URL it was a path.
    shown = wait_until(lambda: page.get_by_test_id("webhook-url").input_value(), "no webhook URL shown")
    assert shown.startswith(f"{env.server.url}/api/v1/hooks/{created['id']}/och_"), shown


def field_message(page: Any, testid: str, expected: str = "") -> str:
    """The message under the input `testid` once it holds `expected` (any message when empty),
    in lower case; AssertionError when it does not come. Waited for: the form's previous message
    may still be shown, its removal (the value changed) on its way from the server. The last of
    the field's messages: while Quasar animates a change (the limit said under the field giving
    way to an error: `widgets.says_limit`) the one leaving is still there, before it."""
    field = page.get_by_test_id(testid).locator("xpath=ancestor::label[contains(@class, 'q-field')]")
    messages = field.locator(".q-field__messages").last

    def shown() -> str:
        text = messages.inner_text().strip().lower()
        return text if text and expected.lower() in text else ""

    return str(wait_until(shown, f"{expected!r} under {testid}"))


def test_automation_forms_put_each_problem_under_its_field(page: Any, env: Env) -> None:
    """A schedule, a webhook, a personal token and a notification channel: a refused name, cron,
    mapping or URL (one that is not http(s), or at an address OPSCRAFT_NOTIFY_NETWORKS refuses),
    or a name taken in another case, is said under that input (not only in a passing
    notification); nothing is saved."""
    body = {"name": "forms", "script_type": "bash", "status": "active", "content": "echo hi\n"}
    r = env.api("POST", "/api/v1/scripts", json=body)
    assert r.status_code == 201, r.text
    script_id = r.json()["id"]
    taken = {
        f"/api/v1/scripts/{script_id}/schedules": {"name": "nightly", "cron": "0 3 * * *"},
        f"/api/v1/scripts/{script_id}/webhooks": {"name": "push"},
        "/api/v1/tokens": {"name": "deploy"},
        "/api/v1/notifications/channels": {
            "name": "alerts",
            "kind": "webhook",
            "config": {"url": "https://example.com/hook"},
        },
    }
    for url, existing in taken.items():
        assert env.api("POST", url, json=existing).status_code == 201
    signed_in(page, env.server, "admin", then=f"/scripts/{script_id}")
    page.get_by_test_id("tab-schedules").click()
    page.get_by_test_id("schedule-add").click()
    page.get_by_test_id("schedule-name").fill("   ")
    page.get_by_test_id("schedule-submit").click()
    field_message(page, "schedule-name", "must not be empty or only spaces")
    page.get_by_test_id("schedule-name").fill("nightly")
    page.get_by_test_id("schedule-cron").fill("61 * * * *")
    page.get_by_test_id("schedule-submit").click()
    field_message(page, "schedule-cron", "minute field '61': 61 is out of range, use 0-59")
    page.get_by_test_id("schedule-cron").fill("0 3 * * *")
    page.get_by_test_id("schedule-name").fill("NIGHTLY")
    page.get_by_test_id("schedule-submit").click()
    field_message(page, "schedule-name", "already has a schedule with this name")
    page.keyboard.press("Escape")

    page.get_by_test_id("tab-webhooks").click()
    page.get_by_test_id("webhook-add").click()
    page.get_by_test_id("webhook-name").fill("on\tpush")
    page.get_by_test_id("webhook-submit").click()
    field_message(page, "webhook-name", "control characters")
    page.get_by_test_id("webhook-name").fill("Push")
    page.get_by_test_id("webhook-submit").click()
    field_message(page, "webhook-name", "already has a webhook with this name")
    page.keyboard.press("Escape")

    page.goto(f"{env.server.url}/tokens")
    page.get_by_test_id("token-add").click()
    page.get_by_test_id("token-name").fill(" ")
    page.get_by_test_id("token-submit").click()
    field_message(page, "token-name", "must not be empty or only spaces")
    page.get_by_test_id("token-name").fill("Deploy")
    page.get_by_test_id("token-submit").click()
    field_message(page, "token-name", "you already have a token with this name")
    page.keyboard.press("Escape")

    page.goto(f"{env.server.url}/notifications")
    page.get_by_test_id("channel-add").click()
    page.get_by_test_id("channel-name").fill("ops hook")
    page.get_by_test_id("channel-kind").click()
    page.get_by_role("option", name=labels.CHANNEL_KIND["webhook"], exact=True).click()
    page.get_by_test_id("channel-url").fill("ftp://example.com/x")
    page.get_by_test_id("channel-submit").click()
    field_message(page, "channel-url")
    # a cloud's metadata address, spelt in hex: refused when saved, not at the first message
    page.get_by_test_id("channel-url").fill("http://0xa9fea9fe/latest/meta-data/")
    page.get_by_test_id("channel-submit").click()
    said = field_message(page, "channel-url", "0xa9fea9fe (169.254.169.254): a link-local address")
    # what this server allows, in words: the setting's name is for whoever runs the server (the API's detail)
    assert "this server allows: public, loopback, private" in said and "opscraft_" not in said, said
    page.get_by_test_id("channel-url").fill("https://example.com/other")
    page.get_by_test_id("channel-name").fill("ALERTS")
    page.get_by_test_id("channel-submit").click()
    field_message(page, "channel-name", "a channel with this name already exists")
    page.get_by_test_id("channel-kind").click()
    page.get_by_role("option", name=labels.CHANNEL_KIND["email"], exact=True).click()
    page.get_by_test_id("channel-host").fill("[::ffff:169.254.169.254]")
    page.get_by_test_id("channel-submit").click()
    field_message(page, "channel-host", "a link-local address (it stands for 169.254.169.254)")
    for url, existing in taken.items():
        names = [item["name"] for item in env.api("GET", url).json()["items"]]
        assert [n for n in names if n.lower() == existing["name"]] == [existing["name"]], (url, names)
    channels = env.api("GET", "/api/v1/notifications/channels").json()["items"]
    assert "ops hook" not in [c["name"] for c in channels]


def test_webhook_link_and_schedule_forms_show_every_problem_at_once(page: Any, env: Env) -> None:
    """One submit of a webhook, "then run" link or schedule form with a bad name (or no target)
    and a bad mapping or parameter puts each problem under its own field (one round, not the
    name first and the mapping after it is fixed); nothing is saved."""
    body = {
        "name": "one-round",
        "script_type": "bash",
        "status": "active",
        "content": 'echo "$N"\n',
        "parameters": [{"name": "N", "type": "integer", "default": 1}],
    }
    r = env.api("POST", "/api/v1/scripts", json=body)
    assert r.status_code == 201, r.text
    script_id = r.json()["id"]
    signed_in(page, env.server, "admin", then=f"/scripts/{script_id}?tab=webhooks")
    page.get_by_test_id("webhook-add").click()
    page.get_by_test_id("webhook-name").fill("on\tpush")
    page.get_by_test_id("webhook-mapping").fill('{"NOPE": "/ref"}')
    page.get_by_test_id("param-N").fill("abc")
    page.get_by_test_id("webhook-submit").click()
    field_message(page, "webhook-name", "control characters")
    field_message(page, "webhook-mapping", "nope: unknown parameter")
    field_message(page, "param-N", "must be an integer")
    page.keyboard.press("Escape")
    page.get_by_test_id("webhook-name").wait_for(state="hidden")  # closed before the next tab

    page.get_by_test_id("tab-chains").click()
    page.get_by_test_id("chain-add").click()
    page.get_by_test_id("chain-mapping").fill("{not json")
    page.get_by_test_id("chain-submit").click()
    field_message(page, "chain-target", "choose a script to start")
    field_message(page, "chain-mapping", "must be a json object")
    page.keyboard.press("Escape")
    page.get_by_test_id("chain-mapping").wait_for(state="hidden")

    page.get_by_test_id("tab-schedules").click()
    page.get_by_test_id("schedule-add").click()
    page.get_by_test_id("schedule-name").fill("   ")
    page.get_by_test_id("schedule-cron").fill("61 * * * *")
    page.get_by_test_id("param-N").fill("1.5")
    page.get_by_test_id("schedule-submit").click()
    field_message(page, "schedule-name", "must not be empty or only spaces")
    field_message(page, "schedule-cron", "minute field '61'")
    field_message(page, "param-N", "must be an integer")
    for kind in ("webhooks", "chains", "schedules"):
        assert env.api("GET", f"/api/v1/scripts/{script_id}/{kind}").json()["items"] == [], kind


def test_a_required_parameter_left_out_is_said_under_the_fixed_parameters(page: Any, env: Env) -> None:
    """A webhook or "then run" link that neither maps nor gives a required parameter was saved,
    and every call or chained run then failed "is required". The dialog says it under the
    parameter's field with what to do, for a
    parameter named like one of the form's inputs (`name`) too; mapped, it saves."""
    body = {
        "name": "needs-both",
        "script_type": "bash",
        "status": "active",
        "content": 'echo "$BRANCH $name"\n',
        "parameters": [
            {"name": "BRANCH", "type": "string", "required": True},
            {"name": "name", "type": "string", "required": True},
        ],
    }
    r = env.api("POST", "/api/v1/scripts", json=body)
    assert r.status_code == 201, r.text
    script_id = r.json()["id"]
    source = {"name": "before-needs-both", "script_type": "bash", "status": "active", "content": "true\n"}
    source_id = env.api("POST", "/api/v1/scripts", json=source).json()["id"]
    signed_in(page, env.server, "admin", then=f"/scripts/{script_id}?tab=webhooks")
    page.get_by_test_id("webhook-add").click()
    page.get_by_test_id("webhook-name").fill("push")
    page.get_by_test_id("webhook-mapping").fill('{"BRANCH": "/ref"}')
    page.get_by_test_id("webhook-submit").click()
    said = field_message(page, "param-name", "is required")  # not under the webhook's Name
    assert said == "is required: map it from the request body or give it a fixed value", said
    page.get_by_test_id("param-name").fill("x")
    page.get_by_test_id("webhook-submit").click()
    page.get_by_test_id("webhook-url").wait_for()
    (hook,) = env.api("GET", f"/api/v1/scripts/{script_id}/webhooks").json()["items"]
    assert hook["mapping"] == {"BRANCH": "/ref"} and hook["parameters"] == {"name": "x"}, hook

    page.goto(f"{env.server.url}/scripts/{source_id}?tab=chains")
    page.get_by_test_id("chain-add").click()
    page.get_by_test_id("chain-target").click()
    page.get_by_role("option", name="needs-both").click()
    page.get_by_test_id("param-BRANCH").fill("main")  # the fields of the script chosen to start
    page.get_by_test_id("chain-submit").click()
    said = field_message(page, "param-name", "is required")
    assert said == "is required: map it from the source run or give it a fixed value", said
    assert env.api("GET", f"/api/v1/scripts/{source_id}/chains").json()["items"] == []


def test_pausing_a_schedule_keeps_what_another_tab_saved_since(page: Any, env: Env) -> None:
    """The page was opened before the schedule's cron, zone and parameters changed (another tab,
    the API); Pause then changes only `enabled`: it used to send the page's old copy of every
    field back and silently undo that change."""
    body = {"name": "paused-keeps", "script_type": "bash", "status": "active", "content": "echo $N\n"}
    r = env.api("POST", "/api/v1/scripts", json=body | {"parameters": {"N": "a"}})
    assert r.status_code == 201, r.text
    script_id = r.json()["id"]
    url = f"/api/v1/scripts/{script_id}/schedules"
    r = env.api("POST", url, json={"name": "yearly", "cron": "0 0 1 1 *", "parameters": {"N": "old"}})
    assert r.status_code == 201, r.text
    schedule_id = r.json()["id"]
    signed_in(page, env.server, "admin", then=f"/scripts/{script_id}?tab=schedules")
    toggle = page.get_by_test_id(f"schedule-toggle-{schedule_id}")
    toggle.filter(has_text="Pause").wait_for()
    newer = {"cron": "30 2 1 1 *", "timezone": "Europe/Paris", "parameters": {"N": "new"}}
    r = env.api("PUT", f"{url}/{schedule_id}", json=newer)
    assert r.status_code == 200, r.text
    toggle.click()
    page.locator(".q-notification", has_text="Saved").wait_for()
    (stored,) = env.api("GET", url).json()["items"]
    assert stored["enabled"] is False
    assert {k: stored[k] for k in newer} == newer


def test_the_tokens_page_pages_as_the_api_does(page: Any, env: Env) -> None:
    """`GET /api/v1/tokens` pages (`{items, total, skip, limit}`) and the page with it: 20 tokens a
    page, newest first, the total said, a pager to the older ones (it listed every token at once)."""
    second = env.tokens["second"]
    for n in range(25):
        made = httpx.post(f"{env.server.url}/api/v1/tokens", json={"name": f"page-{n:02}"}, headers=second)
        assert made.status_code == 201, made.text
    listed = httpx.get(f"{env.server.url}/api/v1/tokens?limit=500", headers=second).json()
    total = listed["total"]
    assert total >= 25 and listed["items"][0]["name"] == "page-24"
    signed_in(page, env.server, "second", then="/tokens")
    page.get_by_test_id("tokens-summary").get_by_text(f"{total} tokens", exact=True).wait_for()
    revoke_buttons = page.locator("[data-testid^=token-revoke-]")
    assert revoke_buttons.count() == 20
    page.get_by_test_id(f"token-{listed['items'][0]['id']}").wait_for()
    page.get_by_test_id("tokens-pager").get_by_role("button", name="2", exact=True).click()
    oldest = next(t for t in listed["items"] if t["name"] == "page-00")
    page.get_by_test_id(f"token-{oldest['id']}").wait_for()
    assert page.locator("[data-testid^=token-revoke-]").count() == min(total - 20, 20)


def test_channels_and_schedules_stored_before_their_rules_still_show(page: Any, env: Env) -> None:
    """An email channel saved before `config.host` had to be the host alone (`user:pass@host`)
    and a schedule whose stored cron croniter cannot read: the notifications page lists the
    channel with its host, never the password, and the schedules page shows the schedule and why
    it does not fire (both pages failed to build while any list held such a row)."""
    body = {"name": "legacy-target", "script_type": "bash", "content": "true\n", "status": "active"}
    script_id = env.api("POST", "/api/v1/scripts", json=body).json()["id"]
    daily = {"name": "legacy", "cron": "0 3 * * *"}
    r = env.api("POST", f"/api/v1/scripts/{script_id}/schedules", json=daily)
    assert r.status_code == 201, r.text
    mail = {"name": "legacy-mail", "kind": "email", "config": {"host": "smtp.example", "to": "a@b.io"}}
    mail["config"].update({"port": 2525, "security": "none", "from": "ops@b.io"})
    r = env.api("POST", "/api/v1/notifications/channels", json=mail)
    assert r.status_code == 201, r.text
    with sqlite3.connect(env.server.data_dir / "opscraft.db", timeout=30) as db:  # as stored before
        db.execute("UPDATE schedules SET cron = '61 * * * *' WHERE script_id = ?", (script_id,))
        db.execute(
            "UPDATE notification_channels SET config = json_set(config, '$.host', ?) WHERE name = ?",
            ("ops:Pa55word@smtp.example", "legacy-mail"),
        )
    signed_in(page, env.server, "admin", then="/notifications")
    row = page.get_by_test_id("channel-legacy-mail")
    row.filter(has_text="smtp.example:2525").wait_for()
    assert "Pa55word" not in page.content()
    page.goto(f"{env.server.url}/schedules")
    page.get_by_text("not fired: cron: minute field '61'").wait_for()


def test_rows_whose_json_settings_are_stored_in_another_shape_still_show(page: Any, env: Env) -> None:
    """A webhook whose stored mapping is a list, a link whose fixed parameters are text, a
    notification channel whose config is a list and a rule whose events are text (as an older
    version or a manual edit leaves them): each page lists the row saying what was stored (the
    pages failed to build while any list held one); the webhook's form shows the unreadable
    mapping's box empty and stores what is typed there, and the webhook is deleted from its row.
    A script whose tags are text says so in the scripts list."""
    body = {"name": "shapes", "script_type": "bash", "content": "true\n", "status": "active"}
    script_id = env.api("POST", "/api/v1/scripts", json=body).json()["id"]
    hook = env.api("POST", f"/api/v1/scripts/{script_id}/webhooks", json={"name": "odd-hook"}).json()
    body["name"] = "shapes-next"
    target_id = env.api("POST", "/api/v1/scripts", json=body).json()["id"]
    link = env.api("POST", f"/api/v1/scripts/{script_id}/chains", json={"target_script_id": target_id})
    assert link.status_code == 201, link.text
    web = {"name": "odd-channel", "kind": "webhook", "config": {"url": "https://hooks.example.com/a"}}
    channel = env.api("POST", "/api/v1/notifications/channels", json=web).json()
    rule = env.api(
        "POST", "/api/v1/notifications/rules", json={"channel_id": channel["id"], "events": ["failure"]}
    )
    assert rule.status_code == 201, rule.text
    with sqlite3.connect(env.server.data_dir / "opscraft.db", timeout=30) as db:  # as stored before
        db.execute("UPDATE webhook_triggers SET mapping = '[1, 2]' WHERE id = ?", (hook["id"],))
        db.execute("UPDATE chain_links SET parameters = '\"x\"' WHERE id = ?", (link.json()["id"],))
        db.execute("UPDATE notification_channels SET config = '[\"a\"]' WHERE id = ?", (channel["id"],))
        db.execute("UPDATE notification_rules SET events = '\"failure\"' WHERE id = ?", (rule.json()["id"],))
        db.execute("UPDATE scripts SET tags = '\"a,b\"' WHERE id = ?", (target_id,))
    # The scripts list says it under the script's name (it listed the script as if it had no tags).
    signed_in(page, env.server, "admin", then="/scripts")
    page.get_by_test_id("script-row-stored-shapes-next").get_by_text(
        "tags: stored as text ('a,b')", exact=False
    ).wait_for()
    page.goto(f"{env.server.url}/notifications")
    shown = page.get_by_test_id("channel-stored-odd-channel")
    shown.get_by_text("config: stored as a list, not an object", exact=False).wait_for()
    page.get_by_test_id(f"rule-{rule.json()['id']}").get_by_text(
        "nothing sent, events: stored as text ('failure')", exact=False
    ).wait_for()
    page.goto(f"{env.server.url}/scripts/{script_id}")
    page.get_by_test_id("tab-chains").click()
    page.get_by_test_id(f"chain-stored-{link.json()['id']}").get_by_text(
        "parameters: stored as text ('x')", exact=False
    ).wait_for()
    page.get_by_test_id("tab-webhooks").click()
    page.get_by_test_id(f"webhook-stored-{hook['id']}").get_by_text(
        "mapping: stored as a list ([1, 2])", exact=False
    ).wait_for()
    # Its form shows the mapping box empty (not the "{}" it reads as), and a save stores what the
    # form shows: the row's note goes
    page.get_by_test_id(f"webhook-edit-{hook['id']}").click()
    assert page.get_by_test_id("webhook-mapping").input_value() == ""
    page.get_by_test_id("webhook-mapping").fill("{}")
    page.get_by_test_id("webhook-submit").click()
    page.get_by_test_id(f"webhook-stored-{hook['id']}").wait_for(state="detached")
    saved = env.api("GET", f"/api/v1/scripts/{script_id}/webhooks/{hook['id']}").json()
    assert (saved["mapping"], saved["stored_problem"]) == ({}, None), saved
    page.get_by_test_id(f"webhook-delete-{hook['id']}").click()
    page.get_by_test_id("confirm-delete").click()
    page.get_by_test_id(f"webhook-{hook['id']}").wait_for(state="detached")


def test_a_deleted_scripts_schedule_is_shown_and_removed_on_the_schedules_page(page: Any, env: Env) -> None:
    """A script deleted with a schedule: the Schedules page lists the (paused) schedule saying its
    script was deleted, with a Delete button that removes it (the page showed nothing of it while
    `GET /api/v1/schedules` hid it too, so it could be removed only by its id through the API)."""
    body = {"name": "gone-soon", "script_type": "bash", "content": "true\n", "status": "active"}
    script_id = env.api("POST", "/api/v1/scripts", json=body).json()["id"]
    url = f"/api/v1/scripts/{script_id}/schedules"
    r = env.api("POST", url, json={"name": "orphan-nightly", "cron": "0 3 * * *"})
    assert r.status_code == 201, r.text
    schedule_id = r.json()["id"]
    assert env.api("DELETE", f"/api/v1/scripts/{script_id}").status_code == 204
    (listed,) = [s for s in env.api("GET", "/api/v1/schedules").json()["items"] if s["id"] == schedule_id]
    assert listed["script_deleted"] is True and listed["paused_reason"] == "paused: its script was deleted"
    signed_in(page, env.server, "admin", then="/schedules")
    row = page.get_by_test_id(f"schedule-{schedule_id}")
    row.filter(has_text="orphan-nightly").filter(has_text="gone-soon (script deleted)").wait_for()
    assert row.get_by_text("paused: its script was deleted").count() == 1
    assert row.get_by_test_id(f"schedule-edit-{schedule_id}").count() == 0  # nothing to edit it into
    page.get_by_test_id(f"schedule-delete-{schedule_id}").click()
    page.get_by_test_id("confirm-delete").click()
    row.wait_for(state="detached")
    assert all(s["id"] != schedule_id for s in env.api("GET", "/api/v1/schedules").json()["items"])
