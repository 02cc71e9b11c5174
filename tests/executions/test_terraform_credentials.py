"""The scope of a run's Terraform backend credentials, on SQLite and PostgreSQL: one state (its
script's workspace), while the run runs and no longer than the longest run, and writes only
for a run that changes the state. Runs are rows written straight to the database (their
credentials are what a worker issues for them): what is checked is the server's answer.
"""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import httpx
import pytest

from opscraft import runtime
from opscraft.db.models import Execution
from opscraft.db.models.executions import ExecutionStatus
from opscraft.db.types import utcnow
from opscraft.execution import terraform_backend
from tests.conftest import LoggedIn
from tests.executions.conftest import make_script, terraform_run_row

TF = 'output "x" {\n  value = 1\n}\n'
STATE = '{"version": 4, "serial": 1, "lineage": "l-1", "outputs": {}, "resources": []}'
LOCK = {"ID": "lock-1", "Operation": "OperationTypeApply"}


def _url(script_id: int, workspace: str = "default") -> str:
    return f"/api/v1/terraform/state/{script_id}/{workspace}"


async def _calls(client: httpx.AsyncClient, url: str, auth: tuple[str, str]) -> dict[str, httpx.Response]:
    """Every backend call of Terraform's http protocol against `url`, answered."""
    return {
        "GET": await client.get(url, auth=auth),
        "LOCK": await client.request("LOCK", f"{url}/lock", json=LOCK, auth=auth),
        "POST": await client.post(url, params={"ID": LOCK["ID"]}, content=STATE, auth=auth),
        "UNLOCK": await client.request("UNLOCK", f"{url}/lock", json=LOCK, auth=auth),
        "DELETE": await client.delete(url, auth=auth),
    }


async def _versions(client: httpx.AsyncClient, who: LoggedIn, script_id: int, workspace: str) -> Any:
    r = await client.get(
        f"/api/v1/scripts/{script_id}/terraform/states/{workspace}/versions", headers=who.headers
    )
    return r.status_code, r.json()


async def test_a_runs_credentials_open_only_its_own_workspace(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    script_id = await make_script(client, operator, TF, script_type="terraform")
    other_script = await make_script(client, operator, TF, script_type="terraform")
    _, auth = await terraform_run_row(script_id, "default")

    own = await _calls(client, _url(script_id), auth)
    assert {m: r.status_code for m, r in own.items()} == dict.fromkeys(own, 200) | {"GET": 204}, {
        m: r.text for m, r in own.items()
    }
    # Another workspace of the same script, and another script's state: neither read nor locked.
    for url in (_url(script_id, "staging"), _url(other_script)):
        answers = await _calls(client, url, auth)
        assert {r.status_code for r in answers.values()} == {401}, {m: r.text for m, r in answers.items()}
        assert "only the state of its own script and workspace" in answers["GET"].json()["detail"]
    # Nothing was created or stored there.
    assert (await _versions(client, operator, script_id, "staging"))[0] == 404
    r = await client.get(f"/api/v1/scripts/{other_script}/terraform/states", headers=operator.headers)
    assert r.status_code == 200 and r.json()["items"] == []
    # A run's credentials for another workspace are not these: they open that one only.
    _, staging = await terraform_run_row(script_id, "staging")
    assert (await client.get(_url(script_id, "staging"), auth=staging)).status_code == 204
    assert (await client.get(_url(script_id), auth=staging)).status_code == 401


@pytest.mark.parametrize("name", ["run-\u00b2", "run-\u0661", "run-" + "9" * 5000])
async def test_odd_run_user_names_are_refused(
    client: httpx.AsyncClient, operator: LoggedIn, name: str
) -> None:
    """A user name whose "id" is not ASCII digits is no run's: 401, never a 500 (a superscript
    passed str.isdigit() and failed int())."""
    script_id = await make_script(client, operator, TF, script_type="terraform")
    basic = base64.b64encode(f"{name}:pw".encode()).decode()
    r = await client.request(
        "LOCK", f"{_url(script_id)}/lock", json=LOCK, headers={"Authorization": f"Basic {basic}"}
    )
    assert r.status_code == 401, r.text
    # credentials were sent: wrong ones, not "required" (which sent the caller looking for a setting)
    assert r.json()["detail"].startswith("wrong run credentials: send the TF_HTTP_USERNAME"), r.text


OTHER_SCHEME = (
    "run credentials go as HTTP Basic (Authorization: Basic <base64 of TF_HTTP_USERNAME:TF_HTTP_PASSWORD>), "
    "not another scheme: a user's token never opens a Terraform state"
)
NOT_BASE64 = (
    "run credentials must be HTTP Basic: base64 of TF_HTTP_USERNAME:TF_HTTP_PASSWORD in UTF-8 (RFC 7617)"
)


@pytest.mark.parametrize(
    ("authorization", "detail"),
    [
        ("Bearer ocp_x", OTHER_SCHEME),
        ("Token abc", OTHER_SCHEME),
        ("Basic garbage!", NOT_BASE64),
        ("Basic " + base64.b64encode(b"\xff\xfe:pw").decode(), NOT_BASE64),
        (None, "run credentials required (TF_HTTP_USERNAME / TF_HTTP_PASSWORD)"),
    ],
)
async def test_credentials_in_another_form_are_named(
    client: httpx.AsyncClient, operator: LoggedIn, authorization: str | None, detail: str
) -> None:
    """Field report (h3): `Authorization: Bearer ...` (a user's token), or Basic credentials that
    are not base64 of UTF-8 text, answered 401 "run credentials required", as if none had been
    sent; the 401 now says which form the credentials take, never repeating the header."""
    script_id = await make_script(client, operator, TF, script_type="terraform")
    headers = {} if authorization is None else {"Authorization": authorization}
    r = await client.get(_url(script_id), headers=headers)
    assert r.status_code == 401 and r.json()["detail"] == detail, r.text
    assert "garbage" not in r.text and "ocp_x" not in r.text


@pytest.mark.parametrize("password", ["é" * 64, "\u00ff", "\uff46" * 64])
async def test_a_non_ascii_password_is_wrong_credentials(
    client: httpx.AsyncClient, operator: LoggedIn, password: str
) -> None:
    """A running run's user name with a password holding non-ASCII characters is 401 "wrong run
    credentials" on every call; it was a 500 (the comparison refused non-ASCII text)."""
    script_id = await make_script(client, operator, TF, script_type="terraform")
    _, (user, _) = await terraform_run_row(script_id)
    headers = {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}
    answers = [
        await client.get(_url(script_id), headers=headers),
        await client.request("LOCK", f"{_url(script_id)}/lock", json=LOCK, headers=headers),
    ]
    assert [r.status_code for r in answers] == [401, 401], [r.text for r in answers]
    assert all("wrong run credentials" in r.json()["detail"] for r in answers)


async def test_credentials_die_with_the_run(client: httpx.AsyncClient, operator: LoggedIn) -> None:
    script_id = await make_script(client, operator, TF, script_type="terraform")
    run_id, auth = await terraform_run_row(script_id)
    r = await client.request("LOCK", f"{_url(script_id)}/lock", json=LOCK, auth=auth)
    assert r.status_code == 200, r.text
    async with runtime.current().db.session() as session:
        execution = await session.get(Execution, run_id)
        assert execution is not None
        execution.status = ExecutionStatus.success
        execution.finished_at = utcnow()
        await session.commit()
    answers = await _calls(client, _url(script_id), auth)
    assert {r.status_code for r in answers.values()} == {403}, {m: r.text for m, r in answers.items()}
    assert "the run is over" in answers["GET"].json()["detail"]


@pytest.mark.parametrize("engine_settings", [{"OPSCRAFT_TERRAFORM_STOP_GRACE_SECONDS": 600}])
async def test_credentials_of_a_run_left_running_expire(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """A crashed worker can leave a row `running`: its credentials still end, at the longest
    run's timeout, then Terraform's graceful stop, plus a minute after the start."""
    script_id = await make_script(client, operator, TF, script_type="terraform")
    limit = runtime.current().settings.max_timeout_seconds + 600 + terraform_backend.GRACE_SECONDS
    _, auth = await terraform_run_row(script_id, started_at=utcnow() - timedelta(seconds=limit + 5))
    r = await client.get(_url(script_id), auth=auth)
    assert r.status_code == 403 and "outlived the longest run" in r.json()["detail"], r.text
    _, auth = await terraform_run_row(script_id, started_at=utcnow() - timedelta(seconds=limit - 60))
    assert (await client.get(_url(script_id), auth=auth)).status_code == 204


@pytest.mark.parametrize("engine_settings", [{"OPSCRAFT_TERRAFORM_STOP_GRACE_SECONDS": 600}])
async def test_a_run_timed_out_at_the_longest_timeout_stores_its_state_while_it_stops(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """A run timed out at OPSCRAFT_MAX_TIMEOUT_SECONDS gets SIGINT and the stop grace to write
    its state and release the lock (Terraform's graceful stop). Its credentials used to die a
    minute after the timeout whatever the grace: a provider taking longer to stop made
    Terraform's final state write a 403, and the resources it had created were in no state."""
    script_id = await make_script(client, operator, TF, script_type="terraform")
    stopping = runtime.current().settings.max_timeout_seconds + 5 * 60  # 5 minutes into the grace
    _, auth = await terraform_run_row(script_id, started_at=utcnow() - timedelta(seconds=stopping))
    answers = await _calls(client, _url(script_id), auth)
    assert {m: r.status_code for m, r in answers.items()} == dict.fromkeys(answers, 200) | {"GET": 204}, {
        m: r.text for m, r in answers.items()
    }
    status, body = await _versions(client, operator, script_id, "default")
    assert status == 200 and [v["serial"] for v in body["versions"]] == [1], body


async def test_credentials_are_bound_to_the_start_of_the_run(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """Execution ids repeat across databases (a restored copy, a staging server with the same
    SECRET_KEY): the run's start is in the password, so another run with that id gets nothing."""
    script_id = await make_script(client, operator, TF, script_type="terraform")
    run_id, _ = await terraform_run_row(script_id)
    secret_key = runtime.current().settings.secret_key
    assert secret_key
    elsewhere = terraform_backend.Scope(run_id, script_id, "default", utcnow() - timedelta(hours=1))
    auth = (terraform_backend.username(run_id), terraform_backend.password(secret_key, elsewhere))
    assert (await client.get(_url(script_id), auth=auth)).status_code == 401


@pytest.mark.parametrize("action", ["plan", None])
async def test_a_plan_runs_credentials_read_and_lock_but_never_write(
    client: httpx.AsyncClient, operator: LoggedIn, action: str | None
) -> None:
    script_id = await make_script(client, operator, TF, script_type="terraform")
    _, auth = await terraform_run_row(script_id, terraform_action=action)
    answers = await _calls(client, _url(script_id), auth)
    codes = {m: r.status_code for m, r in answers.items()}
    assert codes == {"GET": 204, "LOCK": 200, "POST": 403, "UNLOCK": 200, "DELETE": 403}, codes
    assert "never stores or purges it" in answers["POST"].json()["detail"]
    # Nothing stored: the state has no version.
    status, body = await _versions(client, operator, script_id, "default")
    assert status == 200 and body["versions"] == [] and body["state"]["locked"] is False


async def test_a_lock_is_the_runs_that_took_it_not_whoever_repeats_its_id(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """The 423 answer hands the holder's lock info, ID included, to every run that asks (as
    Terraform's protocol wants): another run of the same state repeating that ID (a plan run, whose
    credentials never write, included) used to get the lock "again", then store or purge the state
    and release the holder's lock under it while the holder was still applying."""
    script_id = await make_script(client, operator, TF, script_type="terraform")
    holder_id, holder = await terraform_run_row(script_id)
    url = _url(script_id)
    assert (await client.request("LOCK", f"{url}/lock", json=LOCK, auth=holder)).status_code == 200
    assert (await client.post(url, params={"ID": LOCK["ID"]}, content=STATE, auth=holder)).status_code == 200
    for action in ("apply", "plan"):
        _, other = await terraform_run_row(script_id, terraform_action=action)
        refused = await client.request("LOCK", f"{url}/lock", json={"ID": "lock-2"}, auth=other)
        assert refused.status_code == 423 and refused.json()["ID"] == LOCK["ID"], refused.text
        learned = {"ID": refused.json()["ID"], "Operation": "OperationTypeApply"}
        answers = {
            "LOCK": await client.request("LOCK", f"{url}/lock", json=learned, auth=other),
            "UNLOCK": await client.request("UNLOCK", f"{url}/lock", json=learned, auth=other),
        }
        if action == "apply":  # a plan run's credentials never write at all (403 above)
            answers["POST"] = await client.post(url, params={"ID": learned["ID"]}, content="{}", auth=other)
            answers["DELETE"] = await client.delete(url, params={"ID": learned["ID"]}, auth=other)
        assert {m: r.status_code for m, r in answers.items()} == dict.fromkeys(answers, 423), {
            m: r.text for m, r in answers.items()
        }
        assert all(r.json()["Info"] == f"OpsCraft execution {holder_id} (held)" for r in answers.values())
    status, body = await _versions(client, operator, script_id, "default")
    assert status == 200 and [v["number"] for v in body["versions"]] == [1], body
    assert body["state"]["current_version"] == 1, body
    assert body["state"]["locked_by_execution"] == holder_id and body["state"]["locked"], body
    # The holder itself goes on: it stores again under its ID and releases its lock.
    assert (await client.post(url, params={"ID": LOCK["ID"]}, content=STATE, auth=holder)).status_code == 200
    assert (await client.request("UNLOCK", f"{url}/lock", json=LOCK, auth=holder)).status_code == 200
    status, body = await _versions(client, operator, script_id, "default")
    assert [v["number"] for v in body["versions"]] == [2, 1] and not body["state"]["locked"], body


async def test_a_purge_is_audited_like_a_write(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn
) -> None:
    """Terraform's DELETE emptied the current state without a trace in the audit trail, while
    every POST was `terraform.state_write`: who emptied a state could not be told."""
    script_id = await make_script(client, operator, TF, script_type="terraform")
    run_id, auth = await terraform_run_row(script_id)
    assert (await client.post(_url(script_id), content=STATE, auth=auth)).status_code == 200
    r = await client.delete(_url(script_id), auth=auth)
    assert r.status_code == 200, r.text
    r = await client.get("/api/v1/audit", params={"action": "terraform.state_purge"}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["total"] == 1, r.text
    event = r.json()["items"][0]
    assert event["actor_name"] == terraform_backend.username(run_id)
    assert event["details"]["execution_id"] == run_id and event["details"]["previous_version"] == 1
    assert event["details"]["workspace"] == "default" and event["details"]["script_id"] == script_id
