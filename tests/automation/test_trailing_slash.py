"""A path sent with a trailing slash never loses a request's body to a redirect.

Field report (session 52): `POST /api/v1/hooks/<id>/<token>/` (a webhook's URL pasted with a
slash after it) answered `307` (Starlette's `redirect_slashes`). GitHub and GitLab do not follow
redirects of their deliveries, and many clients that do follow one resend a `POST` without its
body: the call was lost, and the sender's log showed a redirect, not a refusal. The rule for the
whole API (api/trailing_slash.py): the public webhook routes take the slash (the sender does not
choose the URL a person pasted); every other route answers a request with a body (any method
but `GET`/`HEAD`) `404` naming the path without it; a `GET` keeps the redirect (nothing to lose).
The clients here follow no redirect, as GitHub's deliveries do not.
"""

from __future__ import annotations

import httpx
from sqlmodel import col, select

from opscraft import runtime
from opscraft.db.models import Execution, Script
from tests.automation.test_webhooks import setup_hook
from tests.conftest import LoggedIn


async def test_a_webhook_called_with_a_trailing_slash_starts_its_run(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    _script_id, hook = await setup_hook(client, admin)
    r = await client.post(hook["url_path"] + "/", json={"ref": "refs/heads/main", "commits": [{"n": 2}]})
    assert r.status_code == 202, r.text
    async with runtime.current().db.session() as session:
        run = await session.get(Execution, r.json()["execution_id"])
        assert run is not None and run.parameters == {"BRANCH": "refs/heads/main", "COUNT": 2}
    # a wrong token is the same 404 with or without the slash (ids cannot be probed)
    wrong = f"/api/v1/hooks/{hook['id']}/not-the-token"
    for path in (wrong, wrong + "/"):
        r = await client.post(path, json={})
        assert r.status_code == 404 and hook["token"] not in r.text, r.text


async def test_a_request_with_a_body_and_a_trailing_slash_is_a_404_naming_the_path(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    body = {"name": "slashed", "script_type": "bash", "content": "true\n"}
    r = await client.post("/api/v1/scripts/", json=body, headers=admin.headers)
    assert r.status_code == 404, r.text
    assert r.json()["detail"] == (
        "no route has this path with a trailing slash: send the request to /api/v1/scripts "
        "(a redirect would lose its body)"
    )
    r = await client.post("/api/v1/scripts", json=body, headers=admin.headers)
    assert r.status_code == 201, r.text
    script_id = r.json()["id"]
    r = await client.put(f"/api/v1/scripts/{script_id}/", json={"description": "x"}, headers=admin.headers)
    assert r.status_code == 404 and f"send the request to /api/v1/scripts/{script_id} " in r.text, r.text
    r = await client.delete(f"/api/v1/scripts/{script_id}/", headers=admin.headers)
    assert r.status_code == 404, r.text
    async with runtime.current().db.session() as session:
        rows = (await session.exec(select(Script).where(col(Script.name) == "slashed"))).all()
        assert [(s.id, s.description, s.deleted_at) for s in rows] == [(script_id, "", None)]
    # a GET loses nothing: redirected as before
    r = await client.get("/api/v1/scripts/", headers=admin.headers)
    assert r.status_code == 307 and r.headers["location"].endswith("/api/v1/scripts"), r.text
    # a path no route has, with or without the slash, is the usual 404
    r = await client.post("/api/v1/nowhere/", json={}, headers=admin.headers)
    assert r.status_code == 404 and r.json()["detail"].startswith("no route has this path: check it"), r.text
