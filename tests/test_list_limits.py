"""Every list of the API pages with the `limit` docs/api.md states ("at most N"): N answers, N + 1
is a 422 naming `limit`. /scripts, /users and /secrets used to stop at 200 while the docs said 500."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import LoggedIn

DOCS = Path(__file__).resolve().parents[1] / "docs" / "api.md"
# The log of a run pages by chunks with its own, documented bound (`MAX_LOG_PAGE`).
OWN_BOUND = {"/api/v1/executions/{execution_id}/logs"}


def _documented_limit() -> int:
    found = re.search(r"Lists page with `skip` and `limit` \(at most (\d+)", DOCS.read_text())
    assert found, "docs/api.md no longer states the page bound"
    return int(found.group(1))


def _lists(app: FastAPI) -> list[tuple[str, int]]:
    """(path, maximum of `limit`) of every GET route with a `limit` query parameter."""
    found = []
    for path, item in app.openapi()["paths"].items():
        for param in item.get("get", {}).get("parameters", []):
            if param["name"] == "limit" and param["in"] == "query" and path not in OWN_BOUND:
                found.append((path, param["schema"]["maximum"]))
    return found


def test_every_list_documents_the_bound_of_the_docs(api_app: FastAPI) -> None:
    lists = _lists(api_app)
    assert len(lists) >= 6, lists
    assert {path: bound for path, bound in lists} == dict.fromkeys(dict(lists), _documented_limit())


@pytest.mark.parametrize(
    "path", ["/api/v1/scripts", "/api/v1/users", "/api/v1/secrets", "/api/v1/audit", "/api/v1/executions"]
)
async def test_the_documented_limit_answers_and_one_more_is_refused(
    client: httpx.AsyncClient, admin: LoggedIn, path: str
) -> None:
    bound = _documented_limit()
    ok = await client.get(path, params={"limit": bound}, headers=admin.headers)
    assert ok.status_code == 200, ok.text
    over = await client.get(path, params={"limit": bound + 1}, headers=admin.headers)
    assert over.status_code == 422, over.text
    assert [e["field"] for e in over.json()["errors"]] == ["limit"], over.text
