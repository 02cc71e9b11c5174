"""One text, one meaning, on SQLite and PostgreSQL: names are stored, compared and length-checked
in Unicode's NFC (`invisible.canonical`); searches compare both sides in lower case and NFC
(`db.fold`, `services/like.py`); a date and time outside years 1-9999 is refused naming the field
and the range (`instants.OUT_OF_RANGE`); a boolean sent as `null` gets one wording
(`bodies.NULL_BOOL_MESSAGE`); a NUL is refused in the same words by the API's door and by the
services the UI calls (`db.text.NUL_MESSAGE`)."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from opscraft import runtime
from opscraft.db.models import Script, User
from opscraft.db.text import NUL_MESSAGE
from opscraft.services import (
    api_tokens,
    audit,
    executions,
    instants,
    names,
    scripts,
    secrets,
    shared_inventories,
    users,
)
from opscraft.services.actor import Actor
from opscraft.services.audit import AuditQuery
from opscraft.services.bodies import NULL_BOOL_MESSAGE
from opscraft.services.errors import Invalid
from opscraft.services.scripts import ScriptQuery
from tests.conftest import LoggedIn

COMBINING = "e\u0301" * 40  # 40 letters on screen, 80 code points; NFC: 40 x U+00E9
COMPOSED = "caf\u00e9"
DECOMPOSED = "cafe\u0301"


async def _script(client: httpx.AsyncClient, who: LoggedIn, **extra: Any) -> int:
    body = {"name": f"s-{time.monotonic_ns()}", "script_type": "bash", "content": "true\n", **extra}
    r = await client.post("/api/v1/scripts", json=body, headers=who.headers)
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


# kind -> (collection URL for a script id, body for a name, 409 message of a taken name)
NAMED: dict[str, tuple[Any, Any, str | None]] = {
    "schedules": (
        lambda sid: f"/api/v1/scripts/{sid}/schedules",
        lambda name: {"name": name, "cron": "0 3 * * *"},
        names.SCHEDULE_TAKEN,
    ),
    "webhooks": (
        lambda sid: f"/api/v1/scripts/{sid}/webhooks",
        lambda name: {"name": name},
        names.WEBHOOK_TAKEN,
    ),
    "tokens": (lambda sid: "/api/v1/tokens", lambda name: {"name": name}, names.TOKEN_TAKEN),
    "channels": (
        lambda sid: "/api/v1/notifications/channels",
        lambda name: {"name": name, "kind": "webhook", "config": {"url": "https://example.com/h"}},
        names.CHANNEL_TAKEN,
    ),
}


@pytest.mark.parametrize("kind", NAMED)
async def test_a_name_is_stored_and_counted_in_nfc_and_one_spelling_is_one_name(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str, kind: str
) -> None:
    url_of, body, taken = NAMED[kind]
    url = url_of(await _script(client, admin))
    r = await client.post(url, json=body(COMBINING), headers=admin.headers)
    assert r.status_code == 201, r.text  # 80 code points typed, 40 characters: within 64
    assert r.json()["name"] == "\u00e9" * 40
    first = await client.post(url, json=body(COMPOSED), headers=admin.headers)
    assert first.status_code == 201 and first.json()["name"] == COMPOSED, first.text
    again = await client.post(url, json=body(DECOMPOSED), headers=admin.headers)
    assert again.status_code == 409 and again.json()["errors"] == [{"field": "name", "message": taken}]
    too_long = await client.post(url, json=body("e\u0301" * 65), headers=admin.headers)
    assert too_long.status_code == 422 and too_long.json()["errors"][0]["field"] == "name", too_long.text


async def test_a_full_name_and_tags_are_stored_in_nfc(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str
) -> None:
    body = {
        "username": "renee",
        "email": "renee@example.com",
        "password": "Correct-Horse-9",
        "full_name": "Rene\u0301e " + "e\u0301" * 190,  # 386 code points; 196 in NFC, within 200
        "role": "viewer",
    }
    r = await client.post("/api/v1/users", json=body, headers=admin.headers)
    assert r.status_code == 201, r.text
    assert r.json()["full_name"] == "Ren\u00e9e " + "\u00e9" * 190
    # Tags: one spelling of one tag is one tag, counted in NFC (at most 50 characters).
    sid = await _script(client, admin, tags=[COMPOSED, DECOMPOSED, "e\u0301" * 50])
    got = (await client.get(f"/api/v1/scripts/{sid}", headers=admin.headers)).json()
    assert got["tags"] == [COMPOSED, "\u00e9" * 50]


async def test_a_search_compares_canonically_equivalent_text_alike(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str
) -> None:
    """`cafe` found a description pasted decomposed (its base letters match) but not one typed
    composed: it finds neither now, and `café` in either spelling finds both."""
    for i, text in enumerate((COMPOSED, DECOMPOSED)):
        await _script(client, admin, name=f"menu-{i}", description=f"the {text} menu")
        r = await client.post(
            "/api/v1/secrets",
            json={"name": f"KEY_{i}", "value": "v", "description": text},
            headers=admin.headers,
        )
        assert r.status_code == 201, r.text
        user = {
            "username": f"user-{i}",
            "email": f"user-{i}@example.com",
            "password": "Correct-Horse-9",
            "full_name": f"Le {text}",
        }
        assert (await client.post("/api/v1/users", json=user, headers=admin.headers)).status_code == 201

    async def found(path: str, term: str, key: str) -> list[str]:
        r = await client.get(path, params={"search": term}, headers=admin.headers)
        assert r.status_code == 200, r.text
        return sorted(item[key] for item in r.json()["items"])

    lists = [("/api/v1/scripts", "name"), ("/api/v1/secrets", "name"), ("/api/v1/users", "username")]
    for path, key in lists:
        assert await found(path, "cafe", key) == [], path
        assert len(await found(path, COMPOSED, key)) == 2, path
        assert await found(path, DECOMPOSED, key) == await found(path, COMPOSED.upper(), key), path
    assert await found("/api/v1/scripts", "CAFE\u0301 MENU", "name") == ["menu-0", "menu-1"]


async def test_a_script_stored_before_the_rule_is_found_in_either_spelling(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str
) -> None:
    """A script's `search_text` saved before (decomposed) is found by `café` typed either way
    (its trigram index needs the stored column as it is); a save stores it in NFC."""
    sid = await _script(client, admin, description="old")
    async with runtime.current().db.session() as s:
        script = await s.get(Script, sid)
        assert script is not None
        script.search_text = f"{script.name}\nthe {DECOMPOSED} menu\n"
        await s.commit()
    for term in (COMPOSED, DECOMPOSED):
        r = await client.get("/api/v1/scripts", params={"search": term}, headers=admin.headers)
        assert [i["id"] for i in r.json()["items"]] == [sid], term
    r = await client.put(
        f"/api/v1/scripts/{sid}", json={"description": f"the {DECOMPOSED} menu"}, headers=admin.headers
    )
    assert r.status_code == 200, r.text
    r = await client.get("/api/v1/scripts", params={"search": "cafe"}, headers=admin.headers)
    assert r.json()["items"] == [], "saved again: in NFC"


OUT_OF_RANGE = ["10000-01-01T00:00:00Z", "+10000-01-01T00:00:00Z", "0000-01-01T00:00:00Z", "0000-01-01"]


async def test_a_time_outside_the_calendar_names_the_field_and_the_range(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str
) -> None:
    for value in [*OUT_OF_RANGE, "9999-12-31T23:59:59-14:00"]:
        r = await client.post(
            "/api/v1/tokens", json={"name": "ci", "expires_at": value}, headers=admin.headers
        )
        assert r.status_code == 422, (value, r.text)
        assert r.json()["errors"] == [{"field": "expires_at", "message": instants.OUT_OF_RANGE}], value
        for path in ("/api/v1/executions", "/api/v1/audit"):
            for field in ("since", "until"):
                r = await client.get(path, params={field: value}, headers=admin.headers)
                assert r.status_code == 422, (path, field, value, r.text)
                assert r.json()["errors"] == [{"field": field, "message": instants.OUT_OF_RANGE}], value
    assert (await client.get("/api/v1/tokens", headers=admin.headers)).json()["total"] == 0


async def test_a_boolean_sent_as_null_is_refused_in_one_wording(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str
) -> None:
    sid, target = await _script(client, admin), await _script(client, admin)
    made: dict[str, str] = {}
    creates = {
        "schedule": (f"/api/v1/scripts/{sid}/schedules", {"name": "n", "cron": "0 3 * * *"}),
        "webhook": (f"/api/v1/scripts/{sid}/webhooks", {"name": "w"}),
        "link": (f"/api/v1/scripts/{sid}/chains", {"target_script_id": target}),
        "channel": (
            "/api/v1/notifications/channels",
            {"name": "c", "kind": "webhook", "config": {"url": "https://example.com/h"}},
        ),
    }
    for what, (url, body) in creates.items():
        refused = await client.post(url, json={**body, "enabled": None}, headers=admin.headers)
        assert refused.status_code == 422, (what, refused.text)
        assert refused.json()["errors"] == [{"field": "enabled", "message": NULL_BOOL_MESSAGE}], what
        r = await client.post(url, json=body, headers=admin.headers)
        assert r.status_code == 201, (what, r.text)
        made[what] = f"{url}/{r.json()['id']}"
    r = await client.post(
        "/api/v1/notifications/rules",
        json={"channel_id": int(made["channel"].rsplit("/", 1)[1]), "events": ["failure"]},
        headers=admin.headers,
    )
    made["rule"] = f"/api/v1/notifications/rules/{r.json()['id']}"
    for what, url in made.items():
        refused = await client.put(url, json={"enabled": None}, headers=admin.headers)
        assert refused.status_code == 422, (what, refused.text)
        assert refused.json()["errors"] == [{"field": "enabled", "message": NULL_BOOL_MESSAGE}], what


async def test_a_nul_or_control_character_is_refused_alike_by_the_api_and_the_services(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str
) -> None:
    """The API's door refuses a NUL before any service; the UI calls the services directly: both
    now say `NUL_MESSAGE`. Other control characters are the services' alone."""
    r = await client.post("/api/v1/tokens", json={"name": "a\x00b"}, headers=admin.headers)
    assert r.status_code == 422 and r.json()["errors"] == [{"field": "name", "message": NUL_MESSAGE}], r.text
    r = await client.get("/api/v1/scripts", params={"search": "a\x00b"}, headers=admin.headers)
    assert r.status_code == 422 and r.json()["errors"] == [{"field": "search", "message": NUL_MESSAGE}], (
        r.text
    )
    tab = await client.post("/api/v1/tokens", json={"name": "a\tb"}, headers=admin.headers)
    assert tab.status_code == 422, tab.text

    async with runtime.current().db.session() as s:
        actor = Actor(await s.get(User, admin.id))
        said: list[tuple[str, str]] = []
        for call in (
            lambda: api_tokens.create(s, actor, "a\x00b"),
            lambda: api_tokens.create(s, actor, "a\tb"),
            lambda: scripts.list_scripts(s, actor, ScriptQuery(search="a\x00b")),
            lambda: secrets.list_secrets(s, actor, search="a\x00b"),
            lambda: audit.search(s, actor, AuditQuery(action="a\x00b")),
            lambda: executions.list_executions(s, actor, host="a\x00b"),
        ):
            with pytest.raises(Invalid) as caught:
                await call()
            said += [(d["field"], d["message"]) for d in caught.value.details or []]
    assert said[0] == ("name", NUL_MESSAGE)
    assert said[1] == ("name", tab.json()["errors"][0]["message"])
    assert said[2:] == [
        ("search", NUL_MESSAGE),
        ("search", NUL_MESSAGE),
        ("action", NUL_MESSAGE),
        ("host", NUL_MESSAGE),
    ]


async def test_the_audit_trails_actor_filter_finds_a_name_in_either_spelling(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str
) -> None:
    """A failed sign-in records the name as typed; the filter typed in the other spelling finds it."""
    r = await client.post("/api/v1/auth/login", json={"username": f"{DECOMPOSED}-x", "password": "nope-nope"})
    assert r.status_code == 401, r.text
    for typed in (f"{COMPOSED}-x", f"{DECOMPOSED}-x"):
        r = await client.get("/api/v1/audit", params={"actor_name": typed}, headers=admin.headers)
        assert r.status_code == 200 and r.json()["total"] == 1, (typed, r.text)


# A form's body with a NUL in a plain text field: (API route, body, the field).
NUL_FIELDS = [
    (
        "/api/v1/users",
        {"username": "a\x00bc", "email": "a@example.com", "password": "Correct-Horse-9"},
        "username",
    ),
    ("/api/v1/scripts", {"name": "a\x00b", "script_type": "bash", "content": "true\n"}, "name"),
    ("/api/v1/secrets", {"name": "A\x00B", "value": "v"}, "name"),
    ("/api/v1/inventories", {"name": "a\x00b", "content": "[web]\nweb1\n"}, "name"),
]


@pytest.mark.parametrize(("url", "body", "field"), NUL_FIELDS)
async def test_a_nul_in_any_text_field_reads_the_same_from_the_api_and_the_forms_models(
    client: httpx.AsyncClient, admin: LoggedIn, backend: str, url: str, body: dict[str, Any], field: str
) -> None:
    """The UI's forms validate the same body models without the API's door: a NUL in a name
    checked by its own pattern got that pattern's message there, the door's through the API."""
    r = await client.post(url, json=body, headers=admin.headers)
    assert r.status_code == 422 and r.json()["errors"] == [{"field": field, "message": NUL_MESSAGE}], r.text
    model = {
        "/api/v1/users": users.UserCreate,
        "/api/v1/scripts": scripts.ScriptCreate,
        "/api/v1/secrets": secrets.SecretCreate,
        "/api/v1/inventories": shared_inventories.InventoryIn,
    }[url]
    with pytest.raises(ValidationError) as caught:
        model.model_validate(body)
    assert [(e["loc"], e["msg"]) for e in caught.value.errors()] == [((field,), NUL_MESSAGE)]
