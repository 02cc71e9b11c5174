"""No 422 of the API says pydantic's stock words, and nothing is a 5xx: every request body's every
field, sent empty, blank, 10,000 characters long, as hostile text and as the wrong JSON type, is
refused in the project's own words (`services.input_words`), the ones the UI shows next to a field
(both go through `errors.input_message`); on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from opscraft.services.input_words import EMPTY_MESSAGE, STOCK_PHRASES, worded
from tests.conftest import LoggedIn

LONG = "x" * 10_000
# A null where a whole number belongs: "empty" first, as the UI sends null for a number box left empty.
NULL_INT_MESSAGE = "must be a whole number (it is empty, a JSON null)"
# Text a hostile or careless user types: markup, templates, a shell substitution, a right-to-left
# override, an emoji.
HOSTILE = ["<script>alert(1)</script>", "{{ 7*7 }}", "$(id)", "\u202eabc", "\U0001f600"]
# Routes that would end the admin's session when they accept a body.
SKIPPED = {"/api/v1/auth/logout", "/api/v1/auth/change-password", "/api/v1/auth/me/password"}


def _resolve(schema: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        schema = spec["components"]["schemas"][name]
    return schema


def _type(schema: dict[str, Any], spec: dict[str, Any]) -> str:
    schema = _resolve(schema, spec)
    for option in schema.get("anyOf", []):
        kind = _type(option, spec)
        if kind != "null":
            return kind
    return str(schema.get("type", "object" if "properties" in schema else ""))


def _nullable(schema: dict[str, Any], spec: dict[str, Any]) -> bool:
    """Whether the field takes JSON `null` (an `anyOf` with a null member, or no type at all):
    every other field is also sent `null`, which `{"script_id": null}` answered in pydantic's
    words ("Input should be a valid integer", field report h3)."""
    schema = _resolve(schema, spec)
    options = schema.get("anyOf")
    if options is not None:
        return any(_nullable(option, spec) for option in options)
    return schema.get("type") in (None, "null")


def _wrong(kind: str) -> list[Any]:
    """Values the field refuses: empty, blank and too long text where text belongs, else text."""
    if kind == "string":
        return ["", "   ", LONG, 5, ["a"], *HOSTILE]
    return ["x", LONG] if kind in ("integer", "number", "boolean", "array", "object") else []


def _cases(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    cases = []
    for path, methods in spec["paths"].items():
        if path in SKIPPED:
            continue
        for method, op in methods.items():
            content = op.get("requestBody", {}).get("content", {}).get("application/json")
            if not content:
                continue
            body = _resolve(content["schema"], spec)
            url = re.sub(r"\{[^}]+\}", "999999", path)
            for name, prop in body.get("properties", {}).items():
                wrong = _wrong(_type(prop, spec)) + ([] if _nullable(prop, spec) else [None])
                cases += [(method, url, {name: value}) for value in wrong]
    return cases


async def test_no_stock_pydantic_words(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    spec = (await client.get("/openapi.json")).json()
    cases = _cases(spec)
    assert len(cases) > 200, len(cases)  # the walk found the API's bodies
    stock: list[str] = []
    refused = 0
    for method, url, body in cases:
        r = await client.request(method, url, json=body, headers=admin.headers)
        assert r.status_code < 500, (method, url, list(body), r.text)
        if r.status_code != 422:
            continue
        refused += 1
        for error in r.json()["errors"]:
            if str(error["message"]).startswith(STOCK_PHRASES) or any(
                p in r.json()["detail"] for p in STOCK_PHRASES
            ):
                stock.append(f"{method.upper()} {url} {list(body)}: {error['field']}: {error['message']}")
    assert refused > 200, refused
    assert not stock, "\n".join(sorted(set(stock))[:40])


@pytest.mark.parametrize(
    ("path", "body", "field", "message"),
    [
        ("/api/v1/notifications/channels", {"name": "", "kind": "webhook"}, "name", EMPTY_MESSAGE),
        (
            "/api/v1/inventories",
            {"name": "inv", "content": "all:", "description": LONG},
            "description",
            "must be at most 2000 characters, not 10000",
        ),
        ("/api/v1/executions", {"script_id": None}, "script_id", NULL_INT_MESSAGE),
        (
            "/api/v1/notifications/rules",
            {"channel_id": None, "events": ["failure"]},
            "channel_id",
            NULL_INT_MESSAGE,
        ),
        (
            "/api/v1/notifications/rules",
            {"channel_id": 1, "events": []},
            "events",
            "must have at least 1 item, not 0",
        ),
    ],
)
async def test_same_fault_same_words(
    client: httpx.AsyncClient, admin: LoggedIn, path: str, body: dict[str, Any], field: str, message: str
) -> None:
    """The cases a tester found on /notifications and /inventories, in the API's words (and h3's:
    a `null` whole number said "Input should be a valid integer", an empty list "at least 1
    items")."""
    r = await client.post(path, json=body, headers=admin.headers)
    assert r.status_code == 422, r.text
    assert {"field": field, "message": message} in r.json()["errors"], r.json()


@pytest.mark.parametrize(
    ("ctx", "message"),
    [
        ({"min_length": 1, "actual_length": 0}, "must have at least 1 item, not 0"),
        ({"min_length": 2, "actual_length": 1}, "must have at least 2 items, not 1"),
        ({"max_length": 1, "actual_length": 3}, "must have at most 1 item, not 3"),
        ({"max_length": 50, "actual_length": 60}, "must have at most 50 items, not 60"),
    ],
)
def test_a_count_of_items_is_said_in_the_singular_for_one(ctx: dict[str, int], message: str) -> None:
    """Field report (h3): `POST /api/v1/notifications/rules` with `"events": []` answered
    "events: must have at least 1 items, not 0"."""
    err = {"type": "too_short" if "min_length" in ctx else "too_long", "msg": "List should have", "ctx": ctx}
    assert worded(err) == message


async def test_an_emptied_text_is_said_empty_not_short_of_an_item(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """A tester's pass (h7): `PUT /api/v1/scripts/{id}` with `"content": ""` said "content: must
    have at least 1 item, not 0": an optional text with a length rule beside a check of its own
    (`storable.Text`) is refused by pydantic as "too_short", the type of a list's."""
    body = {"name": "s", "script_type": "bash", "content": "echo one"}
    made = await client.post("/api/v1/scripts", json=body, headers=admin.headers)
    assert made.status_code == 201, made.text
    r = await client.put(f"/api/v1/scripts/{made.json()['id']}", json={"content": ""}, headers=admin.headers)
    assert r.status_code == 422, r.text
    # Said by the script's own rule since (`input_words.blank_problem`, tests/test_blank_texts.py).
    said = "must not be empty: write the script"
    assert {"field": "content", "message": said} in r.json()["errors"], r.json()
