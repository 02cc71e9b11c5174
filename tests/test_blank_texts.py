"""A script's content and a shared inventory's text sent empty (`""`) or blank (only spaces, tabs
and line breaks): each refused with one message that says which of the two it is and what to
write, the same for every script type, on every route that takes the text (create, change, test
run), the UI's forms calling the same services.

It was two wordings from two layers: `""` said pydantic's "must not be empty or only spaces"
(though only spaces got another message), blank content "must not be blank: write the script",
and an Ansible playbook a second error for the same fault ("line 1: a playbook must be a
non-empty YAML list of plays")."""

from __future__ import annotations

import httpx

from opscraft.services.input_words import blank_problem
from tests.conftest import LoggedIn

EMPTY_SCRIPT = "must not be empty: write the script"
BLANK_SCRIPT = "must not be blank (only spaces, tabs and line breaks): write the script"
EMPTY_HOSTS = "must not be empty: write the hosts"
BLANK_HOSTS = "must not be blank (only spaces, tabs and line breaks): write the hosts"
BLANKS = ("\n", "  \n\t\r\n")
# A byte order mark is read past, as the checks read it (it was saved as a script of one line break).
BOM_BLANK = "\ufeff\n"


def test_one_rule_says_empty_and_blank_apart() -> None:
    assert blank_problem("", "write the script") == EMPTY_SCRIPT
    for text in BLANKS:
        assert blank_problem(text, "write the script") == BLANK_SCRIPT, repr(text)
    assert blank_problem(" x\n", "write the script") is None


def _content_errors(r: httpx.Response) -> list[str]:
    assert r.status_code == 422, r.text
    return [e["message"] for e in r.json()["errors"] if e["field"] == "content"]


async def test_script_content_empty_or_blank_is_said_as_such_on_every_route(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    for script_type in ("bash", "python", "ansible", "terraform"):
        base = {"name": f"blank-{script_type}", "script_type": script_type}
        for content, said in (("", EMPTY_SCRIPT), *((b, BLANK_SCRIPT) for b in (*BLANKS, BOM_BLANK))):
            r = await client.post(
                "/api/v1/scripts", json={**base, "content": content}, headers=operator.headers
            )
            assert _content_errors(r) == [said], (script_type, content, r.text)
    good = {"name": "blank-edit", "script_type": "ansible", "content": "- hosts: all\n  tasks: []\n"}
    created = await client.post("/api/v1/scripts", json=good, headers=operator.headers)
    assert created.status_code == 201, created.text
    path = f"/api/v1/scripts/{created.json()['id']}"
    for content, said in (("", EMPTY_SCRIPT), ("\n \n", BLANK_SCRIPT)):
        r = await client.put(path, json={"content": content}, headers=operator.headers)
        assert _content_errors(r) == [said], (content, r.text)
        r = await client.post(f"{path}/test-runs", json={"content": content}, headers=operator.headers)
        assert _content_errors(r) == [said], (content, r.text)


async def test_shared_inventory_text_empty_or_blank_is_said_as_such(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    for content, said in (("", EMPTY_HOSTS), *((b, BLANK_HOSTS) for b in BLANKS)):
        r = await client.post(
            "/api/v1/inventories", json={"name": "blank-hosts", "content": content}, headers=operator.headers
        )
        assert _content_errors(r) == [said], (content, r.text)
    created = await client.post(
        "/api/v1/inventories", json={"name": "blank-hosts", "content": "web1\n"}, headers=operator.headers
    )
    assert created.status_code == 201, created.text
    for content, said in (("", EMPTY_HOSTS), ("\t\n", BLANK_HOSTS)):
        r = await client.put(
            f"/api/v1/inventories/{created.json()['id']}", json={"content": content}, headers=operator.headers
        )
        assert _content_errors(r) == [said], (content, r.text)
