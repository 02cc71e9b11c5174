"""What a confirmation asks for is done as the person is when they answer, not as they were when
they clicked: the page's handlers re-check the session and the role after the answer
(`layout.confirmed`). They checked before the question only, so an operator demoted to viewer (or
deactivated, or signed out) while the question was open still deleted a webhook, a "then run"
link, an inventory or a schedule with the answer, or started a Terraform destroy (which viewers
may not), and a demoted admin deleted a notification channel or rule; a person who keeps the
page's socket open (and skips the reload the new role causes) keeps that answer for as long as
the page lives."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.automation.conftest import LOOPBACK_RECEIVERS
from tests.conftest import LiveServer
from tests.ui_journey import API_TIMEOUT, RUN_ENV, api_user, log_in, serving, token, wait_run


@dataclass
class Env:
    server: LiveServer
    admin: dict[str, str]

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = f"{self.server.url}{path}"
        return httpx.request(method, url, headers=self.admin, timeout=API_TIMEOUT, **kwargs)

    def made(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.api("POST", path, json=body)
        assert r.status_code == 201, r.text
        return dict(r.json())


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    settings = {**RUN_ENV, **LOOPBACK_RECEIVERS}  # a channel to 127.0.0.1
    with serving(
        tmp_path_factory, "confirm-recheck", settings, users=(("admin", "admin"),), through_api=True
    ) as s:
        yield Env(s, token(s, "admin"))


@dataclass
class Target:
    """What a case deletes: the page it is listed on, its Delete button, whether it still exists."""

    page: str
    button: str
    exists: Callable[[], bool]


def readable(env: Env, address: str) -> Callable[[], bool]:
    """Whether the API still reads the object at `address`."""
    return lambda: env.api("GET", address).status_code == 200


def _script(env: Env) -> int:
    body = {
        "name": f"s-{secrets.token_hex(4)}",
        "script_type": "bash",
        "content": "true\n",
        "status": "active",
    }
    return int(env.made("/api/v1/scripts", body)["id"])


def _webhook(env: Env) -> Target:
    script_id = _script(env)
    hook = env.made(f"/api/v1/scripts/{script_id}/webhooks", {"name": "ci"})
    address = f"/api/v1/scripts/{script_id}/webhooks/{hook['id']}"
    return Target(
        f"/scripts/{script_id}?tab=webhooks", f"webhook-delete-{hook['id']}", readable(env, address)
    )


def _link(env: Env) -> Target:
    source, target = _script(env), _script(env)
    link = env.made(f"/api/v1/scripts/{source}/chains", {"target_script_id": target})
    address = f"/api/v1/scripts/{source}/chains/{link['id']}"
    return Target(f"/scripts/{source}?tab=chains", f"chain-delete-{link['id']}", readable(env, address))


def _inventory(env: Env) -> Target:
    name = f"inv-{secrets.token_hex(4)}"
    inventory = env.made("/api/v1/inventories", {"name": name, "content": "[web]\nweb1\n"})
    address = f"/api/v1/inventories/{inventory['id']}"
    return Target("/inventories", f"inventory-delete-{name}", readable(env, address))


def _schedule(env: Env) -> Target:
    script_id = _script(env)
    schedule = env.made(f"/api/v1/scripts/{script_id}/schedules", {"name": "nightly", "cron": "0 3 * * *"})
    address = f"/api/v1/scripts/{script_id}/schedules/{schedule['id']}"
    return Target(
        f"/scripts/{script_id}?tab=schedules", f"schedule-delete-{schedule['id']}", readable(env, address)
    )


def _new_channel(env: Env) -> dict[str, Any]:
    body = {
        "name": f"hook-{secrets.token_hex(4)}",
        "kind": "webhook",
        "config": {"url": "http://127.0.0.1:9/q"},
    }
    return env.made("/api/v1/notifications/channels", body)


def _channel(env: Env) -> Target:
    channel = _new_channel(env)
    address = f"/api/v1/notifications/channels/{channel['id']}"
    return Target("/notifications", f"channel-delete-{channel['name']}", readable(env, address))


def _rule(env: Env) -> Target:
    rule = env.made(
        "/api/v1/notifications/rules", {"channel_id": _new_channel(env)["id"], "events": ["failure"]}
    )

    def exists() -> bool:  # no route reads one rule: the list holds it
        return rule["id"] in {r["id"] for r in env.api("GET", "/api/v1/notifications/rules").json()["items"]}

    return Target("/notifications", f"rule-delete-{rule['id']}", exists)


# (what is deleted, the role that may delete it, the role it is demoted to)
CASES: dict[str, tuple[Callable[[Env], Target], str, str]] = {
    "webhook": (_webhook, "operator", "viewer"),
    "link": (_link, "operator", "viewer"),
    "inventory": (_inventory, "operator", "viewer"),
    "schedule": (_schedule, "operator", "viewer"),
    "channel": (_channel, "admin", "operator"),
    "rule": (_rule, "admin", "operator"),
}


@pytest.mark.parametrize("kind", list(CASES))
@pytest.mark.parametrize("change", ["demoted", "deactivated"])
def test_a_deletion_confirmed_after_a_demotion_or_deactivation_deletes_nothing(
    page: Any, env: Env, kind: str, change: str
) -> None:
    make, role, lower = CASES[kind]
    target = make(env)
    username = f"{role}-{secrets.token_hex(4)}"
    api_user(env.server, env.admin, username, role)
    (user,) = env.api("GET", "/api/v1/users", params={"search": username}).json()["items"]
    log_in(page, env.server, username, then=target.page)
    page.get_by_test_id(target.button).click()
    page.get_by_test_id("confirm-delete").wait_for()
    # Meanwhile, an admin changes the account: the answer comes before the page's next check.
    edit = {"role": lower} if change == "demoted" else {"is_active": False}
    r = env.api("PUT", f"/api/v1/users/{user['id']}", json=edit)
    assert r.status_code == 200, r.text
    page.get_by_test_id("confirm-delete").click()
    page.get_by_test_id("confirm-delete").wait_for(state="detached")
    # The refusal reaches the page (a notice, or the login page for an ended session) ...
    if change == "demoted":
        page.get_by_text(f"your role ({lower}) may not do this").wait_for()
    else:
        page.wait_for_url(lambda url: "/login" in url)
    # ... and the object is still there.
    assert target.exists()


def _operator(env: Env) -> tuple[str, int]:
    username = f"operator-{secrets.token_hex(4)}"
    api_user(env.server, env.admin, username, "operator")
    (user,) = env.api("GET", "/api/v1/users", params={"search": username}).json()["items"]
    return username, int(user["id"])


@pytest.mark.parametrize("door", ["run form", "run again"])
def test_a_destroy_confirmed_after_a_deactivation_starts_nothing(page: Any, env: Env, door: str) -> None:
    """The Destroy question of the run form and of Run again: answered after the account was
    deactivated, it started the destroy as the operator the page had checked before asking."""
    body = {"name": f"tf-{secrets.token_hex(4)}", "script_type": "terraform", "content": "terraform {}\n"}
    script_id = env.made("/api/v1/scripts", {**body, "status": "active"})["id"]
    username, user_id = _operator(env)
    if door == "run form":
        log_in(page, env.server, username, then=f"/scripts/{script_id}")
        page.get_by_test_id("execute-button").click()
        page.get_by_test_id("terraform-action").get_by_text("Destroy").click()
        page.get_by_test_id("execute-submit").click()
    else:
        run = {"script_id": script_id, "terraform_action": "destroy", "confirm_destroy": True}
        r = env.api("POST", "/api/v1/executions", json=run)
        assert r.status_code == 202, r.text
        wait_run(env.server, env.admin, r.json()["id"])
        log_in(page, env.server, username, then=f"/executions/{r.json()['id']}")
        page.get_by_test_id("run-again").click()
    page.get_by_test_id("confirm-destroy").wait_for()
    runs_before = env.api("GET", "/api/v1/executions", params={"script_id": script_id}).json()["total"]
    r = env.api("PUT", f"/api/v1/users/{user_id}", json={"is_active": False})
    assert r.status_code == 200, r.text
    page.get_by_test_id("confirm-destroy").click()
    page.wait_for_url(lambda url: "/login" in url)
    runs = env.api("GET", "/api/v1/executions", params={"script_id": script_id}).json()
    assert runs["total"] == runs_before, runs
