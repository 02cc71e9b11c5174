"""Pages holding rows whose stored values today's version cannot read (SQLite holds any text in
a time or enum column; a settings row may hold another type), as a manual edit leaves them: each
page builds and says what was stored (the run and script pages, the lists, the settings field),
where they failed to build (a 500) or, for a setting, said nothing."""

from __future__ import annotations

import sqlite3
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.conftest import LiveServer
from tests.ui_journey import API_TIMEOUT, journey_server, journey_tokens, log_in, wait_run

pytestmark = pytest.mark.browser

server = journey_server("stored-rows")
tokens = journey_tokens()


def _api(server: LiveServer, headers: dict[str, str], method: str, path: str, **kwargs: Any) -> Any:
    r = httpx.request(method, f"{server.url}{path}", headers=headers, timeout=API_TIMEOUT, **kwargs)
    assert r.status_code < 300, r.text
    return r.json()


def test_runs_and_scripts_whose_times_or_type_are_none_still_show_saying_so(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """`queued_at = 'yesterday'`, `finished_at = '2026-13-45'` of a run and `updated_at = 5`,
    `script_type = 'perl'` of its script: the history, the run's page, the scripts list and the
    script's page were 500s; they show, each saying what was stored."""
    admin = tokens["admin"]
    body = {"name": "odd-times", "script_type": "bash", "content": "echo hi\n", "status": "active"}
    script_id = _api(server, admin, "POST", "/api/v1/scripts", json=body)["id"]
    run_id = _api(
        server, admin, "POST", "/api/v1/executions", json={"script_id": script_id, "runner": "local"}
    )["id"]
    wait_run(server, admin, run_id)
    with sqlite3.connect(server.data_dir / "opscraft.db", timeout=30) as db:  # as a manual edit
        db.execute(
            "UPDATE executions SET queued_at = 'yesterday', finished_at = '2026-13-45' WHERE id = ?",
            (run_id,),
        )
        db.execute("UPDATE scripts SET updated_at = 5, script_type = 'perl' WHERE id = ?", (script_id,))
    log_in(page, server, "admin", then=f"/executions/{run_id}")
    expect(page.get_by_test_id("execution-stored")).to_contain_text(
        "queued_at: stored as 'yesterday', not a time"
    )
    expect(page.get_by_test_id("execution-stored")).to_contain_text("finished_at: stored as '2026-13-45'")
    page.goto(f"{server.url}/executions")
    expect(page.get_by_test_id("runs-count")).to_be_visible()
    expect(page.get_by_text("odd-times").first).to_be_visible()
    page.goto(f"{server.url}/scripts/{script_id}")
    expect(page.get_by_test_id("script-stored")).to_contain_text(
        "script_type: stored as 'perl', none of bash"
    )
    expect(page.get_by_test_id("script-stored")).to_contain_text("updated_at: stored as 5, not a time")
    page.goto(f"{server.url}/scripts")
    expect(page.get_by_test_id("script-row-stored-odd-times")).to_contain_text(
        "script_type: stored as 'perl'"
    )


def test_a_setting_stored_in_another_shape_is_said_next_to_its_field(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A settings row today's rules refuse reads as its default with a logged warning, but the
    Settings page showed the default with nothing said: the field now says what was stored and
    what is used; a save of it replaces it and the note goes."""
    admin = tokens["admin"]
    _api(server, admin, "PUT", "/api/v1/settings", json={"output_retention_days": 5})
    with sqlite3.connect(server.data_dir / "opscraft.db", timeout=30) as db:  # as a manual edit
        db.execute("UPDATE app_settings SET value = '\"30\"' WHERE key = 'output_retention_days'")
    log_in(page, server, "admin", then="/settings")
    note = page.get_by_test_id("setting-stored-output_retention_days")
    expect(note).to_have_text(
        "the stored value '30' must be a whole number (it is text): 0 is used;"
        " save the setting to replace it."
    )
    expect(page.get_by_test_id("setting-stored-warm_pool_size")).to_have_count(0)
    page.get_by_test_id("setting-output_retention_days").fill("30")
    page.get_by_test_id("settings-save").click()
    page.get_by_text("Settings saved").wait_for()
    page.reload()
    expect(page.get_by_test_id("setting-output_retention_days")).to_have_value("30")
    expect(note).to_have_count(0)


def test_a_stored_text_writing_a_key_twice_is_said_where_the_page_shows_it(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """A playbook and an inventory stored before saves refused a key written twice in one mapping
    (Ansible uses the last value, the page shows both): the Content tab says, above the text,
    what a run refuses them for (`yaml_keys.run_refusals`), key and lines."""
    admin = tokens["admin"]
    playbook = "- hosts: all\n  gather_facts: false\n  tasks: []\n"
    inventory = "all:\n  hosts:\n    web1:\n"
    body = {"name": "keys-twice", "script_type": "ansible", "content": playbook, "inventory": inventory}
    script_id = _api(server, admin, "POST", "/api/v1/scripts", json=body)["id"]
    with sqlite3.connect(server.data_dir / "opscraft.db", timeout=30) as db:  # as an older version stored it
        db.execute(
            "UPDATE scripts SET content = ?, inventory = ? WHERE id = ?",
            (playbook + "  hosts: web\n", inventory + "    web1:\n", script_id),
        )
    log_in(page, server, "admin", then=f"/scripts/{script_id}?tab=content")
    said = page.get_by_test_id("script-content-problem")
    expect(said.first).to_contain_text(
        "the playbook cannot be used: line 4: the key 'hosts' is written twice in one mapping "
        "(first at line 1)"
    )
    expect(said.nth(1)).to_contain_text("the script's inventory cannot be used: line 4: the key 'web1'")
    expect(said.first).to_contain_text("fix it and save it again")


def test_a_shared_inventory_writing_a_key_twice_is_said_on_the_inventories_page(
    server: LiveServer, tokens: dict[str, dict[str, str]], page: Any
) -> None:
    """The same for a shared inventory stored so: the Inventories page says it beside the text."""
    admin = tokens["admin"]
    body = {"name": "keys-twice", "content": "all:\n  hosts:\n    web1:\n"}
    inventory_id = _api(server, admin, "POST", "/api/v1/inventories", json=body)["id"]
    with sqlite3.connect(server.data_dir / "opscraft.db", timeout=30) as db:  # as an older version stored it
        db.execute(
            "UPDATE inventories SET content = ? WHERE id = ?", (body["content"] + "    web1:\n", inventory_id)
        )
    log_in(page, server, "admin", then="/inventories")
    expect(page.get_by_test_id("inventory-problem-keys-twice")).to_contain_text(
        "the shared inventory cannot be used: line 4: the key 'web1' is written twice"
    )
