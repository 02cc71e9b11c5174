"""Inbound webhooks: token URL, HMAC signature with a timestamp window, JSON pointer mapping
through the parameter resolver, rate limit, audit without the payload."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
import pytest
from fastapi import FastAPI
from sqlmodel import col, select

from opscraft import runtime
from opscraft.db.models import AuditEvent, Execution, WebhookSignature, WebhookTrigger
from opscraft.db.text import TOO_SMALL_MESSAGE, imprecise_message
from opscraft.services.webhooks import _MISSING, check_pointer, resolve_pointer
from tests.conftest import LoggedIn

FORM = "application/x-www-form-urlencoded"
PARAMS = [
    {"name": "BRANCH", "type": "string", "required": True},
    {"name": "COUNT", "type": "integer", "default": 1},
]


@pytest.fixture
def worker_runners() -> frozenset[str]:
    """The runs the calls start only need to start: on the local runner (`setup_hook` allows
    it), with no Docker container to start and to wait for when the test's runtime stops."""
    return frozenset({"local"})


async def setup_hook(client: httpx.AsyncClient, who: LoggedIn, **body: Any) -> tuple[int, dict[str, Any]]:
    r = await client.put("/api/v1/settings", json={"local_runner_enabled": True}, headers=who.headers)
    script = {
        "name": f"h-{time.monotonic_ns()}",
        "script_type": "bash",
        "content": 'echo "$BRANCH"\n',
        "status": "active",
        "parameters": PARAMS,
    }
    r = await client.post("/api/v1/scripts", json=script, headers=who.headers)
    assert r.status_code == 201, r.text
    script_id = int(r.json()["id"])
    hook = {"name": "push", "mapping": {"BRANCH": "/ref", "COUNT": "/commits/0/n"}, **body}
    r = await client.post(f"/api/v1/scripts/{script_id}/webhooks", json=hook, headers=who.headers)
    assert r.status_code == 201, r.text
    return script_id, dict(r.json())


def signed(key: str, body: bytes, at: int | None = None) -> dict[str, str]:
    ts = str(at if at is not None else int(time.time()))
    mac = hmac.new(key.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    return {
        "X-OpsCraft-Timestamp": ts,
        "X-OpsCraft-Signature": f"sha256={mac}",
        "Content-Type": "application/json",
    }


async def audit_calls() -> list[AuditEvent]:
    async with runtime.current().db.session() as session:
        rows = await session.exec(
            select(AuditEvent).where(col(AuditEvent.action) == "webhook.call").order_by(col(AuditEvent.id))
        )
        return list(rows.all())


def test_json_pointer_rfc6901_examples() -> None:
    doc = {"foo": ["bar", "baz"], "": 0, "a/b": 1, "m~n": 8, " ": 7}
    assert resolve_pointer(doc, "") == doc
    assert resolve_pointer(doc, "/foo") == ["bar", "baz"]
    assert resolve_pointer(doc, "/foo/0") == "bar"
    assert resolve_pointer(doc, "/") == 0
    assert resolve_pointer(doc, "/a~1b") == 1
    assert resolve_pointer(doc, "/m~0n") == 8
    assert resolve_pointer(doc, "/ ") == 7
    assert resolve_pointer(doc, "/foo/2") is _MISSING
    assert resolve_pointer(doc, "/foo/01") is _MISSING
    assert resolve_pointer(doc, "/nope/x") is _MISSING
    for bad in ("foo", "/a~2"):
        with pytest.raises(ValueError):
            check_pointer(bad)


@pytest.mark.parametrize("token", ["\u00b2", "\u0661", "9" * 5000, "-1", "1e2", " 1"])
def test_pointer_index_is_ascii_digits_only(token: str) -> None:
    """RFC 6901 indexes are ASCII digits: a superscript, another script's digit ("\u0661" is
    Arabic-Indic 1) or more digits than Python's int() reads find nothing (they were a 500, or
    an index int() read anyway)."""
    assert resolve_pointer({"a": ["x", "y"]}, f"/a/{token}") is _MISSING


async def test_odd_digits_in_a_call_are_refusals_not_errors(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    r = await client.post("/api/v1/secrets", json={"name": "HOOK_KEY", "value": "k3y"}, headers=admin.headers)
    _, signed_hook = await setup_hook(client, admin, secret_id=r.json()["id"])
    body = orjson.dumps({"ref": "main"})
    huge = {**signed("k3y", body), "X-OpsCraft-Timestamp": "9" * 5000}
    r = await client.post(signed_hook["url_path"], content=body, headers=huge)
    assert r.status_code == 401 and "Unix seconds" in r.json()["detail"], r.text
    _, hook = await setup_hook(client, admin)
    for token in ("\u00b2", "9" * 1000):  # past any index's digits, within a pointer's 1,024 characters
        r = await client.put(
            f"/api/v1/scripts/{hook['script_id']}/webhooks/{hook['id']}",
            json={"name": "push", "mapping": {"BRANCH": "/ref", "COUNT": f"/commits/{token}"}},
            headers=admin.headers,
        )
        assert r.status_code == 200, r.text
        r = await client.post(hook["url_path"], json={"ref": "main", "commits": [5]})
        assert r.status_code == 202, r.text
        async with runtime.current().db.session() as session:
            run = await session.get(Execution, r.json()["execution_id"])
            assert run is not None and run.parameters["COUNT"] == 1, "the pointer found nothing: default"


async def test_call_maps_payload_to_parameters(
    client: httpx.AsyncClient, operator: LoggedIn, admin: LoggedIn
) -> None:
    script_id, hook = await setup_hook(client, admin)
    assert hook["url_path"] == f"/api/v1/hooks/{hook['id']}/{hook['token']}"
    async with runtime.current().db.session() as session:
        row = await session.get(WebhookTrigger, hook["id"])
        assert row is not None and row.token_hash == hashlib.sha256(hook["token"].encode()).hexdigest()
    listed = await client.get(f"/api/v1/scripts/{script_id}/webhooks", headers=operator.headers)
    assert hook["token"] not in listed.text
    payload = {"ref": "refs/heads/main", "commits": [{"n": 3}], "password": "payload-secret-123"}
    r = await client.post(hook["url_path"], json=payload)
    assert r.status_code == 202, r.text
    execution_id = r.json()["execution_id"]
    async with runtime.current().db.session() as session:
        run = await session.get(Execution, execution_id)
        assert run is not None and run.parameters == {"BRANCH": "refs/heads/main", "COUNT": 3}
        assert run.triggered_by_name == "admin", "on behalf of the webhook's owner"
    (event,) = await audit_calls()
    assert event.details["accepted"] is True and event.details["execution_id"] == execution_id
    assert "payload-secret-123" not in str(event.details) and "refs/heads" not in str(event.details)


async def test_a_body_that_is_no_json_object_is_refused_when_the_mapping_reads_keys(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """A body that is a JSON array, text, number, boolean or null started a run with the fixed
    values and defaults, as though the caller had sent an object without the mapped keys: a
    sender posting the wrong thing never learned it. A mapping that reads keys of the body now
    refuses any but an object (422 naming `body`); a mapping that reads a list's items takes an
    array; a webhook that maps nothing takes any JSON (its body is not read), an empty body
    counts as `{}` as before."""
    _, keyed = await setup_hook(client, admin, parameters={"BRANCH": "main"})
    as_json = {"Content-Type": "application/json"}
    for body in (b'["refs/heads/main"]', b'"refs/heads/main"', b"3", b"true", b"null"):
        r = await client.post(keyed["url_path"], content=body, headers=as_json)
        assert r.status_code == 422, (body, r.text)
        (error,) = r.json()["errors"]
        assert error["field"] == "body" and error["message"].startswith("must be a JSON object"), r.text
        assert "/ref" in error["message"], "it says which pointer reads a key"
    for body in (b'{"other": 1}', b""):
        r = await client.post(keyed["url_path"], content=body, headers=as_json)
        assert r.status_code == 202, (body, r.text)
    _, listed = await setup_hook(client, admin, mapping={"BRANCH": "/0/ref"})
    r = await client.post(listed["url_path"], json=[{"ref": "v1"}])
    assert r.status_code == 202, r.text
    async with runtime.current().db.session() as session:
        run = await session.get(Execution, r.json()["execution_id"])
        assert run is not None and run.parameters["BRANCH"] == "v1"
    r = await client.post(listed["url_path"], json="v1")
    assert r.status_code == 422 and "JSON object or array" in r.json()["detail"], r.text
    _, unmapped = await setup_hook(client, admin, mapping={}, parameters={"BRANCH": "main"})
    for body in (b"[1]", b'"x"', b"null"):
        r = await client.post(unmapped["url_path"], content=body, headers=as_json)
        assert r.status_code == 202, (body, r.text)


async def test_a_body_with_a_byte_order_mark_is_read(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """Windows PowerShell 5 sends JSON after a UTF-8 byte order mark, which RFC 8259 (8.1) lets a
    parser ignore: it was refused as "must be JSON". A signed call signs the bytes as sent."""
    _, hook = await setup_hook(client, admin)
    body = b"\xef\xbb\xbf" + orjson.dumps({"ref": "main", "commits": [{"n": 2}]})
    r = await client.post(hook["url_path"], content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 202, r.text
    async with runtime.current().db.session() as session:
        run = await session.get(Execution, r.json()["execution_id"])
        assert run is not None and run.parameters == {"BRANCH": "main", "COUNT": 2}
    r = await client.post("/api/v1/secrets", json={"name": "BOM_KEY", "value": "k3y"}, headers=admin.headers)
    _, signed_hook = await setup_hook(client, admin, secret_id=r.json()["id"])
    r = await client.post(signed_hook["url_path"], content=body, headers=signed("k3y", body))
    assert r.status_code == 202, r.text


async def test_integers_past_64_bits_keep_every_digit(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """A body's integer past 64 bits (a long ID) reaches a text parameter digit for digit, and
    an integer parameter is told the 64-bit range: orjson had read it as a float, so the ID
    became "1.2345678901234568e+23" and the integer "must be an integer ... (not 5.0)"."""
    _, hook = await setup_hook(client, admin)
    long_id = "123456789012345678901234"
    body = b'{"ref": ' + long_id.encode() + b', "commits": [{"n": 5}]}'
    r = await client.post(hook["url_path"], content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 202, r.text
    async with runtime.current().db.session() as session:
        run = await session.get(Execution, r.json()["execution_id"])
        assert run is not None and run.parameters == {"BRANCH": long_id, "COUNT": 5}
    body = b'{"ref": "main", "commits": [{"n": 1000000000000000000000000000000}]}'
    r = await client.post(hook["url_path"], content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "64-bit integer" in r.text and "5.0" not in r.text, r.text
    # Past a float's range too (orjson refused the whole call as "must be JSON"), in an unmapped
    # field as in a mapped one.
    longer = "9" * 400
    body = b'{"ref": ' + longer.encode() + b', "commits": [{"n": 5}], "other": ' + longer.encode() + b"}"
    r = await client.post(hook["url_path"], content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 202, r.text
    async with runtime.current().db.session() as session:
        run = await session.get(Execution, r.json()["execution_id"])
        assert run is not None and run.parameters == {"BRANCH": longer, "COUNT": 5}


async def test_what_orjson_refuses_is_named_as_the_api_names_it(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """A body orjson refuses is read by the standard library's parser, as every API body is: what
    no database stores or no float reads is a 422 naming its place (it was "body: must be JSON"),
    a body deeper than the parser recurses is too deep, and one that is not JSON still says so."""
    _, hook = await setup_hook(client, admin)
    text = {"Content-Type": "text/plain"}
    named = {
        b'{"ref": "a\\ud800b", "commits": [{"n": 1}]}': "ref",
        b'{"ref": "main", "commits": [{"n": NaN}]}': "commits.0.n",
        b'{"ref": "main", "commits": [{"n": 1}], "x": -Infinity}': "x",
        b'{"ref": "main", "commits": [{"n": 1e400}]}': "commits.0.n",
    }
    for body, field in named.items():
        r = await client.post(hook["url_path"], content=body, headers=text)
        assert r.status_code == 422, (body, r.text)
        assert [e["field"] for e in r.json()["errors"]] == [field], (body, r.text)
    deep = b"[" * 5000 + b"]" * 5000
    r = await client.post(hook["url_path"], content=deep, headers=text)
    assert r.status_code == 422 and "nested too deeply" in r.text, r.text
    # each says why, where (the bare "must be JSON" left the sender to hunt for the mistake)
    for body, reason in [
        (b'{"ref": "main",}', "Expecting property name enclosed in double quotes at line 1, column 16"),
        (b'{"ref": "a\x01b"}', "Invalid control character at line 1, column 11"),
        (b'{"ref": "Ren\xe9"}', "byte 13 is not UTF-8 text: send JSON as UTF-8 (RFC 8259)"),
    ]:
        r = await client.post(hook["url_path"], content=body, headers=text)
        assert r.status_code == 422 and [e["field"] for e in r.json()["errors"]] == ["body"], body
        assert r.json()["errors"][0]["message"].startswith(f"must be JSON: {reason}"), r.text
    async with runtime.current().db.session() as session:
        assert (await session.exec(select(Execution))).all() == [], "no run started"


async def test_a_number_a_float_reads_as_0_is_refused_naming_it(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """`1e-400` in a call's body was read as 0, and sent as `text/plain` (which webhooks take, past
    the API's body check) it reached the parameter as 0: refused naming its place, as the API
    refuses it in any JSON body, whatever the content type; `0e-400` is 0 and runs."""
    _, hook = await setup_hook(client, admin)
    tiny = b'{"ref": "main", "commits": [{"n": 1e-400}]}'
    for content_type in ("application/json", "text/plain"):
        r = await client.post(hook["url_path"], content=tiny, headers={"Content-Type": content_type})
        assert r.status_code == 422, (content_type, r.text)
        assert r.json()["errors"] == [{"field": "commits.0.n", "message": TOO_SMALL_MESSAGE}], r.text
    async with runtime.current().db.session() as session:
        assert (await session.exec(select(Execution))).all() == [], "no run started"
    long = b'{"ref": "main", "commits": [{"n": 1}], "score": 0.1234567890123456789}'
    r = await client.post(hook["url_path"], content=long, headers={"Content-Type": "text/plain"})
    expected = [{"field": "score", "message": imprecise_message(0.12345678901234568)}]
    assert r.status_code == 422 and r.json()["errors"] == expected, r.text
    zero = b'{"ref": "main", "commits": [{"n": 0}], "at": 0e-400}'
    r = await client.post(hook["url_path"], content=zero, headers={"Content-Type": "text/plain"})
    assert r.status_code == 202, r.text


async def test_refusals_are_audited_without_the_payload(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    _, hook = await setup_hook(client, admin)
    secret_body = {"ref": "x", "token": "payload-secret-456"}
    wrong = hook["url_path"].rsplit("/", 1)[0] + "/och_wrong"
    assert (await client.post(wrong, json=secret_body)).status_code == 404
    assert (await client.post(f"/api/v1/hooks/999999/{hook['token']}", json=secret_body)).status_code == 404
    r = await client.post(hook["url_path"], content=b"{not json", headers={"Content-Type": "text/plain"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "body"
    r = await client.post(hook["url_path"], json={"commits": [{"n": 1}]})
    assert r.status_code == 422 and "BRANCH" in r.text, "required parameter missing: named"
    r = await client.post(hook["url_path"], json={"ref": "x", "commits": [{"n": "three"}]})
    assert r.status_code == 422 and "COUNT" in r.text
    events = await audit_calls()
    # The two calls without the webhook's token share their address's row of the minute
    assert len(events) == 4 and not any(e.details["accepted"] for e in events)
    assert events[0].details["count"] == 2 and events[0].details["webhook_ids"] == [hook["id"], 999999]
    assert all("payload-secret-456" not in str(e.details) for e in events)


async def test_calls_without_the_token_are_audited_as_one_row_per_address_and_minute(
    client: httpx.AsyncClient, admin: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each call with a wrong token wrote its own audit row: anyone who could reach the server
    wrote the audit trail as fast as it answered. Now an address's refused calls of a minute
    are one row with their count; the address's rate limit still answers 429."""
    _, hook = await setup_hook(client, admin)
    monkeypatch.setattr(runtime.current().settings, "rate_limit_api_per_minute", 12)
    wrong = hook["url_path"].rsplit("/", 1)[0] + "/och_wrong"
    answers: list[int] = []
    while 429 not in answers[-3:]:  # the limit still holds (a few past it: a minute may turn)
        answers.append((await client.post(wrong, json={})).status_code)
        assert len(answers) <= 40, answers
    answers += [(await client.post(wrong, json={})).status_code for _ in range(2)]
    assert answers.count(404) >= 12 and set(answers) == {404, 429}, answers
    events = await audit_calls()
    assert len(events) in (1, 2), [e.details for e in events]  # the clock's minute may turn
    assert sum(e.details["count"] for e in events) == len(answers)
    first = events[0]
    assert first.actor_name == "webhook:refused" and first.client_ip == events[-1].client_ip
    assert first.details["accepted"] is False and first.details["webhook_ids"] == [hook["id"]]
    assert first.details["window_seconds"] == 60 and first.details["last_at"]
    assert any("too many calls" in e.details["reason"] for e in events)  # the latest reason

    # A call of a later minute starts a new row
    async with runtime.current().db.session() as session:
        for event in events:
            row = await session.get(AuditEvent, event.id)
            assert row is not None
            row.time = row.time - timedelta(minutes=5)
        await session.commit()
    monkeypatch.setattr(runtime.current().settings, "rate_limit_api_per_minute", 1000)
    assert (await client.post(wrong, json={})).status_code == 404
    again = await audit_calls()
    assert len(again) == len(events) + 1 and again[-1].details["count"] == 1

    # A call with the token is still audited on its own
    r = await client.post(hook["url_path"], json={"commits": [{"n": 1}]})
    assert r.status_code == 422
    last = (await audit_calls())[-1]
    assert last.actor_name == f"webhook:{hook['id']}" and "count" not in last.details


async def test_calls_without_the_token_from_one_ipv6_network_share_its_row(
    client: httpx.AsyncClient, admin: LoggedIn, api_app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rate limit counts an IPv6 caller by its /64 network (it picks any of 2^64 addresses at
    will), the audit's row of the minute counted it by address: each call from another address
    of the network wrote a row of its own, 429s included, as fast as the server answered. Now
    the network's calls of a minute are one row (its `client_ip` the network, as the limit
    counts it), listing the first addresses."""
    _, hook = await setup_hook(client, admin)
    monkeypatch.setattr(runtime.current().settings, "rate_limit_api_per_minute", 12)
    wrong = hook["url_path"].rsplit("/", 1)[0] + "/och_wrong"
    answers = []
    for n in range(1, 31):
        transport = httpx.ASGITransport(app=api_app, client=(f"2001:db8:7:9::{n:x}", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as caller:
            answers.append((await caller.post(wrong, json={})).status_code)
    assert set(answers) == {404, 429}, answers
    events = await audit_calls()
    assert len(events) in (1, 2), [(e.client_ip, e.details) for e in events]  # the minute may turn
    assert sum(e.details["count"] for e in events) == 30
    assert {e.client_ip for e in events} == {"2001:db8:7:9::/64"}
    assert events[0].details["addresses"][:2] == ["2001:db8:7:9::1", "2001:db8:7:9::2"]
    assert all(len(e.details["addresses"]) <= 20 for e in events)


async def test_signature_and_replay_window(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    r = await client.post("/api/v1/secrets", json={"name": "HOOK_KEY", "value": "k3y"}, headers=admin.headers)
    key_id = r.json()["id"]
    _, hook = await setup_hook(client, admin, secret_id=key_id)
    body = orjson.dumps({"ref": "main"})
    url = hook["url_path"]
    assert (await client.post(url, content=body)).status_code == 401
    assert (await client.post(url, content=body, headers=signed("other", body))).status_code == 401
    old = signed("k3y", body, int(time.time()) - 3600)
    r = await client.post(url, content=body, headers=old)
    assert r.status_code == 401 and "window" in r.json()["detail"]
    tampered = signed("k3y", body)
    assert (await client.post(url, content=body + b" ", headers=tampered)).status_code == 401
    r = await client.post(url, content=body, headers=signed("k3y", body))
    assert r.status_code == 202, r.text
    # The key is decrypted only for a call with both headers and a timestamp in the window: the
    # wrong key, the tampered body and the good call. Each decryption is in the secret's audit
    # log by the webhook, the refused ones too (they once went with the refusal's rollback).
    r = await client.get(f"/api/v1/secrets/{key_id}/audit-logs", headers=admin.headers)
    uses = [e for e in r.json()["items"] if e["action"] == "secret.use"]
    assert [(e["actor_name"], e["details"]["webhook_id"]) for e in uses] == [
        (f"webhook:{hook['id']}", hook["id"])
    ] * 3
    r = await client.get(f"/api/v1/secrets/{key_id}", headers=admin.headers)
    assert r.json()["last_used_at"] is not None, r.text


STAMP_FORM = (
    "x-opscraft-timestamp must be Unix seconds, 1 to 12 ASCII digits (no sign, fraction or exponent), "
    "e.g. 1767225600"
)
SIGNATURE_FORM = 'x-opscraft-signature must be sha256=<hex HMAC-SHA256 of "<timestamp>." + the body>'


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"X-OpsCraft-Timestamp": "99999999999999999999999"}, STAMP_FORM),
        ({"X-OpsCraft-Timestamp": "-1"}, STAMP_FORM),
        ({"X-OpsCraft-Timestamp": "1.7e9"}, STAMP_FORM),
        ({"X-OpsCraft-Timestamp": ""}, STAMP_FORM),
        (
            {"X-OpsCraft-Timestamp": None},
            "x-opscraft-timestamp is missing: send the Unix seconds the signature was made at",
        ),
        ({"X-OpsCraft-Signature": "md5=00"}, SIGNATURE_FORM),
        ({"X-OpsCraft-Signature": None}, SIGNATURE_FORM + ": it is missing"),
    ],
)
async def test_a_malformed_signature_header_is_named(
    client: httpx.AsyncClient, admin: LoggedIn, change: dict[str, str | None], detail: str
) -> None:
    """Field report (h3): a signed call whose timestamp was `99999999999999999999999`, `-1` or
    `1.7e9`, or whose signature was `md5=00`, answered 401 "signature required: send
    x-opscraft-timestamp (Unix seconds) and x-opscraft-signature: sha256=<hex>", as if it had
    sent no signature: the 401 now names the header to fix, and the key is never decrypted."""
    r = await client.post("/api/v1/secrets", json={"name": "HOOK_KEY", "value": "k3y"}, headers=admin.headers)
    key_id = r.json()["id"]
    _, hook = await setup_hook(client, admin, secret_id=key_id)
    body = orjson.dumps({"ref": "main"})
    headers = {k: v for k, v in (signed("k3y", body) | change).items() if v is not None}
    r = await client.post(hook["url_path"], content=body, headers=headers)
    assert r.status_code == 401 and r.json()["detail"] == detail, r.text
    assert [e.details.get("reason") for e in await audit_calls()] == [detail]
    r = await client.get(f"/api/v1/secrets/{key_id}/audit-logs", headers=admin.headers)
    assert [e for e in r.json()["items"] if e["action"] == "secret.use"] == []
    # Neither header still says what a signed call needs
    r = await client.post(hook["url_path"], content=body)
    assert r.status_code == 401 and r.json()["detail"].startswith("signature required: send"), r.text


async def test_a_signature_in_upper_case_hex_is_accepted_once(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """Hex is hex in either case (RFC 4648's base16 alphabet is upper case, as .NET and Go's
    %X write it): such a signature was refused as "does not match". Sent again in lower case,
    it is the same signature: a replay."""
    r = await client.post("/api/v1/secrets", json={"name": "HOOK_KEY", "value": "k3y"}, headers=admin.headers)
    _, hook = await setup_hook(client, admin, secret_id=r.json()["id"])
    body = orjson.dumps({"ref": "main"})
    headers = signed("k3y", body)
    upper = headers | {"X-OpsCraft-Signature": "sha256=" + headers["X-OpsCraft-Signature"][7:].upper()}
    r = await client.post(hook["url_path"], content=body, headers=upper)
    assert r.status_code == 202, r.text
    r = await client.post(hook["url_path"], content=body, headers=headers)
    assert r.status_code == 401 and "already used" in r.json()["detail"], r.text


@pytest.mark.parametrize("mac", ["é" * 64, "\u00ff" + "0" * 63, "\uff46" * 64])
async def test_a_signature_with_non_ascii_characters_is_a_mismatch(
    client: httpx.AsyncClient, admin: LoggedIn, mac: str
) -> None:
    """A signature header holding non-ASCII characters (sent as UTF-8 bytes) is 401 "does not
    match" and audited as refused; it was a 500 (the comparison refused non-ASCII text)."""
    r = await client.post("/api/v1/secrets", json={"name": "HOOK_KEY", "value": "k3y"}, headers=admin.headers)
    _, hook = await setup_hook(client, admin, secret_id=r.json()["id"])
    body = orjson.dumps({"ref": "main"})
    headers = signed("k3y", body) | {"X-OpsCraft-Signature": f"sha256={mac}"}
    r = await client.post(hook["url_path"], content=body, headers={k: v.encode() for k, v in headers.items()})
    assert r.status_code == 401 and r.json()["detail"] == "signature does not match", r.text
    assert [e.details.get("reason") for e in await audit_calls()] == ["signature does not match"]


async def test_a_signed_call_is_accepted_once(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """The same signed call sent again inside the window (captured from a proxy log, a retry
    by a tool) is refused: it started the script a second time."""
    r = await client.post("/api/v1/secrets", json={"name": "HOOK_KEY", "value": "k3y"}, headers=admin.headers)
    script_id, hook = await setup_hook(client, admin, secret_id=r.json()["id"])
    body = orjson.dumps({"ref": "main"})
    url = hook["url_path"]
    now = int(time.time())
    first = signed("k3y", body, now)
    assert (await client.post(url, content=body, headers=first)).status_code == 202
    r = await client.post(url, content=body, headers=first)
    assert r.status_code == 401 and "already used" in r.json()["detail"], r.text
    # Two copies of one new call at the same moment: one run.
    twice = signed("k3y", body, now - 1)
    answers = await asyncio.gather(*(client.post(url, content=body, headers=twice) for _ in range(2)))
    assert sorted(a.status_code for a in answers) == [202, 401], [a.text for a in answers]
    # A call signed anew (its own timestamp) is another call.
    assert (await client.post(url, content=body, headers=signed("k3y", body, now + 1))).status_code == 202
    async with runtime.current().db.session() as session:
        runs = (await session.exec(select(Execution).where(col(Execution.script_id) == script_id))).all()
    assert len(runs) == 3
    refused = [e for e in await audit_calls() if not e.details["accepted"]]
    assert [e.details["reason"].split(":")[0] for e in refused] == ["signature already used"] * 2


async def test_a_mapping_pointer_longer_than_the_limit_is_refused_at_save(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """A pointer of 100,000 characters was stored (field report): refused past 1,024 characters,
    for a webhook and for a "then run" link alike, naming the field; 1,024 is saved and resolves."""
    script_id, _ = await setup_hook(client, admin)
    url = f"/api/v1/scripts/{script_id}/webhooks"
    longest = "/" + "k" * 1023
    for pointer, status in [("/" + "k" * 1024, 422), ("/a" * 50_000, 422), (longest, 201)]:
        r = await client.post(
            url, json={"name": "long", "mapping": {"BRANCH": pointer}}, headers=admin.headers
        )
        assert r.status_code == status, r.text
        if status == 422:
            assert r.json()["errors"] == [
                {
                    "field": "mapping.BRANCH",
                    "message": f"must be at most 1024 characters (it has {len(pointer)})",
                }
            ], r.text
    hook = r.json()
    assert hook["mapping"] == {"BRANCH": longest}
    call = await client.post(hook["url_path"], json={"k" * 1023: "main"})
    assert call.status_code == 202, call.text
    async with runtime.current().db.session() as session:
        run = await session.get(Execution, call.json()["execution_id"])
        assert run is not None and run.parameters["BRANCH"] == "main"
    link = {"target_script_id": script_id, "mapping": {"BRANCH": "/parameters/" + "P" * 1013}}
    other = await client.post(
        "/api/v1/scripts",
        json={"name": f"src-{time.monotonic_ns()}", "script_type": "bash", "content": "true\n"},
        headers=admin.headers,
    )
    assert other.status_code == 201, other.text
    r = await client.post(f"/api/v1/scripts/{other.json()['id']}/chains", json=link, headers=admin.headers)
    assert r.status_code == 422 and r.json()["errors"] == [
        {"field": "mapping.BRANCH", "message": "must be at most 1024 characters (it has 1025)"}
    ], r.text


async def test_save_time_validation(client: httpx.AsyncClient, admin: LoggedIn, viewer: LoggedIn) -> None:
    script_id, _ = await setup_hook(client, admin)
    url = f"/api/v1/scripts/{script_id}/webhooks"
    for body, field in [
        ({"name": "x", "mapping": {"NOPE": "/a"}}, "mapping.NOPE"),
        ({"name": "x", "mapping": {"BRANCH": "ref"}}, "mapping.BRANCH"),
        ({"name": "x", "parameters": {"NOPE": 1}}, "parameters.NOPE"),
        # fixed values are checked as the resolver will check them at each call
        ({"name": "x", "parameters": {"COUNT": "many"}}, "parameters.COUNT"),
        ({"name": "x", "parameters": {"BRANCH": "main\u202e"}}, "parameters.BRANCH"),
        ({"name": "x", "parameters": {"BRANCH": ["a"]}}, "parameters.BRANCH"),
        ({"name": "x", "mapping": {"BRANCH": "/ref"}, "secret_id": 4242}, "secret_id"),
    ]:
        r = await client.post(url, json=body, headers=admin.headers)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, r.text
    # Every problem at once, not the first one and the next after it is fixed.
    body = {"name": "x", "mapping": {"NOPE": "/a", "BRANCH": "ref"}, "parameters": {"COUNT": "many"}}
    r = await client.post(url, json={**body, "secret_id": 4242}, headers=admin.headers)
    assert r.status_code == 422, r.text
    fields = [e["field"] for e in r.json()["errors"]]
    assert fields == ["mapping.NOPE", "mapping.BRANCH", "parameters.COUNT", "secret_id"], r.text
    assert len((await client.get(url, headers=admin.headers)).json()["items"]) == 1, "nothing half-written"
    body = {"name": "x", "mapping": {"BRANCH": "/ref"}, "parameters": {"COUNT": "7"}}
    r = await client.post(url, json=body, headers=admin.headers)
    assert r.status_code == 201 and r.json()["parameters"] == {"COUNT": "7"}, r.text
    assert (await client.post(url, json={"name": "x"}, headers=viewer.headers)).status_code == 403


@pytest.mark.usefixtures("one_rate_window")
async def test_rate_limit_and_owner_checks(
    client: httpx.AsyncClient, admin: LoggedIn, operator: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, hook = await setup_hook(client, operator)
    r = await client.put(f"/api/v1/users/{operator.id}", json={"is_active": False}, headers=admin.headers)
    assert r.status_code == 200
    r = await client.post(hook["url_path"], json={"ref": "main"})
    assert r.status_code == 403 and "deactivated" in r.json()["detail"]
    _, other = await setup_hook(client, admin)
    monkeypatch.setattr(runtime.current().settings, "rate_limit_api_per_minute", 1)
    r = await client.post(other["url_path"], json={"ref": "a"})
    assert r.status_code == 202 and (r.headers["RateLimit-Limit"], r.headers["RateLimit-Remaining"]) == (
        "1",
        "0",
    )
    r = await client.post(other["url_path"], json={"ref": "b"})
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1
    assert (
        r.headers["RateLimit-Reset"] == r.headers["Retry-After"] and r.headers["RateLimit-Remaining"] == "0"
    )


@pytest.mark.usefixtures("one_rate_window")
async def test_calls_without_the_token_cannot_use_up_a_webhooks_limit(
    client: httpx.AsyncClient, admin: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every call counted against the webhook named in its URL, token or not: anyone who knew an
    id (they are sequential) kept a webhook at 429 for its real caller. Calls without the token
    count against their own address now, the same whether the webhook exists or not."""
    _, hook = await setup_hook(client, admin)
    monkeypatch.setattr(runtime.current().settings, "rate_limit_api_per_minute", 2)
    wrong = f"/api/v1/hooks/{hook['id']}/och_wrong"
    answers = [(await client.post(wrong, json={"ref": "x"})).status_code for _ in range(4)]
    assert answers == [404, 404, 429, 429]
    r = await client.post("/api/v1/hooks/999999/och_wrong", json={"ref": "x"})
    assert r.status_code == 429 and "unknown webhooks" in r.json()["detail"], "no id is told apart"
    for ref in ("a", "b"):  # the webhook's own calls: its limit is untouched
        r = await client.post(hook["url_path"], json={"ref": ref})
        assert r.status_code == 202, r.text
    r = await client.post(hook["url_path"], json={"ref": "c"})
    assert r.status_code == 429 and "this webhook" in r.json()["detail"]


async def test_a_body_sent_as_text_meets_the_json_limits(
    client: httpx.AsyncClient, admin: LoggedIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A webhook takes a body of any content type, but the API's depth and key limits were only
    checked for one sent as JSON: as `text/plain`, a body 990 levels deep holding a long integer
    reached the standard library's recursive parser and was a 500."""
    _, hook = await setup_hook(client, admin)
    text = {"Content-Type": "text/plain"}
    deep = b"[" * 990 + b"1" * 20 + b"]" * 990
    r = await client.post(hook["url_path"], content=deep, headers=text)
    assert r.status_code == 422, r.text
    assert r.json()["errors"] == [
        {"field": "body", "message": "nested too deeply: at most 20 levels (OPSCRAFT_MAX_JSON_DEPTH)"}
    ]
    at_limit = b'{"ref": "main", "x": ' + b"[" * 18 + b"]" * 18 + b"}"
    r = await client.post(hook["url_path"], content=at_limit, headers=text)
    assert r.status_code == 202, r.text
    monkeypatch.setattr(runtime.current().settings, "max_json_keys", 3)
    r = await client.post(hook["url_path"], content=b'{"ref": "a", "b": 1, "c": 2, "d": 3}', headers=text)
    assert r.status_code == 422 and "too many keys: at most 3" in r.text, r.text
    (*_, refused) = await audit_calls()
    assert refused.details["accepted"] is False and "too many keys" in refused.details["reason"]


async def test_a_key_written_twice_is_refused_whatever_the_content_type(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """`{"ref": "main", "ref": "evil"}` sent as JSON was a 422 naming `ref` (the API's body rule),
    but as `text/plain` (which webhooks take) it ran with the last value: a proxy or a signer that
    read the first one saw another call than the one run."""
    _, hook = await setup_hook(client, admin)
    twice = b'{"ref": "main", "commits": [{"n": 1, "n": 2}], "ref": "evil"}'
    for content_type in ("application/json", "text/plain", "application/vnd.github+json"):
        r = await client.post(hook["url_path"], content=twice, headers={"Content-Type": content_type})
        assert r.status_code == 422, (content_type, r.text)
        assert (
            r.json()["errors"][0]["message"] == "sent more than once in one JSON object: send each key once"
        )
    (*_, refused) = await audit_calls()
    assert refused.details["accepted"] is False
    async with runtime.current().db.session() as session:
        assert (await session.exec(select(Execution))).all() == [], "no run started"


async def test_githubs_form_encoded_delivery_is_read_from_its_payload_field(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """GitHub's new webhooks post `payload=<JSON>` as a form by default (signed as sent): its
    `payload` is the body, so a push maps as the same JSON sent as JSON. It was a 422 "must be
    JSON, not a form", while GitHub's ping in that form was accepted: the webhook looked healthy
    on GitHub until its first push. Any other form names the one field it takes."""
    r = await client.post("/api/v1/secrets", json={"name": "FORM_KEY", "value": "k3y"}, headers=admin.headers)
    script_id, hook = await setup_hook(client, admin, secret_id=r.json()["id"], signature_scheme="github")
    push = '{"ref": "refs/heads/main", "commits": [{"n": 7}], "note": "a+b & c=d é"}'
    body = urlencode({"payload": push}).encode()
    headers = github_signed("k3y", body) | {"Content-Type": FORM}
    r = await client.post(hook["url_path"], content=body, headers=headers)
    assert r.status_code == 202, r.text
    async with runtime.current().db.session() as session:
        (run,) = (await session.exec(select(Execution).where(col(Execution.script_id) == script_id))).all()
    assert run.parameters["BRANCH"] == "refs/heads/main" and run.parameters["COUNT"] == 7
    _, unsigned = await setup_hook(client, admin)
    told = "a form (application/x-www-form-urlencoded) must hold one field, payload=<JSON> (GitHub's form)"
    for form in ({"ref": "main"}, {"payload": "{}", "ref": "main"}):
        r = await client.post(unsigned["url_path"], data=form)
        assert r.status_code == 422 and r.json()["errors"] == [{"field": "body", "message": told}], r.text
    r = await client.post(unsigned["url_path"], content=b'{"ref": "main"}', headers={"Content-Type": FORM})
    assert r.status_code == 202, "JSON sent as a form (curl -d) is read as JSON"
    message = "must be JSON: Expecting value at line 1, column 1"
    r = await client.post(unsigned["url_path"], data={"payload": "ref=main"})
    assert r.status_code == 422 and r.json()["errors"] == [{"field": "body", "message": message}]
    r = await client.post(unsigned["url_path"], content=b"ref=main", headers={"Content-Type": "text/plain"})
    assert r.status_code == 422 and r.json()["errors"] == [{"field": "body", "message": message}]


async def test_a_paused_or_deleted_webhook_answers_404(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """Paused: 404 until resumed. Deleted after signed calls (their signatures are kept for the
    replay check): the delete goes through, and its URL answers 404."""
    r = await client.post("/api/v1/secrets", json={"name": "HOOK_KEY", "value": "k3y"}, headers=admin.headers)
    script_id, hook = await setup_hook(client, admin, secret_id=r.json()["id"])
    one = f"/api/v1/scripts/{script_id}/webhooks/{hook['id']}"
    body = orjson.dumps({"ref": "main"})
    now = int(time.time())
    assert (
        await client.post(hook["url_path"], content=body, headers=signed("k3y", body, now))
    ).status_code == 202
    assert (await client.put(one, json={"enabled": False}, headers=admin.headers)).status_code == 200
    r = await client.post(hook["url_path"], content=body, headers=signed("k3y", body, now + 1))
    assert r.status_code == 404 and r.json()["detail"] == "no such webhook (or it is disabled)", r.text
    assert (await client.put(one, json={"enabled": True}, headers=admin.headers)).status_code == 200
    assert (
        await client.post(hook["url_path"], content=body, headers=signed("k3y", body, now + 2))
    ).status_code == 202
    assert (await client.delete(one, headers=admin.headers)).status_code == 204
    r = await client.post(hook["url_path"], content=body, headers=signed("k3y", body, now + 3))
    assert r.status_code == 404 and r.json()["detail"] == "no such webhook (or it is disabled)", r.text
    async with runtime.current().db.session() as session:
        runs = (await session.exec(select(Execution).where(col(Execution.script_id) == script_id))).all()
        assert len(runs) == 2
        kept = select(WebhookSignature).where(col(WebhookSignature.webhook_id) == hook["id"])
        assert (await session.exec(kept)).all() == [], "its signatures went with it"


async def test_deleting_a_script_deletes_its_webhooks_and_frees_their_secret(
    client: httpx.AsyncClient, admin: LoggedIn
) -> None:
    """A deleted script's webhooks go with it (audited `webhook.delete`, saying why): they could
    start nothing, nothing listed them (the script's list is a 404 with it, its page is gone), and
    a signed one kept its secret from being deleted (409 naming a webhook no one could remove)."""
    r = await client.post("/api/v1/secrets", json={"name": "GONE_KEY", "value": "k3y"}, headers=admin.headers)
    secret_id = r.json()["id"]
    script_id, hook = await setup_hook(client, admin, secret_id=secret_id, signature_scheme="github")
    assert (await client.delete(f"/api/v1/scripts/{script_id}", headers=admin.headers)).status_code == 204
    body = orjson.dumps({"ref": "main"})
    r = await client.post(hook["url_path"], content=body, headers=github_signed("k3y", body))
    assert r.status_code == 404, r.text
    r = await client.delete(f"/api/v1/secrets/{secret_id}", headers=admin.headers)
    assert r.status_code == 204, r.text
    async with runtime.current().db.session() as session:
        assert await session.get(WebhookTrigger, hook["id"]) is None
        query = select(AuditEvent).where(col(AuditEvent.action) == "webhook.delete")
        (event,) = [e for e in (await session.exec(query)).all() if e.target_id == str(hook["id"])]
        assert event.details == {"script_id": script_id, "name": "push", "reason": "its script was deleted"}


def github_signed(key: str, body: bytes) -> dict[str, str]:
    """The headers GitHub sends with a webhook's Secret set: an HMAC-SHA256 of the body alone."""
    mac = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-Hub-Signature-256": f"sha256={mac}",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "72d3162e-cc78-11e3-81ab-4c9367dc0958",
        "Content-Type": "application/json",
    }


async def test_github_signatures_as_github_sends_them(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """GitHub signs with `X-Hub-Signature-256` (no timestamp): a webhook saved with
    `signature_scheme` `github` takes it; every signed webhook took only OpsCraft's form, so a
    GitHub repository could call a signed webhook never (401 "signature required")."""
    r = await client.post("/api/v1/secrets", json={"name": "GH_KEY", "value": "k3y"}, headers=admin.headers)
    script_id, hook = await setup_hook(client, admin, secret_id=r.json()["id"], signature_scheme="github")
    assert hook["signature_scheme"] == "github" and hook["signed"] is True
    url, body = hook["url_path"], orjson.dumps({"ref": "refs/heads/main"})
    r = await client.post(url, content=body, headers=github_signed("k3y", body))
    assert r.status_code == 202, r.text
    r = await client.post(url, content=body, headers=github_signed("k3y", body))
    assert r.status_code == 401 and "already used" in r.json()["detail"], "a replayed delivery"
    other = orjson.dumps({"ref": "refs/heads/dev"})
    r = await client.post(url, content=other, headers=github_signed("wrong", other))
    assert r.status_code == 401 and r.json()["detail"] == "signature does not match"
    r = await client.post(url, content=other, headers=github_signed("k3y", body))
    assert r.status_code == 401 and r.json()["detail"] == "signature does not match", "another body"
    r = await client.post(url, content=other, headers=signed("k3y", other))
    assert r.status_code == 401 and "x-hub-signature-256 must be sha256=" in r.json()["detail"]
    r = await client.post(url, content=other, headers={"X-Hub-Signature": "sha1=00"})
    assert r.status_code == 401 and "it is missing" in r.json()["detail"]
    r = await client.post(url, content=other, headers=github_signed("k3y", other))
    assert r.status_code == 202, "a new body is a new delivery"
    async with runtime.current().db.session() as session:
        runs = (await session.exec(select(Execution).where(col(Execution.script_id) == script_id))).all()
    assert sorted(run.parameters["BRANCH"] for run in runs) == ["refs/heads/dev", "refs/heads/main"]


async def test_gitlab_tokens_as_gitlab_sends_them(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """GitLab sends its webhook's Secret token as `X-Gitlab-Token`: a webhook saved with
    `signature_scheme` `gitlab` compares it with the vault secret (a bearer secret: no replay
    check, GitLab's retries send the same body)."""
    r = await client.post("/api/v1/secrets", json={"name": "GL_KEY", "value": "t0ken"}, headers=admin.headers)
    _, hook = await setup_hook(client, admin, secret_id=r.json()["id"], signature_scheme="gitlab")
    url, body = hook["url_path"], orjson.dumps({"ref": "main"})
    for _ in range(2):
        r = await client.post(url, content=body, headers={"X-Gitlab-Token": "t0ken"})
        assert r.status_code == 202, r.text
    r = await client.post(url, content=body, headers={"X-Gitlab-Token": "t0ken-not"})
    assert r.status_code == 401 and r.json()["detail"] == "x-gitlab-token does not match"
    r = await client.post(url, content=body, headers={"X-Gitlab-Token": "é".encode()})
    assert r.status_code == 401, "a non-ASCII header is a mismatch, not an error"
    r = await client.post(url, content=body, headers=signed("t0ken", body))
    assert r.status_code == 401 and "x-gitlab-token is missing" in r.json()["detail"]


@pytest.mark.parametrize("scheme", ["opscraft", "github", "gitlab"])
async def test_a_signing_secret_ending_in_a_line_break_is_named_when_calls_leave_it_out(
    client: httpx.AsyncClient, admin: LoggedIn, scheme: str
) -> None:
    """A signing secret pasted from a file keeps its final line break, which is part of the key;
    GitHub's and GitLab's secret fields, an HTTP header and `$(cat FILE)` leave it out, so every
    call was refused "does not match", saying nothing of why (a GitLab webhook could verify no
    call at all). A proof that is right for the key without it says so, and is still refused."""
    r = await client.post(
        "/api/v1/secrets", json={"name": "K", "value": "k3y-value\n"}, headers=admin.headers
    )
    script_id, hook = await setup_hook(client, admin, secret_id=r.json()["id"], signature_scheme=scheme)
    url = hook["url_path"]

    def proof(key: str, ref: str) -> tuple[bytes, dict[str, str]]:
        body = orjson.dumps({"ref": ref})
        if scheme == "gitlab":
            return body, {"X-Gitlab-Token": key}
        return body, (github_signed if scheme == "github" else signed)(key, body)

    r = await client.post(url, content=(made := proof("k3y-value", "main"))[0], headers=made[1])
    detail = r.json()["detail"]
    assert r.status_code == 401 and "does not match: it matches the webhook's signing secret" in detail
    assert "edit the secret's value to remove it" in detail, r.text
    r = await client.post(url, content=(made := proof("other", "main"))[0], headers=made[1])
    assert r.status_code == 401 and r.json()["detail"].endswith("does not match"), "another key: no hint"
    if scheme != "gitlab":  # a header cannot carry the line break; an HMAC of it can
        r = await client.post(url, content=(made := proof("k3y-value\n", "dev"))[0], headers=made[1])
        assert r.status_code == 202, r.text
    async with runtime.current().db.session() as session:
        runs = (await session.exec(select(Execution).where(col(Execution.script_id) == script_id))).all()
    assert [run.parameters["BRANCH"] for run in runs] == ([] if scheme == "gitlab" else ["dev"])


async def test_a_signature_scheme_is_checked_when_saved(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    """`github` and `gitlab` need a signing secret; an unknown scheme is named; an OpsCraft-form
    webhook called with GitHub's header says which setting takes it."""
    script_id, hook = await setup_hook(client, admin)
    assert hook["signature_scheme"] == "opscraft"
    path = f"/api/v1/scripts/{script_id}/webhooks"
    for scheme in ("github", "bitbucket"):
        body = {"name": scheme, "signature_scheme": scheme, "mapping": {"BRANCH": "/ref"}}
        r = await client.post(path, json=body, headers=admin.headers)
        named = [e["field"] for e in r.json()["errors"]]
        assert r.status_code == 422 and named == ["signature_scheme"], r.text
    r = await client.put(f"{path}/{hook['id']}", json={"signature_scheme": "gitlab"}, headers=admin.headers)
    assert r.status_code == 422 and "need a signing secret" in r.text
    r = await client.post("/api/v1/secrets", json={"name": "K", "value": "k3y"}, headers=admin.headers)
    r = await client.put(f"{path}/{hook['id']}", json={"secret_id": r.json()["id"]}, headers=admin.headers)
    assert r.status_code == 200 and r.json()["signature_scheme"] == "opscraft"
    body = orjson.dumps({"ref": "main"})
    r = await client.post(hook["url_path"], content=body, headers=github_signed("k3y", body))
    assert r.status_code == 401 and "save the webhook with signature_scheme github" in r.json()["detail"]


@pytest.mark.parametrize("signed_as", ["github", "unsigned"])
async def test_githubs_ping_starts_no_run(client: httpx.AsyncClient, admin: LoggedIn, signed_as: str) -> None:
    """GitHub sends `X-GitHub-Event: ping` when the webhook is added there: it started the
    script (a deploy, for a webhook mapping nothing required) or was refused 422, which GitHub
    shows as a failing webhook. It passes the call's checks (a wrong signature is still a 401)
    and answers 200 with no run."""
    body: dict[str, Any] = {"parameters": {"BRANCH": "main"}, "mapping": {}}
    if signed_as == "github":
        r = await client.post("/api/v1/secrets", json={"name": "GH", "value": "k3y"}, headers=admin.headers)
        body |= {"secret_id": r.json()["id"], "signature_scheme": "github"}
    script_id, hook = await setup_hook(client, admin, **body)
    ping = orjson.dumps({"zen": "Keep it logically awesome.", "hook_id": 1})
    headers = github_signed("k3y", ping) | {"X-GitHub-Event": "ping"}
    r = await client.post(hook["url_path"], content=ping, headers=headers)
    assert (r.status_code, r.json()) == (200, {"execution_id": None, "status": "ping"}), r.text
    if signed_as == "github":
        wrong = github_signed("other", ping) | {"X-GitHub-Event": "ping"}
        assert (await client.post(hook["url_path"], content=ping, headers=wrong)).status_code == 401
    async with runtime.current().db.session() as session:
        runs = (await session.exec(select(Execution).where(col(Execution.script_id) == script_id))).all()
    assert runs == []
    accepted = [e.details for e in await audit_calls() if e.details["accepted"]]
    verified = {"key": "current"} if signed_as == "github" else {}  # the signing key that verified it
    assert accepted == [{"accepted": True, "script_id": script_id, "ping": True} | verified]
    push = orjson.dumps({"ref": "main"})
    headers = github_signed("k3y", push) | {"X-GitHub-Event": "push"}
    assert (await client.post(hook["url_path"], content=push, headers=headers)).status_code == 202
