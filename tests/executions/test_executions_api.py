"""The executions API on SQLite and PostgreSQL: the seed's shapes, filters, output, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from opscraft import runtime
from opscraft.db import clock
from opscraft.db.models import Execution, User
from opscraft.db.models.executions import ExecutionStatus
from opscraft.services import executions
from opscraft.services.actor import Actor
from opscraft.services.errors import GONE_WHY
from opscraft.services.parameters import BLANK_REQUIRED
from tests.conftest import PASSWORD, LoggedIn
from tests.executions.conftest import make_script, output, run, start, wait_for


async def test_seed_create_get_and_list(client: httpx.AsyncClient, viewer: LoggedIn, admin: LoggedIn) -> None:
    script_id = await make_script(
        client, admin, 'echo "$ENV $VERSION"\n', parameters={"ENV": "dev", "VERSION": "1"}
    )
    response = await client.post(
        "/api/v1/executions",
        json={
            "script_id": script_id,
            "parameters": {"ENV": "production", "VERSION": "2.0.1"},
            "runner": "local",
        },
        headers=viewer.headers,
    )
    assert response.status_code == 202, response.text
    created = response.json()
    assert created["triggered_by_name"] == "viewer"
    # `running` when a consumer thread of this process took it in its submission (SQLite, a
    # free thread: `Executor.take`), with the claim's worker and start; `queued` otherwise.
    claimed = created["status"] == "running"
    assert claimed or created["status"] == "queued", created
    assert (created["worker_id"] is not None) == claimed == (created["started_at"] is not None)
    assert created["parameters"] == {"ENV": "production", "VERSION": "2.0.1"}
    final = await wait_for(client, viewer, created["id"])
    assert final["status"] == "success" and final["exit_code"] == 0
    assert final["output_bytes"] == len("production 2.0.1\n")
    assert final["duration_seconds"] is not None and final["duration_seconds"] >= 0
    assert final["started_at"] >= final["queued_at"] and final["finished_at"] >= final["started_at"]
    listed = (
        await client.get(
            "/api/v1/executions", params={"script_id": script_id, "limit": 50}, headers=viewer.headers
        )
    ).json()
    assert listed["total"] == 1 and listed["items"][0]["id"] == created["id"]
    audit = await client.get("/api/v1/audit", params={"action": "execution.create"}, headers=admin.headers)
    details = audit.json()["items"][0]["details"]
    assert details["parameters"] == ["ENV", "VERSION"] and "production" not in str(details)


async def test_filters_and_pagination(client: httpx.AsyncClient, viewer: LoggedIn, admin: LoggedIn) -> None:
    ok_id = await make_script(client, admin, "true\n")
    bad_id = await make_script(client, admin, "exit 1\n")
    mine = [await start(client, viewer, ok_id, "local") for _ in range(3)]
    theirs = await start(client, admin, bad_id, "local")
    for e in [*mine, theirs]:
        await wait_for(client, admin, e["id"])

    async def ids(**params: object) -> tuple[list[int], int]:
        r = await client.get("/api/v1/executions", params=params, headers=viewer.headers)
        assert r.status_code == 200, r.text
        return [e["id"] for e in r.json()["items"]], r.json()["total"]

    assert await ids(status="failed") == ([theirs["id"]], 1)
    assert await ids(user_id=viewer.id) == ([e["id"] for e in reversed(mine)], 3)
    assert await ids(user_id=viewer.id, skip=1, limit=1) == ([mine[1]["id"]], 3)
    assert (await ids(status="success"))[1] == 3
    now = datetime.now(UTC)
    assert (await ids(since=(now - timedelta(minutes=5)).isoformat()))[1] == 4
    assert (await ids(until=(now - timedelta(minutes=5)).isoformat()))[1] == 0
    r = await client.get("/api/v1/executions", params={"status": "done"}, headers=viewer.headers)
    assert r.status_code == 422 and "pending" in r.json()["detail"] and "timed_out" in r.json()["detail"]


@pytest.mark.parametrize("engine_settings", [{"OPSCRAFT_WORKERS": 1}])
async def test_pending_is_an_alias_of_queued(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    script_id = await make_script(client, admin, "sleep 60\n")
    blocker = await start(client, admin, script_id, "local")
    await wait_for(client, admin, blocker["id"], {"running"})
    waiting = [(await start(client, admin, script_id, "local"))["id"] for _ in range(2)]
    for status in ("pending", "queued"):
        page = (
            await client.get("/api/v1/executions", params={"status": status}, headers=admin.headers)
        ).json()
        assert sorted(e["id"] for e in page["items"]) == waiting and page["total"] == 2
    for execution_id in [*waiting, blocker["id"]]:
        await client.post(f"/api/v1/executions/{execution_id}/cancel", headers=admin.headers)


async def _actor(who: LoggedIn) -> Actor:
    async with runtime.current().db.session() as session:
        return Actor(await session.get(User, who.id))


async def test_a_required_text_parameter_of_blanks_only_is_refused_naming_it(
    client: httpx.AsyncClient, viewer: LoggedIn, admin: LoggedIn
) -> None:
    """ "   " for a required text parameter ran the script with a value of spaces (a new user's
    find): refused as missing, naming the parameter; "" stays "is required"."""
    schema = [{"name": "TARGET", "type": "string", "required": True}]
    script_id = await make_script(client, admin, "true\n", parameters=schema)
    for blank in ("   ", "\t\n", "\u00a0", "\u200b", "\u0301", "\u3164"):
        r = await client.post(
            "/api/v1/executions",
            json={"runner": "local", "script_id": script_id, "parameters": {"TARGET": blank}},
            headers=viewer.headers,
        )
        assert r.status_code == 422, r.text
        fields = {e["field"]: e["message"] for e in r.json()["errors"]}
        assert fields == {"parameters.TARGET": BLANK_REQUIRED}
    listed = (await client.get(f"/api/v1/executions?script_id={script_id}", headers=admin.headers)).json()
    assert listed["total"] == 0


async def test_bad_requests_say_what_to_fix(
    client: httpx.AsyncClient, viewer: LoggedIn, admin: LoggedIn
) -> None:
    schema = [
        {"name": "COUNT", "type": "integer", "required": True},
        {"name": "MODE", "type": "choice", "options": ["fast", "safe"], "default": "safe"},
    ]
    script_id = await make_script(client, admin, "true\n", parameters=schema)

    async def post(body: dict[str, object]) -> httpx.Response:
        return await client.post(
            "/api/v1/executions", json={"runner": "local", **body}, headers=viewer.headers
        )

    r = await post({"script_id": script_id, "parameters": {"MODE": "reckless", "EXTRA": 1}})
    assert r.status_code == 422
    fields = {e["field"]: e["message"] for e in r.json()["errors"]}
    assert fields == {
        "parameters.COUNT": "is required",
        "parameters.MODE": "must be one of: fast, safe",
        "parameters.EXTRA": "unknown parameter: this script does not declare it",
    }
    assert "reckless" not in r.text
    r = await post({"script_id": script_id, "parameters": {"COUNT": "many"}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "parameters.COUNT"
    assert (await post({"script_id": 999_999})).status_code == 404
    assert (await post({"script_id": script_id, "runner": "ssh"})).status_code == 422
    assert (await post({"script_id": "one"})).status_code == 422
    assert (await post({"script_id": script_id, "parameters": [1, 2]})).status_code == 422
    assert (
        await post({"script_id": script_id, "parameters": {"COUNT": 1}, "colour": "red"})
    ).status_code == 422

    draft = await make_script(client, admin, "true\n", status="draft")
    r = await post({"script_id": draft})
    assert r.status_code == 409 and "only active scripts can be executed" in r.json()["detail"]
    await client.delete(f"/api/v1/scripts/{draft}", headers=admin.headers)
    assert (await post({"script_id": draft})).status_code == 404

    for bad in ({"limit": 0}, {"limit": 10_000}, {"skip": -1}, {"since": "yesterday"}):
        assert (await client.get("/api/v1/executions", params=bad, headers=viewer.headers)).status_code == 422
    assert (await client.get("/api/v1/executions/424242", headers=viewer.headers)).status_code == 404
    assert (await client.get("/api/v1/executions/0/logs", headers=viewer.headers)).status_code == 422


@pytest.mark.parametrize(
    "engine_settings", [{"OPSCRAFT_LOCAL_RUNNER": False, "OPSCRAFT_LOCAL_RUNNER_ROLE": None}]
)
async def test_local_runner_needs_an_admin(
    client: httpx.AsyncClient, viewer: LoggedIn, operator: LoggedIn, admin: LoggedIn
) -> None:
    """Enabled by an admin, and then only for the roles `local_runner_role` allows (operators)."""
    script_id = await make_script(client, admin, "echo local\n")
    body = {"script_id": script_id, "runner": "local"}
    r = await client.post("/api/v1/executions", json=body, headers=viewer.headers)
    assert r.status_code == 409 and "an admin can enable it" in r.json()["detail"]
    r = await client.put("/api/v1/settings", json={"local_runner_enabled": True}, headers=admin.headers)
    assert r.json()["local_runner_role"] == "operator"
    r = await client.post("/api/v1/executions", json=body, headers=viewer.headers)
    assert r.status_code == 403, r.text
    assert "only operators and admins may run scripts on the local runner" in r.json()["detail"]
    assert "master key" in r.json()["detail"]
    assert "ask one of the operators and admins to run it" in r.json()["detail"]
    for who in (operator, admin):
        r = await client.post("/api/v1/executions", json=body, headers=who.headers)
        assert r.status_code == 202, r.text
        assert (await wait_for(client, who, r.json()["id"]))["status"] == "success"
    r = await client.put("/api/v1/settings", json={"local_runner_role": "root"}, headers=admin.headers)
    assert r.status_code == 422, r.text
    r = await client.put("/api/v1/settings", json={"local_runner_role": "viewer"}, headers=operator.headers)
    assert r.status_code == 403, r.text
    r = await client.put("/api/v1/settings", json={"local_runner_role": "viewer"}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["local_runner_role"] == "viewer"
    r = await client.post("/api/v1/executions", json=body, headers=viewer.headers)
    assert r.status_code == 202, r.text
    assert (await wait_for(client, viewer, r.json()["id"]))["status"] == "success"
    await client.put("/api/v1/settings", json={"local_runner_role": "admin"}, headers=admin.headers)
    r = await client.post("/api/v1/executions", json=body, headers=operator.headers)
    assert r.status_code == 403 and "only admins may" in r.json()["detail"], r.text
    # the way forward names who may: not "an operator", who may not either
    assert "ask one of the admins to run it" in r.json()["detail"], r.text


@pytest.fixture
def docker_unreachable(monkeypatch: pytest.MonkeyPatch) -> None:
    """The worker started after this sees no Docker engine (a socket that does not exist)."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")


@pytest.mark.parametrize("engine_settings", [{"OPSCRAFT_LOCAL_RUNNER_ROLE": None}])
async def test_viewer_without_docker_is_told_why_the_local_runner_is_not_for_them(
    docker_unreachable: None, client: httpx.AsyncClient, viewer: LoggedIn, operator: LoggedIn
) -> None:
    """A local-runner-only setup: a viewer's run (no runner named) is refused with the reason."""
    script_id = await make_script(client, operator, "echo local\n")
    r = await client.post("/api/v1/executions", json={"script_id": script_id}, headers=viewer.headers)
    assert r.status_code == 403, r.text
    detail = r.json()["detail"]
    assert "Docker engine is not reachable" in detail and "local_runner_role" in detail, detail
    r = await client.post("/api/v1/executions", json={"script_id": script_id}, headers=operator.headers)
    assert r.status_code == 202 and r.json()["runner"] == "local", r.text
    r = await client.get("/api/v1/executions", headers=operator.headers)
    assert r.json()["total"] == 1


async def test_logs_are_ranged_and_streams_kept_apart(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    script = 'for i in 1 2 3; do echo "out $i"; echo "err $i" >&2; sleep 0.12; done\n'
    final, _ = await run(client, admin, script, "local")
    assert final["status"] == "success"
    assert await output(client, admin, final["id"], "stdout") == "out 1\nout 2\nout 3\n"
    assert await output(client, admin, final["id"], "stderr") == "err 1\nerr 2\nerr 3\n"
    first = (
        await client.get(f"/api/v1/executions/{final['id']}/logs", params={"limit": 2}, headers=admin.headers)
    ).json()
    assert (
        [c["seq"] for c in first["items"]] == [1, 2] and first["next_offset"] == 2 and not first["complete"]
    )
    rest = (
        await client.get(
            f"/api/v1/executions/{final['id']}/logs", params={"offset": 2}, headers=admin.headers
        )
    ).json()
    assert rest["items"][0]["seq"] == 3 and rest["complete"]


async def test_ansi_and_utf8_split_across_chunks(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    script = "printf '\\033[31mred\\033[0m \\342\\202'\nsleep 0.3\nprintf '\\254 \\377 end\\n'\n"
    final, text = await run(client, admin, script, "local")
    assert final["status"] == "success"
    assert text == "\x1b[31mred\x1b[0m € \ufffd end\n"


async def test_the_whole_log_downloads_as_plain_text(
    client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn
) -> None:
    """Field report: the API had no plain-text log (only `/logs`, JSON pages of chunks; the page's
    download needs a browser session): a CI job could not `curl` a run's log into a file as
    Rundeck's and AWX's APIs allow. The colour sequence here is cut between two stored chunks."""
    script = "printf 'one\\n\\033[3'\nsleep 0.3\nprintf '1mred\\033[0m\\n'\necho two >&2\n"
    final, text = await run(client, admin, script, "local")
    assert final["status"] == "success"
    assert text == "one\n\x1b[31mred\x1b[0m\ntwo\n", "the sequence is stored as written"
    chunks = (await client.get(f"/api/v1/executions/{final['id']}/logs", headers=admin.headers)).json()
    assert any(c["content"].endswith("\x1b[3") for c in chunks["items"]), "the test needs it cut"
    r = await client.get(f"/api/v1/executions/{final['id']}/output.log", headers=viewer.headers)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "text/plain; charset=utf-8"
    assert r.headers["content-disposition"] == f'attachment; filename="execution-{final["id"]}.log"'
    assert r.text == "one\nred\ntwo\n"
    missing = await client.get("/api/v1/executions/987654/output.log", headers=viewer.headers)
    assert missing.status_code == 404
    assert missing.json()["detail"] == f"this execution was not found: {GONE_WHY}"
    assert (await client.get(f"/api/v1/executions/{final['id']}/output.log")).status_code == 401


async def test_the_download_removes_every_kind_of_escape_sequence(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """The download kept all but CSI and OSC: `tput sgr0`'s `ESC(B`, cursor save/restore
    (`ESC7`, `ESC8`), keypad modes, a DCS string (here cut between two chunks) stayed in the
    file as control characters; an ESC that starts nothing stays text."""
    script = (
        "printf 'a\\033[1mbold\\033(B\\033[m \\0337x\\0338 \\033=\\033> \\033Pq#0;2'\n"
        "sleep 0.3\n"
        "printf '\\033\\\\ \\033(0lqk\\033(B \\033_apc\\033\\\\ end \\033\\n'\n"
    )
    final, text = await run(client, admin, script, "local")
    assert final["status"] == "success"
    assert text == (
        "a\x1b[1mbold\x1b(B\x1b[m \x1b7x\x1b8 \x1b=\x1b> \x1bPq#0;2\x1b\\"
        " \x1b(0lqk\x1b(B \x1b_apc\x1b\\ end \x1b\n"
    )
    chunks = (await client.get(f"/api/v1/executions/{final['id']}/logs", headers=admin.headers)).json()
    assert any(c["content"].endswith("\x1bPq#0;2") for c in chunks["items"]), "the test needs it cut"
    r = await client.get(f"/api/v1/executions/{final['id']}/output.log", headers=admin.headers)
    assert r.text == "abold x   lqk  end \x1b\n"


async def test_a_sequence_cut_in_one_stream_never_takes_the_other_streams_text(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """The download joined the chunks of both streams in `seq` order before removing escape
    sequences: stdout's colour cut after `ESC[3`, then stderr's `hello`, read as the sequence
    `ESC[3h`, so stderr's `h` was dropped from the file (and the rest of stdout's sequence, `1m`,
    was left in it as text). A cut sequence is completed from its own stream, as the page's
    terminal does (`LiveTerminal.write`)."""
    script = "printf 'one\\n\\033[3'\nsleep 0.3\necho hello >&2\nsleep 0.3\nprintf '1mred\\033[0m\\n'\n"
    final, text = await run(client, admin, script, "local")
    assert final["status"] == "success" and text == "one\n\x1b[3hello\n1mred\x1b[0m\n"
    chunks = (await client.get(f"/api/v1/executions/{final['id']}/logs", headers=admin.headers)).json()
    pairs = list(zip(chunks["items"], chunks["items"][1:], strict=False))
    assert any(a["content"].endswith("\x1b[3") and b["stream"] == "stderr" for a, b in pairs), (
        "the test needs stdout's sequence cut with stderr's output stored between its parts"
    )
    r = await client.get(f"/api/v1/executions/{final['id']}/output.log", headers=admin.headers)
    assert r.text == "one\nhello\nred\n"


async def test_nul_in_output_is_stored_as_a_replacement_character(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """`find -print0` and binary output: PostgreSQL cannot store NUL (the run ended in `error`,
    "storing the output failed"), so every backend stores U+FFFD instead."""
    final, text = await run(client, admin, "printf 'a\\0b\\n'\n", "local")
    assert final["status"] == "success", final
    assert text == "a\ufffdb\n"


@pytest.mark.parametrize("engine_settings", [{"OPSCRAFT_MAX_OUTPUT_BYTES": 5000}])
async def test_output_cap_truncates_visibly(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    final, text = await run(client, admin, "seq 1 20000\necho last >&2\nexit 4\n", "local")
    assert final["status"] == "failed" and final["exit_code"] == 4
    assert final["output_truncated"] is True and final["output_bytes"] > 100_000
    assert text.startswith("1\n2\n3\n") and "[opscraft] output truncated" in text and "5000 bytes" in text
    assert len(text.encode()) < 5000 + 300


@pytest.mark.parametrize("engine_settings", [{"OPSCRAFT_MAX_OUTPUT_BYTES": 5000}])
async def test_output_cap_cuts_between_characters(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """The cap cut the bytes of a character in half: the stored text ended in a U+FFFD the
    script never printed."""
    final, text = await run(client, admin, "printf 'a%.0s' $(seq 1 4996)\nprintf '€€'\n", "local")
    assert final["output_truncated"] is True and final["output_bytes"] == 4996 + 6
    assert text.startswith("a" * 4996 + "€\r\n\x1b[33m[opscraft] output truncated"), text[4990:5010]


async def test_dashboard_stats(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    ok_id = await make_script(client, admin, "true\n")
    bad_id = await make_script(client, admin, "false\n")
    runs = [await start(client, admin, i, "local") for i in (ok_id, ok_id, ok_id, bad_id)]
    finished = [await wait_for(client, admin, r["id"]) for r in runs]
    before = datetime.now(UTC).date()
    async with runtime.current().db.session() as session:
        stats = await executions.dashboard_stats(session, await _actor(admin))
    after = datetime.now(UTC).date()
    assert stats.counts["success"] == 3 and stats.counts["failed"] == 1 and stats.counts["queued"] == 0
    assert [e.id for e in stats.recent][:4] == [r["id"] for r in reversed(runs)]
    # Each run counts on the UTC day it finished on (all on the last day, unless they straddled
    # UTC midnight: the test runs at any hour), and the last day is the day the stats were read.
    assert len(stats.daily) == 7 and stats.daily[-1].day in {before, after}
    days = [datetime.fromisoformat(f["finished_at"]).date() for f in finished]
    ok = [f["status"] == "success" for f in finished]
    assert [(d.total, d.success) for d in stats.daily] == [
        (days.count(d.day), sum(o for day, o in zip(days, ok, strict=True) if day == d.day))
        for d in stats.daily
    ]
    assert sum(d.total for d in stats.daily) == 4 and sum(d.success for d in stats.daily) == 3


async def test_the_dashboard_day_and_a_cancel_are_in_the_database_clock(
    client: httpx.AsyncClient, admin: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run's start and end are stamped by its worker in the database's clock (`db.clock`, the
    web process's own clock corrected by PostgreSQL's offset); the dashboard's "today" and a
    cancel's end were this process's clock, so with a skewed web machine a run ended near UTC
    midnight counted on another day. Here the database is a day ahead of this process; the run
    waits for an approval (no worker takes it, and none is needed)."""
    script_id = await make_script(client, admin, "true\n")
    async with runtime.current().db.session() as session:
        waiting = Execution(
            script_id=script_id,
            script_version=1,
            script_name="waiting",
            script_type="bash",
            status=ExecutionStatus.awaiting_approval,
            triggered_by=admin.id,
        )
        session.add(waiting)
        await session.commit()
        await session.refresh(waiting)
    monkeypatch.setattr(clock, "_offset", timedelta(days=1))
    ahead = (datetime.now(UTC) + timedelta(days=1)).date()
    # Tokens end in the database's clock too: the one issued a day earlier has expired.
    login = await client.post("/api/v1/auth/login", json={"username": admin.username, "password": PASSWORD})
    assert (await client.get("/api/v1/executions", headers=admin.headers)).status_code == 401
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    r = await client.post(f"/api/v1/executions/{waiting.id}/cancel", headers=headers)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelled", r.json()
    assert datetime.fromisoformat(r.json()["finished_at"]).date() == ahead, r.json()
    async with runtime.current().db.session() as session:
        stats = await executions.dashboard_stats(session, await _actor(admin))
    assert (stats.daily[-1].day, stats.daily[-1].total) == (ahead, 1)


@pytest.mark.parametrize("engine_settings", [{"OPSCRAFT_LOCAL_RUNNER_ROLE": "viewer"}])
async def test_viewers_plan_and_apply_terraform_but_only_operators_destroy(
    client: httpx.AsyncClient, viewer: LoggedIn, operator: LoggedIn
) -> None:
    """Viewers execute scripts as written (the seed's role table); `destroy` is the inverse of
    the script, chosen at run time: operators and admins only, and confirmed (issue 12)."""
    main_tf = 'output "greeting" {\n  value = "hi"\n}\n'
    script_id = await make_script(client, operator, main_tf, script_type="terraform")
    body = {"script_id": script_id, "runner": "local"}
    for action in ("plan", "apply"):
        r = await client.post(
            "/api/v1/executions", json={**body, "terraform_action": action}, headers=viewer.headers
        )
        assert r.status_code == 202, r.text
        assert (await wait_for(client, viewer, r.json()["id"]))["status"] == "success"
    destroy = {**body, "terraform_action": "destroy", "confirm_destroy": True}
    r = await client.post("/api/v1/executions", json=destroy, headers=viewer.headers)
    assert r.status_code == 403, r.text
    assert "may plan and apply this Terraform script but not destroy" in r.json()["detail"]
    r = await client.get("/api/v1/executions", headers=operator.headers)
    assert r.json()["total"] == 2
    r = await client.post(
        "/api/v1/executions", json={**destroy, "confirm_destroy": False}, headers=operator.headers
    )
    assert r.status_code == 422 and "confirm_destroy" in r.text
    r = await client.post("/api/v1/executions", json=destroy, headers=operator.headers)
    assert r.status_code == 202, r.text
    destroyed = r.json()["id"]
    assert (await wait_for(client, operator, destroyed))["status"] == "success"
    # Run again: a destroy is confirmed again (the run page asks), and stays an operator's
    again = f"/api/v1/executions/{destroyed}/rerun"
    r = await client.post(again, headers=operator.headers)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "confirm_destroy", r.text
    r = await client.post(again, json={"confirm_destroy": True}, headers=viewer.headers)
    assert r.status_code == 403 and "not destroy" in r.json()["detail"], r.text
    r = await client.post(again, json={"confirm_destroy": True}, headers=operator.headers)
    assert r.status_code == 202 and r.json()["terraform_action"] == "destroy", r.text
    assert (await wait_for(client, operator, r.json()["id"]))["status"] == "success"


@pytest.fixture
def server_environment(monkeypatch: pytest.MonkeyPatch) -> str:
    """Variables the server process has (as a deployment would: cloud credentials, a key)."""
    marker = "server-only-4f1c9"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", marker)
    monkeypatch.setenv("OPSCRAFT_TEST_SERVER_ONLY", marker)
    return marker


PROBE = """import os
print("ENV", sorted(os.environ))
print("VALUES", any("server-only" in v for v in os.environ.values()))
for fd in sorted(int(n) for n in os.listdir("/proc/self/fd")):
    try:
        print("FD", fd, os.readlink(f"/proc/self/fd/{fd}"))
    except OSError:
        pass
"""


async def test_a_local_run_inherits_neither_the_servers_environment_nor_its_open_files(
    server_environment: str, client: httpx.AsyncClient, operator: LoggedIn, tmp_path: Path
) -> None:
    final, text = await run(client, operator, PROBE, "local", script_type="python")
    assert final["status"] == "success", text
    assert "VALUES False" in text and server_environment not in text, text
    assert "AWS_SECRET_ACCESS_KEY" not in text and "OPSCRAFT_TEST_SERVER_ONLY" not in text, text
    fds = [line.split(" ", 2) for line in text.splitlines() if line.startswith("FD ")]
    # 0: /dev/null, 1 and 2: the output pipes; the listing's own descriptor is gone when read.
    assert [int(fd) for _, fd, _ in fds] == [0, 1, 2], fds
    assert fds[0][2] == "/dev/null" and all(target.startswith("pipe:") for _, _, target in fds[1:]), fds
    assert str(tmp_path) not in "".join(target for _, _, target in fds)
