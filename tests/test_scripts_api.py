"""The script library over the API, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import httpx
import pytest

from opscraft import runtime
from opscraft.db.models import Role, User
from opscraft.services import scripts
from opscraft.services.actor import Actor
from opscraft.services.errors import GONE_WHY
from tests.conftest import IN_MODULE_LOOP, LoggedIn, Reader

SEED_BODY = {
    "name": "deploy-app",
    "description": "Deploy application",
    "script_type": "bash",
    "content": "#!/bin/bash\necho 'Deploying...'",
    "parameters": {"ENV": "prod"},
    "version": "1.0.0",
    "tags": ["deployment", "production"],
}


async def create(client: httpx.AsyncClient, who: LoggedIn, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/api/v1/scripts", json={**SEED_BODY, **overrides}, headers=who.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def events(client: httpx.AsyncClient, admin: LoggedIn, script_id: int) -> list[str]:
    response = await client.get(
        "/api/v1/audit",
        params={"target_type": "script", "target_id": str(script_id), "limit": 100},
        headers=admin.headers,
    )
    return [e["action"] for e in reversed(response.json()["items"])]


async def test_seed_create_and_partial_update(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn
) -> None:
    script = await create(client, operator)
    assert script["current_version"] == 1
    assert script["status"] == "draft"
    assert script["version"] == "1.0.0"
    assert script["tags"] == ["deployment", "production"]
    assert script["parameter_defaults"] == {"ENV": "prod"}
    assert script["parameters"]["ENV"]["type"] == "string"
    assert script["findings"] == []
    assert script["network_enabled"] is False

    sid = script["id"]
    r = await client.put(
        f"/api/v1/scripts/{sid}",
        json={"description": "Updated description", "status": "active"},
        headers=operator.headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "active"
    assert r.json()["current_version"] == 1, "description and status are not versioned"

    r = await client.get(f"/api/v1/scripts/{sid}", headers=operator.headers)
    assert r.json()["description"] == "Updated description"
    assert r.json()["content"] == SEED_BODY["content"]
    assert await events(client, admin, sid) == ["script.create", "script.update", "script.status"]


async def test_versions_diff_and_rollback(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn
) -> None:
    sid = (await create(client, operator))["id"]
    r = await client.put(
        f"/api/v1/scripts/{sid}",
        json={"content": "#!/bin/bash\necho 'Deploying v2'\n", "change_note": "v2"},
        headers=operator.headers,
    )
    assert r.json()["current_version"] == 2
    r = await client.put(f"/api/v1/scripts/{sid}", json={"timeout_seconds": 60}, headers=operator.headers)
    assert r.json()["current_version"] == 3, "run settings are versioned"

    versions = (await client.get(f"/api/v1/scripts/{sid}/versions", headers=operator.headers)).json()
    assert versions["total"] == 3
    assert [v["number"] for v in versions["items"]] == [3, 2, 1]
    assert versions["items"][1]["change_note"] == "v2"
    assert "content" not in versions["items"][0]

    v1 = (await client.get(f"/api/v1/scripts/{sid}/versions/1", headers=operator.headers)).json()
    assert v1["content"] == SEED_BODY["content"]
    assert v1["run_settings"]["timeout_seconds"] == 3600
    assert v1["author_name"] == "operator" and versions["items"][0]["author_name"] == "operator"

    diff = (await client.get(f"/api/v1/scripts/{sid}/diff?from=1&to=3", headers=operator.headers)).json()
    assert "-echo 'Deploying...'" in diff["diff"]
    assert "+echo 'Deploying v2'" in diff["diff"]
    assert diff["diff"].startswith("--- deploy-app v1\n+++ deploy-app v3\n")
    assert diff["changed"] == ["content", "run_settings"]

    r = await client.post(f"/api/v1/scripts/{sid}/rollback/1", headers=operator.headers)
    assert r.status_code == 200, r.text
    assert r.json()["current_version"] == 4
    assert r.json()["content"] == SEED_BODY["content"]
    assert r.json()["timeout_seconds"] == 3600
    v4 = (await client.get(f"/api/v1/scripts/{sid}/versions/4", headers=operator.headers)).json()
    assert v4["change_note"] == "rollback to version 1"
    same = (await client.get(f"/api/v1/scripts/{sid}/diff?from=1&to=4", headers=operator.headers)).json()
    assert same["diff"] == "" and same["changed"] == []

    # Nothing to roll back: the current version, or one equal to it, writes no version.
    r = await client.post(f"/api/v1/scripts/{sid}/rollback/4", headers=operator.headers)
    assert r.status_code == 409 and "already the current version" in r.json()["detail"]
    r = await client.post(f"/api/v1/scripts/{sid}/rollback/1", headers=operator.headers)
    assert r.status_code == 409, r.text
    assert "version 1 is the same as the current version 4" in r.json()["detail"]
    assert (await client.get(f"/api/v1/scripts/{sid}", headers=operator.headers)).json()[
        "current_version"
    ] == 4
    r = await client.post(f"/api/v1/scripts/{sid}/rollback/9", headers=operator.headers)
    assert r.status_code == 404
    assert "no version 9" in r.json()["detail"]
    r = await client.get(f"/api/v1/scripts/{sid}/diff?from=1&to=9", headers=operator.headers)
    assert r.status_code == 404
    assert (await events(client, admin, sid))[-1] == "script.rollback"


async def test_diff_is_gnu_diff_without_a_final_line_break(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """A last line without a line break is followed by `\\ No newline at end of file` (difflib
    glued the next line to it: `-echo b+echo c` on one line), and lines end at LF only, as the
    editor counts them: a form feed inside a line starts none (`str.splitlines` split there)."""
    sid = (await create(client, operator, content="echo a\necho b"))["id"]
    for content in ("echo a\necho c", "echo a\necho c\n", "echo \f a\necho c\n"):
        r = await client.put(f"/api/v1/scripts/{sid}", json={"content": content}, headers=operator.headers)
        assert r.status_code == 200, r.text

    async def diff(old: int, new: int) -> str:
        r = await client.get(f"/api/v1/scripts/{sid}/diff?from={old}&to={new}", headers=operator.headers)
        assert r.status_code == 200, r.text
        return str(r.json()["diff"])

    no_newline = "\\ No newline at end of file\n"
    assert (await diff(1, 2)).endswith(
        f"@@ -1,2 +1,2 @@\n echo a\n-echo b\n{no_newline}+echo c\n{no_newline}"
    )
    assert (await diff(2, 3)).endswith(f"@@ -1,2 +1,2 @@\n echo a\n-echo c\n{no_newline}+echo c\n")
    assert (await diff(3, 4)).endswith("@@ -1,2 +1,2 @@\n-echo a\n+echo \f a\n echo c\n")


async def test_a_rollback_asked_at_an_older_version_is_refused(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn
) -> None:
    """`base_version`, the version a rollback was asked at: someone else's save since then is a
    409 naming it, with nothing written (the rollback replaced that save unseen); at the current
    version, or left out, the rollback goes ahead."""
    sid = (await create(client, operator, content="echo one\n"))["id"]
    for content in ("echo two\n", "echo fix\n"):
        r = await client.put(f"/api/v1/scripts/{sid}", json={"content": content}, headers=admin.headers)
        assert r.status_code == 200, r.text
    r = await client.post(
        f"/api/v1/scripts/{sid}/rollback/1", json={"base_version": 2}, headers=operator.headers
    )
    assert r.status_code == 409, r.text
    assert r.json()["errors"][0]["field"] == "base_version"
    # who saved version 3, and when (tests/test_conflict_who_saved.py)
    said = (
        r"the script is at version 3 \(saved by someone else at \d\d:\d\d UTC\), "
        "the rollback was asked at version 2"
    )
    assert re.match(said, r.json()["detail"]), r.text
    stored = (await client.get(f"/api/v1/scripts/{sid}", headers=operator.headers)).json()
    assert (stored["current_version"], stored["content"]) == (3, "echo fix\n")
    r = await client.post(
        f"/api/v1/scripts/{sid}/rollback/1", json={"base_version": 3}, headers=operator.headers
    )
    assert r.status_code == 200, r.text
    assert (r.json()["current_version"], r.json()["content"]) == (4, "echo one\n")
    r = await client.post(
        f"/api/v1/scripts/{sid}/rollback/2", json={"base_version": 0}, headers=operator.headers
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "base_version"


async def test_search_filters_sort_and_pagination(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    await create(client, operator, name="deploy-web", tags=["prod"], description="Ship the web tier")
    await create(client, operator, name="backup-db", tags=["nightly"], description="Dump and DEPLOY nothing")
    cleanup = await create(
        client,
        operator,
        name="cleanup",
        script_type="python",
        content="print('x')\n",
        parameters=None,
        tags=[],
        description="Remove old files",
    )
    await create(
        client,
        operator,
        name="ansible-site",
        script_type="ansible",
        content="- hosts: all\n",
        tags=["prod"],
        description="",
    )

    async def names(**params: Any) -> list[str]:
        r = await client.get("/api/v1/scripts", params=params, headers=operator.headers)
        assert r.status_code == 200, r.text
        return [item["name"] for item in r.json()["items"]]

    assert await names(search="deploy") == ["backup-db", "deploy-web"]
    assert await names(search="PROD") == ["ansible-site", "deploy-web"], "tags match too"
    assert await names(search="web tier") == ["deploy-web"], "all words must match"
    assert await names(search="100%") == []
    assert await names(script_type="python") == ["cleanup"]
    assert await names(tag="prod") == ["ansible-site", "deploy-web"]
    assert await names(tag="prod", script_type="bash") == ["deploy-web"]
    assert await names(sort="-name") == ["deploy-web", "cleanup", "backup-db", "ansible-site"]
    assert (await names(sort="-updated_at"))[0] == "ansible-site"

    r = await client.get("/api/v1/scripts", params={"limit": 2, "skip": 2}, headers=operator.headers)
    page = r.json()
    assert page["total"] == 4 and [i["name"] for i in page["items"]] == ["cleanup", "deploy-web"]
    assert "content" not in page["items"][0]

    sid = (await client.get("/api/v1/scripts", params={"search": "cleanup"}, headers=operator.headers)).json()
    await client.put(
        f"/api/v1/scripts/{sid['items'][0]['id']}", json={"status": "active"}, headers=operator.headers
    )
    assert await names(status="active") == ["cleanup"]

    # Folded one letter for one letter on both sides (db/fold.py `lower`): `İ` is `i`, `Σ` is U+03C3.
    r = await client.put(
        f"/api/v1/scripts/{cleanup['id']}",
        json={"description": "İstanbul ΟΔΟΣ files", "tags": ["İZMİR"]},
        headers=operator.headers,
    )
    assert r.status_code == 200, r.text
    for term in ("İSTANBUL", "istanbul", "οδοσ", "ΟΔΟΣ", "izmir", "İzmir"):
        assert await names(search=term) == ["cleanup"], term

    r = await client.get("/api/v1/scripts", params={"sort": "size"}, headers=operator.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "sort"


async def test_a_search_finds_accented_letters_in_either_spelling(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn
) -> None:
    """Field report (combining marks): `é` typed (NFC, one character) found no script whose
    description was pasted as `e` + U+0301 (NFD, as macOS file names give it), nor the reverse,
    though both look the same; likewise a secret's description and a user's full name. A search
    matches either spelling (`services/like.py`), on rows already stored as they are."""
    nfd, nfc = "Cafe\u0301 cre\u0300me", "Caf\u00e9 cr\u00e8me"
    decomposed = await create(client, operator, name="decomposed", description=nfd, tags=["re\u0301seau"])
    composed = await create(client, operator, name="composed", description=nfc)
    both = {decomposed["name"], composed["name"]}
    for term in (nfc, nfd, "CAF\u00c9", "CAFE\u0301", "cr\u00e8me"):
        r = await client.get("/api/v1/scripts", params={"search": term}, headers=operator.headers)
        assert {i["name"] for i in r.json()["items"]} == both, (term, r.text)
    for term in ("r\u00e9seau", "re\u0301seau"):
        r = await client.get("/api/v1/scripts", params={"search": term}, headers=operator.headers)
        assert [i["name"] for i in r.json()["items"]] == ["decomposed"], (term, r.text)

    r = await client.post(
        "/api/v1/secrets",
        json={"name": "CAFE_KEY", "value": "v", "description": nfd},
        headers=operator.headers,
    )
    assert r.status_code == 201, r.text
    r = await client.get("/api/v1/secrets", params={"search": "caf\u00e9"}, headers=operator.headers)
    assert [i["name"] for i in r.json()["items"]] == ["CAFE_KEY"], r.text

    body = {
        "username": "zoe",
        "email": "zoe@example.com",
        "password": "Zoe-Pass-123",
        "full_name": "Zo\u00eb",
    }
    assert (await client.post("/api/v1/users", json=body, headers=admin.headers)).status_code == 201
    r = await client.get("/api/v1/users", params={"search": "zoe\u0308"}, headers=admin.headers)
    assert [i["username"] for i in r.json()["items"]] == ["zoe"], r.text


async def test_soft_delete_frees_the_name(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn
) -> None:
    sid = (await create(client, operator))["id"]
    r = await client.post("/api/v1/scripts", json=SEED_BODY, headers=operator.headers)
    assert r.status_code == 409
    assert "already exists" in r.json()["detail"]
    assert [e["field"] for e in r.json()["errors"]] == ["name"]

    assert (await client.delete(f"/api/v1/scripts/{sid}", headers=operator.headers)).status_code == 204
    for path in (
        f"/api/v1/scripts/{sid}",
        f"/api/v1/scripts/{sid}/versions",
        f"/api/v1/scripts/{sid}/versions/1",
    ):
        assert (await client.get(path, headers=operator.headers)).status_code == 404
    assert (await client.delete(f"/api/v1/scripts/{sid}", headers=operator.headers)).status_code == 404
    assert (await client.get("/api/v1/scripts", headers=operator.headers)).json()["total"] == 0
    assert (await events(client, admin, sid))[-1] == "script.delete"

    again = await create(client, operator, tags=["fresh"])
    assert again["id"] != sid
    async with runtime.current().db.session() as session:
        user = await session.get(User, operator.id)
        assert await scripts.tags_in_use(session, Actor(user)) == ["fresh"], "deleted scripts' tags are gone"

    r = await client.put(f"/api/v1/scripts/{again['id']}", json={"name": "other"}, headers=operator.headers)
    assert r.status_code == 200
    second = await create(client, operator, name="second")
    r = await client.put(f"/api/v1/scripts/{second['id']}", json={"name": "other"}, headers=operator.headers)
    assert r.status_code == 409
    # Names differing only in case read as the same script in a list: taken too.
    r = await client.put(f"/api/v1/scripts/{second['id']}", json={"name": "Other"}, headers=operator.headers)
    assert r.status_code == 409 and [e["field"] for e in r.json()["errors"]] == ["name"], r.text
    r = await client.post("/api/v1/scripts", json={**SEED_BODY, "name": "OTHER"}, headers=operator.headers)
    assert r.status_code == 409 and [e["field"] for e in r.json()["errors"]] == ["name"], r.text
    r = await client.put(f"/api/v1/scripts/{again['id']}", json={"name": "Other"}, headers=operator.headers)
    assert r.status_code == 200, "its own name in another case is a rename"


@IN_MODULE_LOOP
@pytest.mark.parametrize(
    ("script_type", "content", "line", "text"),
    [
        ("bash", "echo start\nif true; then\n  echo x\nfi fi\n", 4, "syntax error"),
        ("python", "import os\n\ndef f(:\n    pass\n", 3, "invalid syntax"),
        ("ansible", "- hosts: all\n  tasks: [\n", 3, "invalid YAML"),
        ("ansible", "hosts: all\n", 1, "list of plays"),
        ("terraform", 'resource "a" "b" {\n  x = \n}\n', 2, "invalid HCL"),
        # A module directory next to main.tf is never there: every run failed at init with
        # "Unreadable module directory" (services/terraform_modules.py).
        ("terraform", 'variable "x" {}\n\nmodule "vpc" {\n  source = "./modules/vpc"\n}\n', 4, "is one file"),
        ("terraform", 'module "w" {\n  source = ".\\\\mods\\\\w"\n}\n', 2, 'module "w" has source'),
    ],
)
async def test_syntax_errors_are_422_with_lines(
    reader: Reader, script_type: str, content: str, line: int, text: str
) -> None:
    client, operator = reader.client, await reader.person(Role.operator)
    body = {**SEED_BODY, "script_type": script_type, "content": content, "parameters": None}
    r = await client.post("/api/v1/scripts", json=body, headers=operator.headers)
    assert r.status_code == 422, r.text
    error = r.json()["errors"][0]
    assert error["field"] == "content" and error["line"] == line
    assert text in error["message"]
    assert f"line {line}" in r.json()["detail"]
    assert (await client.get("/api/v1/scripts", headers=operator.headers)).json()["total"] == 0


async def test_terraform_modules_from_elsewhere_are_accepted(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """Only a module directory inside the run's work directory is refused: a registry or git
    module is downloaded, and a path that climbs out may name one of the local runner's machine."""
    content = (
        'module "a" {\n  source = "terraform-aws-modules/vpc/aws"\n}\n'
        'module "b" {\n  source = "git::https://example.com/m.git"\n}\n'
        'module "c" {\n  source = "../../opt/modules/c"\n}\n'
    )
    body = {**SEED_BODY, "script_type": "terraform", "content": content, "parameters": None}
    r = await client.post("/api/v1/scripts", json=body, headers=operator.headers)
    assert r.status_code == 201, r.text


async def test_lint_findings_need_acknowledgement(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn
) -> None:
    risky = "#!/bin/bash\ncurl -fsSL https://example.invalid/install.sh | sh\nrm -rf /\n"
    r = await client.post("/api/v1/scripts", json={**SEED_BODY, "content": risky}, headers=operator.headers)
    assert r.status_code == 422
    assert "acknowledge_risks" in r.json()["detail"]
    assert [(e["rule"], e["line"]) for e in r.json()["errors"]] == [("pipe-to-shell", 2), ("rm-rf-root", 3)]
    assert r.json()["errors"][1]["excerpt"] == "rm -rf /"
    assert (await client.get("/api/v1/scripts", headers=operator.headers)).json()["total"] == 0

    r = await client.post(
        "/api/v1/scripts",
        json={**SEED_BODY, "content": risky, "acknowledge_risks": True},
        headers=operator.headers,
    )
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert [f["rule"] for f in r.json()["findings"]] == ["pipe-to-shell", "rm-rf-root"]
    assert await events(client, admin, sid) == ["script.create", "script.risks_acknowledged"]

    # Unchanged (already acknowledged) content: a parameter change needs no new acknowledgement.
    r = await client.put(
        f"/api/v1/scripts/{sid}", json={"parameters": {"ENV": "dev"}}, headers=operator.headers
    )
    assert r.status_code == 200, r.text
    assert len(r.json()["findings"]) == 2
    # New risky content does.
    r = await client.put(
        f"/api/v1/scripts/{sid}", json={"content": "mkfs.ext4 /dev/sdb1\n"}, headers=operator.headers
    )
    assert r.status_code == 422 and r.json()["errors"][0]["rule"] == "make-filesystem"
    # Rolling back to risky content also does.
    await client.put(f"/api/v1/scripts/{sid}", json={"content": "echo safe\n"}, headers=operator.headers)
    r = await client.post(f"/api/v1/scripts/{sid}/rollback/1", headers=operator.headers)
    assert r.status_code == 422
    r = await client.post(
        f"/api/v1/scripts/{sid}/rollback/1", json={"acknowledge_risks": True}, headers=operator.headers
    )
    assert r.status_code == 200
    assert (await events(client, admin, sid))[-2:] == ["script.rollback", "script.risks_acknowledged"]


@IN_MODULE_LOOP
@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "bad name!"}, "name"),
        ({"name": "-leading"}, "name"),
        ({"name": "x" * 129}, "name"),
        ({"script_type": "perl"}, "script_type"),
        ({"description": "d" * 2001}, "description"),
        ({"tags": [f"t{i}" for i in range(21)]}, "tags"),
        ({"tags": ["x" * 51]}, "tags"),
        ({"tags": [" "]}, "tags"),
        ({"content": ""}, "content"),
        ({"content": "  \n\t\n"}, "content"),
        ({"content": "echo\x00\n"}, "content"),
        ({"version": "1.0 beta"}, "version"),
        ({"status": "retired"}, "status"),
        ({"memory_mb": 1}, "memory_mb"),
        ({"cpus": 0}, "cpus"),
        ({"timeout_seconds": 0}, "timeout_seconds"),
        ({"timeout_seconds": 10**9}, "timeout_seconds"),
        ({"parameters": {"1BAD": "x"}}, "parameters.1BAD"),
        ({"parameters": {"HOME": "x"}}, "parameters.HOME"),
        ({"parameters": [{"name": "N", "type": "integer", "default": "ten"}]}, "parameters.N"),
        ({"parameters": "ENV=prod"}, "parameters"),
        ({"unexpected": 1}, "unexpected"),
    ],
)
async def test_invalid_input_is_422_naming_the_field(
    reader: Reader, overrides: dict[str, Any], field: str
) -> None:
    client, operator = reader.client, await reader.person(Role.operator)
    r = await client.post("/api/v1/scripts", json={**SEED_BODY, **overrides}, headers=operator.headers)
    assert r.status_code == 422, r.text
    fields = [e["field"] for e in r.json()["errors"]]
    assert any(f == field or f.startswith(field + ".") for f in fields), fields
    assert r.json()["detail"]
    assert (await client.get("/api/v1/scripts", headers=operator.headers)).json()["total"] == 0


async def test_content_size_limit(
    client: httpx.AsyncClient, operator: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusal says the content's size exactly: one byte over 256 KiB read "content is 256 KiB,
    larger than the limit of 256 KiB", and a limit that is no whole number of KiB read "0 KiB"."""
    big = "#" * (256 * 1024 + 1)
    r = await client.post("/api/v1/scripts", json={**SEED_BODY, "content": big}, headers=operator.headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(
        "invalid input: content is 262145 bytes, larger than the limit of 256 KiB: split the script"
    ), r.text
    assert r.json()["errors"] == [{"field": "content", "message": "must be at most 262144 bytes, not 262145"}]
    monkeypatch.setattr(runtime.current().settings, "max_script_bytes", 1000)
    over = {**SEED_BODY, "content": "#" * 1001}
    r = await client.post("/api/v1/scripts", json=over, headers=operator.headers)
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(
        "invalid input: content is 1001 bytes, larger than the limit of 1000 bytes"
    ), r.text
    assert (await client.get("/api/v1/scripts", headers=operator.headers)).json()["total"] == 0


async def test_typed_parameters_round_trip(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    typed = [
        {"name": "COUNT", "type": "integer", "default": 3, "description": "How many"},
        {"name": "DRY_RUN", "type": "boolean", "default": "false"},
        {"name": "REGION", "type": "choice", "options": ["eu", "us"], "required": True},
    ]
    script = await create(client, operator, parameters=typed)
    params = script["parameters"]
    assert list(params) == ["COUNT", "DRY_RUN", "REGION"]
    assert params["DRY_RUN"] == {
        "type": "boolean",
        "required": False,
        "default": False,
        "description": "",
        "options": [],
    }
    assert params["REGION"]["options"] == ["eu", "us"] and params["REGION"]["required"] is True
    assert script["parameter_defaults"] == {"COUNT": 3, "DRY_RUN": False, "REGION": None}
    # What GET returns is accepted back unchanged: no new version.
    r = await client.put(
        f"/api/v1/scripts/{script['id']}", json={"parameters": params}, headers=operator.headers
    )
    assert r.status_code == 200 and r.json()["current_version"] == 1


async def test_concurrent_edit_is_409(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    sid = (await create(client, operator))["id"]
    ok = await client.put(
        f"/api/v1/scripts/{sid}", json={"content": "echo a\n", "base_version": 1}, headers=operator.headers
    )
    assert ok.status_code == 200
    stale = await client.put(
        f"/api/v1/scripts/{sid}", json={"content": "echo b\n", "base_version": 1}, headers=operator.headers
    )
    assert stale.status_code == 409
    assert "version 2" in stale.json()["detail"]
    # The field is named, as when the two edits race (it used to be `errors: []`).
    assert [e["field"] for e in stale.json()["errors"]] == ["base_version"], stale.text


async def test_ids_out_of_range_and_missing(client: httpx.AsyncClient, viewer: LoggedIn) -> None:
    assert (await client.get("/api/v1/scripts/99", headers=viewer.headers)).status_code == 404
    r = await client.get(f"/api/v1/scripts/{2**40}", headers=viewer.headers)
    assert r.status_code == 422
    r = await client.get("/api/v1/scripts/1/diff", params={"from": 1}, headers=viewer.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "to"


@pytest.mark.parametrize("part", ["schedules", "webhooks", "approval", "chains", "secrets"])
async def test_parts_of_a_missing_or_deleted_script_are_404(
    client: httpx.AsyncClient, operator: LoggedIn, viewer: LoggedIn, part: str
) -> None:
    """A script's schedules, webhooks and approval policy of a script id that names nothing (or a
    deleted script) are a 404, as its chains and secrets are (they were an empty list or null:
    a mistyped id read as "none set")."""
    policy = {"required": 1, "expires_after_hours": 24}
    gone = await create(client, operator, name="gone")
    url = f"/api/v1/scripts/{gone['id']}"
    assert (await client.put(f"{url}/approval", json=policy, headers=operator.headers)).is_success
    assert (await client.delete(url, headers=operator.headers)).status_code == 204
    for script_id in (gone["id"], 999999):
        r = await client.get(f"/api/v1/scripts/{script_id}/{part}", headers=viewer.headers)
        assert r.status_code == 404, r.text
        assert r.json()["detail"] == f"this script was not found: {GONE_WHY}"
    kept = await create(client, operator, name="kept")
    r = await client.get(f"/api/v1/scripts/{kept['id']}/{part}", headers=viewer.headers)
    assert r.status_code == 200


async def test_the_approvals_of_a_missing_run_are_404(client: httpx.AsyncClient, viewer: LoggedIn) -> None:
    r = await client.get("/api/v1/executions/999999/approvals", headers=viewer.headers)
    assert r.status_code == 404 and r.json()["detail"] == f"this execution was not found: {GONE_WHY}"


async def test_viewer_reads_but_cannot_write(
    client: httpx.AsyncClient, operator: LoggedIn, viewer: LoggedIn
) -> None:
    sid = (await create(client, operator))["id"]
    assert (await client.get(f"/api/v1/scripts/{sid}", headers=viewer.headers)).status_code == 200
    r = await client.put(f"/api/v1/scripts/{sid}", json={"description": "x"}, headers=viewer.headers)
    assert r.status_code == 403
    assert "viewer" in r.json()["detail"]


async def test_concurrent_writes_never_500(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    first = (await create(client, operator, name="first"))["id"]
    second = (await create(client, operator, name="second"))["id"]
    renames = await asyncio.gather(
        *(
            client.put(
                f"/api/v1/scripts/{sid}", json={"name": "taken", "tags": ["x"]}, headers=operator.headers
            )
            for sid in (first, second)
        )
    )
    assert sorted(r.status_code for r in renames) == [200, 409], [r.text for r in renames]

    edits = await asyncio.gather(
        *(
            client.put(f"/api/v1/scripts/{first}", json={"content": f"echo {n}\n"}, headers=operator.headers)
            for n in range(4)
        )
    )
    assert {r.status_code for r in edits} <= {200, 409}, [r.text for r in edits]
    versions = (await client.get(f"/api/v1/scripts/{first}/versions", headers=operator.headers)).json()
    numbers = [v["number"] for v in versions["items"]]
    assert numbers == list(range(len(numbers), 0, -1)), "versions stay consecutive"
    assert len(numbers) == 1 + sum(r.status_code == 200 for r in edits)


FIELD_CRLF = 'echo one\r\nX=5\r\necho "x is $X."\r\n'


@pytest.mark.usefixtures("patient_linters")
async def test_yaml_line_breaks_an_editor_does_not_show_become_lf_in_playbooks(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """YAML starts a line at NEL, U+2028 and U+2029, where the editor shows none: a task the
    editor showed as one line ran as two, and a playbook was refused as "line 6: invalid YAML"
    in a text the editor showed as 4 lines. They become LF with a notice (Ansible read them as
    line breaks anyway); other script types keep them as characters."""
    playbook = "- hosts: localhost\n  gather_facts: false\n  tasks:\n    - debug:{}        msg: hi\n"
    for char in ("\u2028", "\u2029", "\x85"):
        script = await create(
            client,
            operator,
            name=f"yaml-break-{ord(char)}",
            script_type="ansible",
            content=playbook.format(char),
        )
        assert script["content"] == playbook.format("\n"), script["content"]
        assert [n["code"] for n in script["notices"]] == ["unicode-line-breaks"]
    script = await create(
        client, operator, name="py-break", script_type="python", content='print("a\u2028b")\n'
    )
    assert script["content"] == 'print("a\u2028b")\n' and script["notices"] == []


@pytest.mark.usefixtures("patient_linters")
async def test_windows_line_endings_and_bom_are_normalised_with_notices(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    script = await create(client, operator, name="from-windows", content="\ufeff#!/bin/bash\r\n" + FIELD_CRLF)
    assert script["content"] == '#!/bin/bash\necho one\nX=5\necho "x is $X."\n'
    assert [n["code"] for n in script["notices"]] == ["byte-order-mark", "crlf-line-endings"]
    assert "4 Windows line endings" in script["notices"][1]["message"]
    sid = script["id"]
    stored = (await client.get(f"/api/v1/scripts/{sid}", headers=operator.headers)).json()
    assert stored["content"] == script["content"]

    # The field report's if/then block with CRLF: saved, not "unexpected end of file".
    block = "if true; then\r\n  echo yes\r\nfi\r\n"
    r = await client.put(f"/api/v1/scripts/{sid}", json={"content": block}, headers=operator.headers)
    assert r.status_code == 200, r.text
    assert r.json()["content"] == "if true; then\n  echo yes\nfi\n" and r.json()["current_version"] == 2

    # Re-sending the stored content with CRLF endings is no change: no new version.
    r = await client.put(
        f"/api/v1/scripts/{sid}", json={"content": block, "base_version": 2}, headers=operator.headers
    )
    assert r.status_code == 200 and r.json()["current_version"] == 2
    assert [n["code"] for n in r.json()["notices"]] == ["crlf-line-endings"]

    # Old Mac (lone CR) and mixed endings, in other script types.
    for body, expected in [
        (
            {"script_type": "python", "content": "import sys\rprint(sys.argv)\r\n"},
            "import sys\nprint(sys.argv)\n",
        ),
        (
            {"script_type": "ansible", "content": "- hosts: all\r\n  tasks: []\r"},
            "- hosts: all\n  tasks: []\n",
        ),
        ({"script_type": "terraform", "content": '\ufeffvariable "x" {}\r\n'}, 'variable "x" {}\n'),
    ]:
        r = await client.put(f"/api/v1/scripts/{sid}", json=body, headers=operator.headers)
        assert r.status_code == 200, r.text
        assert r.json()["content"] == expected, body
        assert r.json()["notices"], body


@pytest.mark.usefixtures("patient_linters")
async def test_a_clean_save_has_no_notices_and_lists_its_linters(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    script = await create(client, operator, name="clean", content="#!/bin/bash\necho 'ok'\n")
    assert script["notices"] == [] and script["lint"] == []
    assert script["linters"] == [{"tool": "shellcheck", "status": "ran", "detail": ""}]


@pytest.mark.usefixtures("patient_linters")
async def test_linter_findings_are_warnings_with_lines(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    script = await create(client, operator, name="linted", content="#!/bin/bash\necho $1\nunused=1\n")
    assert script["current_version"] == 1, "linter findings never refuse a save"
    lint = {(f["tool"], f["rule"], f["line"], f["column"]) for f in script["lint"]}
    assert {("shellcheck", "SC2086", 2, 6), ("shellcheck", "SC2034", 3, 1)} <= lint
    python = await create(
        client, operator, name="py-linted", script_type="python", content="import os\nprint(1)\n"
    )
    assert [(f["rule"], f["line"], f["column"]) for f in python["lint"]] == [("F401", 1, 8)]
    assert python["linters"][0]["tool"] == "ruff"
    # A syntax error still refuses: the compiler's, which ast.parse alone let through.
    r = await client.post(
        "/api/v1/scripts",
        json={**SEED_BODY, "name": "py-bad", "script_type": "python", "content": "print(1)\nreturn 2\n"},
        headers=operator.headers,
    )
    assert r.status_code == 422 and "line 2" in r.json()["detail"]


async def test_rollback_normalises_old_content(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    """A version stored before normalisation existed is normalised when it is rolled back to."""
    sid = (await create(client, operator, name="legacy"))["id"]
    await client.put(f"/api/v1/scripts/{sid}", json={"content": "echo two\n"}, headers=operator.headers)
    async with runtime.current().db.session() as session:
        from sqlmodel import col, select

        from opscraft.db.models import ScriptVersion

        version = (
            await session.exec(
                select(ScriptVersion).where(
                    col(ScriptVersion.script_id) == sid, col(ScriptVersion.number) == 1
                )
            )
        ).one()
        version.content = "echo one\r\n"
        await session.commit()
    r = await client.post(f"/api/v1/scripts/{sid}/rollback/1", headers=operator.headers)
    assert r.status_code == 200, r.text
    assert r.json()["content"] == "echo one\n" and r.json()["notices"][0]["code"] == "crlf-line-endings"


@IN_MODULE_LOOP
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"tags": ["x" * 51]}, "each tag must be at most 50 characters, not 51"),  # was "at most 50 items"
        (
            {"tags": [f"t{i}" for i in range(21)]},
            "must have at most 20 tags, not 21",
        ),  # was "at most 20 tags"
        # JSON's NaN and Infinity literals (which Python's parser takes): was "less than or equal to 64"
        ('"cpus": NaN', "must be a finite number (NaN, Infinity and numbers beyond 1.8e308 are not)"),
        ('"cpus": Infinity', "must be a finite number (NaN, Infinity and numbers beyond 1.8e308 are not)"),
        ({"cpus": "NaN"}, "must be a number (it is text)"),  # strict bodies
    ],
)
async def test_tag_and_cpu_bounds_say_what_is_wrong(
    reader: Reader, overrides: dict[str, Any] | str, message: str
) -> None:
    client, operator = reader.client, await reader.person(Role.operator)
    if isinstance(overrides, str):  # a literal JSON encoders refuse to write
        body = json.dumps(SEED_BODY)[:-1] + ", " + overrides + "}"
        headers = {**operator.headers, "Content-Type": "application/json"}
        r = await client.post("/api/v1/scripts", content=body, headers=headers)
    else:
        r = await client.post("/api/v1/scripts", json={**SEED_BODY, **overrides}, headers=operator.headers)
    assert r.status_code == 422, r.text
    assert [e["message"] for e in r.json()["errors"]] == [message], r.text


async def test_tags_differing_only_in_case_are_one_tag(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    body = {**SEED_BODY, "tags": ["Prod", "prod", " PROD ", "web"]}
    r = await client.post("/api/v1/scripts", json=body, headers=operator.headers)
    assert r.status_code == 201, r.text
    assert r.json()["tags"] == ["Prod", "web"]


async def test_a_tag_is_one_tag_across_scripts_whatever_its_case(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """Scripts tagged `Prod`, `PROD` and `prod` in full-width letters (U+FF50...) carry one tag
    (compared as names are: NFKC, then case folding; `Straße` is `STRASSE`): the filter finds all
    of them whatever spelling is asked, and the filter's choices list it once (the first spelling
    in code point order)."""
    wide = "\uff50\uff52\uff4f\uff44"  # "prod" in full-width letters
    for i, tag in enumerate(["Prod", "PROD", wide, "Straße", "STRASSE", "web"]):
        body = {**SEED_BODY, "name": f"tagged-{i}", "tags": [tag]}
        assert (await client.post("/api/v1/scripts", json=body, headers=operator.headers)).status_code == 201
    for asked, found in (("prod", 3), ("PROD", 3), (wide, 3), ("strasse", 2), ("Straße", 2), ("web", 1)):
        r = await client.get("/api/v1/scripts", params={"tag": asked}, headers=operator.headers)
        assert r.json()["total"] == found, (asked, r.text)
    async with runtime.current().db.session() as session:
        user = await session.get(User, operator.id)
        assert await scripts.tags_in_use(session, Actor(user)) == ["PROD", "STRASSE", "web"]


BAD_PARAMETER = [{"name": "9bad name", "type": "string"}]


async def test_create_names_every_problem_in_one_422(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    """Field errors of the body and the parameter, syntax and timeout checks: one answer."""
    body = {
        **SEED_BODY,
        "name": "",
        "memory_mb": -5,
        "content": "#!/bin/bash\nif then\n",
        "parameters": BAD_PARAMETER,
        "timeout_seconds": 10**9,
    }
    r = await client.post("/api/v1/scripts", json=body, headers=operator.headers)
    assert r.status_code == 422, r.text
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {"name", "memory_mb", "content", "parameters.9bad name", "timeout_seconds"}, r.text
    assert "name:" in r.json()["detail"] and "parameters.9bad name" in r.json()["detail"]
    # The type refused too: the parameters are still checked, alone.
    r = await client.post(
        "/api/v1/scripts",
        json={**SEED_BODY, "name": "", "script_type": "cobol", "parameters": BAD_PARAMETER},
        headers=operator.headers,
    )
    assert r.status_code == 422, r.text
    assert {e["field"] for e in r.json()["errors"]} == {"name", "script_type", "parameters.9bad name"}
    assert (await client.get("/api/v1/scripts", headers=operator.headers)).json()["total"] == 0


async def test_update_names_every_problem_in_one_422(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    script = await create(client, operator)
    r = await client.put(
        f"/api/v1/scripts/{script['id']}",
        json={"name": "", "memory_mb": -5, "parameters": BAD_PARAMETER},
        headers=operator.headers,
    )
    assert r.status_code == 422, r.text
    assert {e["field"] for e in r.json()["errors"]} == {"name", "memory_mb", "parameters.9bad name"}
    stored = (await client.get(f"/api/v1/scripts/{script['id']}", headers=operator.headers)).json()
    assert stored["name"] == "deploy-app" and stored["current_version"] == 1


@IN_MODULE_LOOP
@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("timeout_seconds", "must be a whole number (it is empty, a JSON null)"),
        ("memory_mb", "must be a whole number (it is empty, a JSON null)"),
        ("cpus", "must be a number (it is empty, a JSON null)"),
        ("network_enabled", "must be true or false, not null"),
        ("viewers_choose_run_options", "must be true or false, not null"),
    ],
)
async def test_a_null_run_setting_is_refused_not_dropped(reader: Reader, field: str, message: str) -> None:
    """An update dropped the null and kept the stored value (the editor's emptied Timeout box
    said "Saved" and changed nothing); a new script took the default unasked."""
    client, operator = reader.client, await reader.person(Role.operator)
    created = await client.post(
        "/api/v1/scripts", json={**SEED_BODY, "name": f"null-{field}", field: None}, headers=operator.headers
    )
    assert created.status_code == 422, created.text
    assert created.json()["errors"][0]["message"].startswith(message), created.text
    script = await reader.rows(
        "null-run-settings", lambda: create(client, operator, name="null-run-settings")
    )
    r = await client.put(f"/api/v1/scripts/{script['id']}", json={field: None}, headers=operator.headers)
    assert r.status_code == 422, r.text
    assert [e["field"] for e in r.json()["errors"]] == [field], r.text
    assert r.json()["errors"][0]["message"].startswith(message), r.text
