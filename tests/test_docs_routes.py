"""docs/api.md's *Every route* table against the app: the same routes, and for each the lowest
role the RBAC matrix (`tests/rbac_cases/`) lets through, so the table a user reads stays true."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import FastAPI

from opscraft.api import install_api
from opscraft.config import load_settings
from tests.rbac_cases import Case, all_cases
from tests.test_rbac_matrix import _routes

API_MD = Path(__file__).resolve().parent.parent / "docs" / "api.md"
ROW = re.compile(r"^\| `(?P<method>[A-Z]+) (?P<path>/\S+)` \| (?P<who>[^|]+) \|")

# Routes no role of the matrix passes, and what the table says instead: registration is closed
# once the first user exists (the matrix's case), and Terraform's state backend takes only a
# running run's own credentials, never a user's token.
NO_ROLE = {("POST", "/api/v1/auth/register"): "anyone"}
STATE_BACKEND = "/api/v1/terraform/state/"
# A guard that answers 405 to everyone (the route is POST only), not a route to document.
NOT_ROUTES = {("GET", "/api/v1/executions/stream")}


def _table() -> dict[tuple[str, str], str]:
    """(method, path) -> the first word of its *Who* cell, from docs/api.md's *Every route*."""
    section = API_MD.read_text(encoding="utf-8").split("\n## Every route\n", 1)[1]
    rows: dict[tuple[str, str], str] = {}
    for line in section.splitlines():
        if match := ROW.match(line):
            key = (match["method"], match["path"])
            assert key not in rows, f"{key} is listed twice"
            rows[key] = match["who"].split()[0]
    return rows


def _lowest(case: Case) -> str:
    """The table's word for the lowest role `case` expects to pass the authorization check."""
    if (case.method, case.path) in NO_ROLE:
        return NO_ROLE[(case.method, case.path)]
    if case.path.startswith(STATE_BACKEND):
        return "run"
    if case.expected["anonymous"] not in (401, 403):
        return "anyone"
    for role in ("viewer", "operator"):
        if case.expected[role] not in (401, 403):
            return f"{role}+"
    assert case.expected["admin"] not in (401, 403), case.id
    return "admin"


def test_every_route_is_in_the_table_and_nothing_else(tmp_path) -> None:
    app = FastAPI()
    install_api(app, load_settings(OPSCRAFT_DATA_DIR=tmp_path, SECRET_KEY="k" * 40))
    routes = _routes(app) - NOT_ROUTES
    table = set(_table())
    assert sorted(routes - table) == [], "routes missing from docs/api.md, *Every route*"
    assert sorted(table - routes) == [], "docs/api.md, *Every route*, lists routes that do not exist"


# The table's words from the least to the most a route asks of its caller.
_RANK = ("anyone", "run", "viewer+", "operator+", "admin")


def test_the_table_names_the_roles_the_matrix_checks() -> None:
    """A route's *Who* is the lowest role any of its cases lets through: a route checked with
    several bodies (`POST /executions`: a viewer runs a script, but not with run options its
    script keeps for its editors) is open to that role, the rest being a refusal of the body."""
    table = _table()
    lowest: dict[tuple[str, str], str] = {}
    for case in all_cases():
        key = (case.method, case.path)
        lowest[key] = min(lowest.get(key, "admin"), _lowest(case), key=_RANK.index)
    wrong = {
        f"{method} {path}": (table[(method, path)], word)
        for (method, path), word in lowest.items()
        if (method, path) in table and table[(method, path)] != word
    }
    assert wrong == {}, "route: (docs/api.md says, the RBAC matrix checks)"
