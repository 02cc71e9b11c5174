"""A finished Ansible run's per-host summary, from the PLAY RECAP of a real `ansible-playbook`
(local runner, hosts reached with `ansible_connection: local`), on SQLite and PostgreSQL: what
GET /api/v1/executions/{id} returns with check mode, a limit, tags and several plays, and for a
run stopped before its recap; the history's host filter finds such a run by its hosts. Over real
SSH (an unreachable host): test_ansible_ssh.py."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlmodel import col, delete, update

from opscraft import runtime
from opscraft.db.models import Execution, ExecutionHostSummary
from opscraft.execution import ansible_recap
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, output, start, wait_for, wait_output

INVENTORY = """all:
  vars:
    ansible_connection: local
  children:
    web:
      hosts:
        "web-01": {}
        "fe80::10": {}
      vars:
        flaky: false
    db:
      hosts:
        "数据库-1": {flaky: true}
"""
PLAYBOOK = """- name: configure
  hosts: all
  gather_facts: false
  tasks:
    - name: greet
      ansible.builtin.debug: {msg: "hello {{ inventory_hostname }}"}
      tags: [greet]
    - name: change something
      ansible.builtin.command: "true"
      changed_when: true
      tags: [change]
- name: check
  hosts: all
  gather_facts: false
  tasks:
    - name: refuse the flaky host
      ansible.builtin.fail: {msg: flaky}
      when: flaky | bool
    - name: skipped
      ansible.builtin.debug: {msg: never}
      when: false
"""


def _host(name: str, **counts: int) -> dict[str, object]:
    return {"host": name, **dict.fromkeys(ansible_recap.COUNTS, 0), **counts}


async def _finished(
    client: httpx.AsyncClient, who: LoggedIn, script_id: int, **body: object
) -> tuple[dict, str]:
    started = await start(client, who, script_id, "local", parameters={}, **body)
    final = await wait_for(client, who, started["id"], timeout=120)
    return final, await output(client, who, started["id"])


async def test_each_host_s_counts_over_every_play_with_check_limit_and_tags(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    script_id = await make_script(client, operator, PLAYBOOK, script_type="ansible", inventory=INVENTORY)
    final, text = await _finished(client, operator, script_id)
    assert final["status"] == "failed" and final["exit_code"] == 2, text
    summary = final["host_summary"]
    assert summary["note"] is None, text
    assert summary["hosts"] == [  # the failed host first, then the others in the recap's order
        _host("数据库-1", ok=2, changed=1, failed=1),
        _host("fe80::10", ok=2, changed=1, skipped=2),
        _host("web-01", ok=2, changed=1, skipped=2),
    ], text
    assert summary["host_count"] == 3
    assert summary["totals"] == {
        **dict.fromkeys(ansible_recap.COUNTS, 0),
        "ok": 6,
        "changed": 3,
        "failed": 1,
        "skipped": 4,
    }
    # The history finds the run by its host, as the recap names it, and by how it ended there.
    for host, host_status in (("数据库-1", "failed"), ("fe80::10", "ok"), ("web-01", "changed")):
        params = {"host": host, "host_status": host_status, "script_id": script_id}
        page = (await client.get("/api/v1/executions", params=params, headers=operator.headers)).json()
        assert [item["id"] for item in page["items"]] == [final["id"]], (host, page)
    params = {"host": "fe80::10", "host_status": "failed"}
    page = (await client.get("/api/v1/executions", params=params, headers=operator.headers)).json()
    assert page["items"] == [] and page["total"] == 0, page

    final, text = await _finished(
        client, operator, script_id, run_options={"limit": "web", "check": True, "diff": True}
    )
    assert final["status"] == "success", text
    # Check mode: a command is skipped (it cannot tell what it would do).
    assert final["host_summary"]["hosts"] == [
        _host("fe80::10", ok=1, skipped=3),
        _host("web-01", ok=1, skipped=3),
    ], text

    final, text = await _finished(client, operator, script_id, run_options={"tags": ["greet"]})
    assert final["status"] == "success", text
    assert [h["ok"] for h in final["host_summary"]["hosts"]] == [1, 1, 1], text
    assert final["host_summary"]["totals"]["changed"] == 0


async def test_a_run_cancelled_before_its_recap_has_no_summary_and_says_why(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    playbook = PLAYBOOK.replace(
        "    - name: greet\n",
        "    - name: wait\n      ansible.builtin.command: sleep 60\n    - name: greet\n",
        1,
    )
    script_id = await make_script(client, operator, playbook, script_type="ansible", inventory=INVENTORY)
    started = await start(client, operator, script_id, "local", parameters={})
    await wait_output(client, operator, started["id"], "TASK [wait]", timeout=60)
    r = await client.post(f"/api/v1/executions/{started['id']}/cancel", headers=operator.headers)
    assert r.status_code == 200, r.text
    final = await wait_for(client, operator, started["id"], timeout=60)
    assert final["status"] == "cancelled"
    assert final["host_summary"] == {
        "hosts": [],
        "host_count": 0,
        "totals": dict.fromkeys(ansible_recap.COUNTS, 0),
        "note": ansible_recap.STOPPED,
    }


async def test_other_runs_and_lists_carry_no_summary(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    script_id = await make_script(
        client, operator, "echo 'PLAY RECAP ***'\necho 'x : ok=1 changed=0 unreachable=0 failed=0'\n"
    )
    final, text = await _finished(client, operator, script_id)
    assert final["status"] == "success" and "PLAY RECAP" in text
    assert final["host_summary"] is None
    page = (
        await client.get("/api/v1/executions", params={"script_id": script_id}, headers=operator.headers)
    ).json()
    assert page["items"] and all("host_summary" not in item for item in page["items"])


async def test_a_playbook_ansible_refuses_names_its_error_and_one_matching_no_host_says_so(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """A script is one playbook: a role it names is not there (roles come with the image). The
    message said "ERROR! in the output" (ansible-core 2.19 prints `[ERROR]:`); it now names it."""
    roles = "- hosts: all\n  gather_facts: false\n  roles: [common]\n"
    script_id = await make_script(client, operator, roles, script_type="ansible", inventory=INVENTORY)
    final, text = await _finished(client, operator, script_id)
    assert final["status"] == "failed" and final["exit_code"] == 1, text
    assert final["error_message"].startswith(
        "the script exited with code 1: ansible-playbook stopped on an error: "
        "the role 'common' was not found in "
    ), final["error_message"]
    assert final["host_summary"]["note"] == ansible_recap.NO_RECAP

    nobody = "- hosts: nothere\n  gather_facts: false\n  tasks:\n    - ansible.builtin.ping:\n"
    script_id = await make_script(client, operator, nobody, script_type="ansible", inventory=INVENTORY)
    final, text = await _finished(client, operator, script_id)
    assert final["status"] == "success" and "PLAY RECAP" in text, text
    assert final["host_summary"]["hosts"] == [] and final["host_summary"]["note"] == ansible_recap.EMPTY
    assert final["host_summary"]["totals"] == dict.fromkeys(ansible_recap.COUNTS, 0)


def test_the_openapi_documents_the_summary_with_its_schema(api_app: FastAPI) -> None:
    spec = api_app.openapi()
    get = spec["paths"]["/api/v1/executions/{execution_id}"]["get"]
    detail = get["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    schemas = spec["components"]["schemas"]
    summary = schemas[detail]["properties"]["host_summary"]
    ref = next(s["$ref"] for s in summary["anyOf"] if "$ref" in s).rsplit("/", 1)[1]
    assert set(schemas[ref]["required"]) == {"hosts", "host_count", "totals", "note"}
    hosts = schemas[ref]["properties"]["hosts"]
    counts = schemas[hosts["items"]["$ref"].rsplit("/", 1)[1]]
    assert list(counts["properties"]) == ["host", *ansible_recap.COUNTS]
    assert all(counts["properties"][key]["minimum"] == 0 for key in ansible_recap.COUNTS)
    assert "PLAY RECAP" in summary["description"] and hosts["description"]


async def test_a_summary_stored_in_another_shape_reads_as_none_saying_why(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """A summary row edited by hand (a count that is text, a host without a name, totals that
    are no numbers) was a 500 of the run's page and API, and a count went into the page's HTML
    unescaped: it now reads as no host, its `note` saying what the row holds (db.stored_shapes)."""
    script_id = await make_script(client, operator, "echo hi\n")
    final, _ = await _finished(client, operator, script_id)
    good = _host("web-01", ok=1)
    rows = [
        ([{**good, "failed": "<b>x</b>"}], {}, "hosts: stored with item 0 not a host's name and counts"),
        ([{"ok": 1}], {}, "hosts: stored with item 0"),
        ("web-01", {}, "hosts: stored as text"),
        ([good], {"ok": "1"}, "totals: stored with 'ok' as text"),
    ]
    for hosts, totals, said in rows:
        async with runtime.current().db.session() as session:
            await session.exec(
                update(Execution).where(col(Execution.id) == final["id"]).values(script_type="ansible")
            )
            await session.exec(delete(ExecutionHostSummary))
            session.add(
                ExecutionHostSummary(execution_id=final["id"], hosts=hosts, host_count=1, totals=totals)
            )
            await session.commit()
        r = await client.get(f"/api/v1/executions/{final['id']}", headers=operator.headers)
        assert r.status_code == 200, r.text
        summary = r.json()["host_summary"]
        assert summary["hosts"] == [] and summary["note"].startswith(said), summary
        assert summary["totals"] == dict.fromkeys(ansible_recap.COUNTS, 0), summary
