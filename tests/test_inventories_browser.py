"""Browser journey of shared inventories against a real `opscraft serve`: an operator creates one
(a bad one first: Ansible's reason under the field), selects it in a script's Ansible settings,
and a viewer sees the page without editing."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer
from tests.ui_journey import (
    OPERATOR_AND_VIEWER,
    create_script,
    journey_server,
    signed_in,
    start_run,
    token,
    wait_run,
)

pytestmark = pytest.mark.browser

PLAYBOOK = "- hosts: all\n  gather_facts: false\n  tasks:\n    - debug: msg=hi\n"
INVENTORY = "[web]\nweb1 ansible_host=192.0.2.10\n"


# Made through the API (an admin first): two `opscraft user create` processes were about 5 s of
# CPU, imports mostly.
server = journey_server(
    "inventories-ui", users=(("inventory-admin", "admin"), *OPERATOR_AND_VIEWER), through_api=True
)


@pytest.fixture(scope="module")
def operator(server: LiveServer) -> dict[str, str]:
    """The operator's bearer headers, one API sign-in (an argon2 hash at the server's cost) for
    the module's tests."""
    return token(server, "operator")


def test_create_an_inventory_and_select_it_on_a_script(
    page: Any, server: LiveServer, operator: dict[str, str]
) -> None:
    script_id = create_script(server, operator, "site", PLAYBOOK, script_type="ansible", status="active")[
        "id"
    ]

    signed_in(page, server, "operator")
    page.get_by_test_id("nav-inventories").click()
    page.wait_for_url(f"{server.url}/inventories")
    page.get_by_test_id("inventory-new").click()
    page.get_by_test_id("inventory-name").fill("web")
    page.get_by_test_id("inventory-content").fill("[web\nweb1\n")
    page.get_by_test_id("inventory-save").click()
    # Ansible's verdict, under the content field; nothing saved.
    field = page.locator(".q-field--error", has=page.get_by_test_id("inventory-content"))
    field.filter(has_text="line 1: the group header [web has no closing ']'").wait_for()
    page.get_by_test_id("inventory-content").fill(INVENTORY)
    page.get_by_test_id("inventory-save").click()
    page.get_by_test_id("inventory-web").wait_for()
    assert page.get_by_test_id("inventory-web").filter(has_text="Not used by any script").count() == 1
    # Each row's buttons say which inventory they act on.
    assert page.get_by_role("button", name="Edit web", exact=True).count() == 1
    assert page.get_by_role("button", name="Delete web", exact=True).count() == 1

    page.goto(f"{server.url}/scripts/{script_id}/edit")
    page.get_by_test_id("inventory-id").click()
    page.get_by_role("option", name="web", exact=True).click()
    page.get_by_test_id("inventory").wait_for(state="hidden")  # the own text is not used
    page.get_by_test_id("save-script").click()
    page.wait_for_url(re.compile(rf"{re.escape(server.url)}/scripts/{script_id}$"))
    # The script page names the inventory it uses.
    assert page.get_by_test_id("shared-inventory").inner_text() == "shared inventory web"
    script = httpx.get(f"{server.url}/api/v1/scripts/{script_id}", headers=operator).json()
    inventories = httpx.get(f"{server.url}/api/v1/inventories", headers=operator).json()["items"]
    assert script["inventory_id"] == inventories[0]["id"] and script["inventory"] is None
    assert inventories[0]["used_by"] == ["site"]

    # A viewer reads the page from the navigation, with no editing.
    page.context.clear_cookies()
    signed_in(page, server, "viewer")
    page.get_by_test_id("nav-inventories").click()
    page.get_by_test_id("inventory-web").filter(has_text="Used by: site").wait_for()
    assert page.get_by_test_id("inventory-new").count() == 0
    assert page.get_by_test_id("inventory-edit-web").count() == 0


def test_an_ansible_script_with_an_inventory_changes_type_in_the_editor(
    page: Any, server: LiveServer, operator: dict[str, str]
) -> None:
    """The inventory field hides for a bash script; its stored text made Save refuse under that
    hidden field, so nothing visible happened. The type change now saves."""
    script = create_script(server, operator, "typed", PLAYBOOK, script_type="ansible", inventory=INVENTORY)
    signed_in(page, server, "operator", then=f"/scripts/{script['id']}/edit")
    page.get_by_test_id("script-type").click()
    page.get_by_role("option", name="bash", exact=True).click()
    page.get_by_test_id("inventory").wait_for(state="hidden")
    page.get_by_test_id("save-script").click()
    page.wait_for_url(re.compile(rf"{re.escape(server.url)}/scripts/{script['id']}$"))
    saved = httpx.get(f"{server.url}/api/v1/scripts/{script['id']}", headers=operator).json()
    assert (saved["script_type"], saved["inventory"], saved["current_version"]) == ("bash", None, 2)


def test_a_run_page_names_the_shared_inventory_the_run_read(
    page: Any, server: LiveServer, operator: dict[str, str]
) -> None:
    """The run page said nothing of the hosts a playbook ran against: it names the shared
    inventory, the version it read and the start of that text's SHA-256, which the Inventories
    page shows of the current text, and links to that version, still readable after the
    inventory changed (and says so once the inventory is deleted)."""
    local = "[lab]\nlab1\n\n[lab:vars]\nansible_connection=local\n"
    body = {"name": "lab", "content": local}
    r = httpx.post(f"{server.url}/api/v1/inventories", json=body, headers=operator, timeout=60)
    assert r.status_code == 201, r.text
    inventory = r.json()
    settings = {"script_type": "ansible", "status": "active", "inventory_id": inventory["id"]}
    script = create_script(server, operator, "lab-play", PLAYBOOK, **settings)
    run = wait_run(server, operator, start_run(server, operator, script["id"]))
    assert (run["status"], run["inventory_sha256"]) == ("success", inventory["content_sha256"]), run
    short = inventory["content_sha256"][:12]

    signed_in(page, server, "operator", then=f"/executions/{run['id']}")
    assert page.get_by_test_id("run-inventory").inner_text() == f"lab, version 1 (SHA-256 {short})"
    # Renamed by another user while the run's page is open: the page names it anew (it kept the
    # name read when it opened), then back.
    for name in ("lab-renamed", "lab"):
        where = f"{server.url}/api/v1/inventories/{inventory['id']}"
        r = httpx.put(where, json={"name": name}, headers=operator, timeout=60)
        assert r.status_code == 200, r.text
        named = page.get_by_test_id("run-inventory").get_by_text(f"{name}, version 1 (SHA-256 {short})")
        named.wait_for()
    page.goto(f"{server.url}/inventories")
    page.get_by_test_id("inventory-uses-lab").filter(has_text=f"content SHA-256 {short}").wait_for()

    # The inventory changes: the run still names (and links to) the text it read.
    changed = local.replace("lab1\n", "lab1\nlab2\n")
    r = httpx.put(
        f"{server.url}/api/v1/inventories/{inventory['id']}",
        json={"content": changed},
        headers=operator,
        timeout=60,
    )
    assert r.status_code == 200 and r.json()["version"] == 2, r.text
    page.goto(f"{server.url}/executions/{run['id']}")
    page.get_by_test_id("run-inventory").click()
    page.wait_for_url(f"**/inventories/{inventory['id']}/versions/1")
    assert page.get_by_test_id("inventory-version-title").inner_text() == "Version 1 of 2"
    assert page.get_by_test_id("inventory-version-current").count() == 0
    assert "lab2" not in page.get_by_test_id("inventory-version-content").inner_text()
    page.get_by_test_id("inventory-versions").get_by_role("link", name=re.compile("^Version 2 ")).click()
    page.wait_for_url(f"**/inventories/{inventory['id']}/versions/2")
    page.get_by_test_id("inventory-version-current").wait_for()
    added = page.get_by_test_id("inventory-version-changes").locator("td.diff_add")
    assert added.all_inner_texts() == ["lab2"]
    page.goto(f"{server.url}/inventories")
    page.get_by_test_id("inventory-history-lab").click()
    page.wait_for_url(f"**/inventories/{inventory['id']}/versions/2")

    moved = {"inventory_id": None, "inventory": local}
    r = httpx.put(f"{server.url}/api/v1/scripts/{script['id']}", json=moved, headers=operator, timeout=60)
    assert r.status_code == 200, r.text
    r = httpx.delete(f"{server.url}/api/v1/inventories/{inventory['id']}", headers=operator, timeout=60)
    assert r.status_code == 204, r.text
    page.goto(f"{server.url}/executions/{run['id']}")
    expected = f"id {inventory['id']}, deleted since (SHA-256 {short})"
    assert page.get_by_test_id("run-inventory").inner_text() == expected


def test_an_inventory_of_a_thousand_hosts_does_not_bury_the_page_or_the_save_button(
    page: Any, server: LiveServer, operator: dict[str, str]
) -> None:
    """Its text filled the list (the next inventory was 1,400 lines below) and the edit form grew
    to 25,000 px with Save at its bottom; the script form's own inventory field grew alike."""
    hosts = "[fleet]\n" + "".join(f"node{i:04d}.example.org\n" for i in range(1000))
    for name, content in (("fleet", hosts), ("gamma", INVENTORY)):
        body = {"name": name, "content": content}
        r = httpx.post(f"{server.url}/api/v1/inventories", json=body, headers=operator, timeout=60)
        assert r.status_code == 201, r.text
    script = create_script(server, operator, "fleet-play", PLAYBOOK, script_type="ansible", inventory=hosts)

    page.set_viewport_size({"width": 1400, "height": 900})
    signed_in(page, server, "operator", then="/inventories")
    fleet = page.get_by_test_id("inventory-fleet")
    fleet.get_by_text("Show the inventory (1,001 lines)").wait_for()
    assert fleet.get_by_text("node0999.example.org").is_hidden()
    assert page.get_by_test_id("inventory-gamma").bounding_box()["y"] < 900  # the next one, on screen
    page.get_by_test_id("inventory-edit-fleet").click()
    page.get_by_test_id("inventory-content").wait_for()
    save = page.get_by_test_id("inventory-save").bounding_box()
    assert save is not None and save["y"] + save["height"] < 900, save

    page.goto(f"{server.url}/scripts/{script['id']}/edit")
    field = page.get_by_test_id("inventory")
    field.wait_for()
    assert field.bounding_box()["height"] <= 450  # half the window, then it scrolls


def test_the_script_page_says_when_its_ssh_key_is_not_attached(
    page: Any, server: LiveServer, operator: dict[str, str]
) -> None:
    """A script can name its key secret at save, but only attach it afterwards: its runs then
    ended in error, with nothing on the script's page saying why before one was started."""
    secret = {"name": "LAB_KEY", "value": "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n", "kind": "file"}
    r = httpx.post(f"{server.url}/api/v1/secrets", json=secret, headers=operator, timeout=60)
    assert r.status_code == 201, r.text
    settings = {"script_type": "ansible", "inventory": INVENTORY, "ssh_key_secret": "LAB_KEY"}
    script = create_script(server, operator, "keyed", PLAYBOOK, **settings)

    signed_in(page, server, "operator", then=f"/scripts/{script['id']}")
    note = page.get_by_test_id("ssh-key-unattached")
    assert note.inner_text() == (
        "LAB_KEY: not attached to this script, so its runs end in error: attach it on the Secrets tab"
    )
    page.get_by_test_id("tab-secrets").click()
    page.get_by_test_id("attach-select").click()
    page.get_by_role("option", name="LAB_KEY").click()
    page.get_by_test_id("attach-submit").click()
    page.get_by_test_id("attached-LAB_KEY").wait_for()
    page.goto(f"{server.url}/scripts/{script['id']}")
    page.get_by_test_id("run-settings").get_by_text("LAB_KEY", exact=True).wait_for()
    assert note.count() == 0
