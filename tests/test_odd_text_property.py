"""Property: whatever text a client puts in a JSON body or a query string, lone surrogates and NUL
included, the answer is never a 5xx and every list route still answers 200 afterwards. The same
for odd JSON values where a number, an id or a name is expected: integers beyond 64 bits (and
beyond the databases' 32-bit ids), NaN and Infinity (which Python's JSON writes), the wrong JSON
type (a list, an object, a boolean, null), empty and whitespace-only names, path-like names.

Runs on SQLite and PostgreSQL (the `backend` fixture behind `client`); the database keeps what the
accepted requests wrote from one example to the next, as a real server would.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import LoggedIn

EXAMPLES = 60
ODD = ["\x00", "\ud800", "\udfff", "\ud83d", "a\x00b", "x\ud800y", "\ufffd", "\x7f", "\u2028", "😀"]
ODD += [
    "",
    "   ",
    "../../etc/passwd",
    "a\u200bb",
    "\x1b[31m",
    "NIGHTLY",
    "\uff4e\uff49\uff47\uff48\uff54\uff4c\uff59",
]
LISTS = ["/api/v1/scripts", "/api/v1/secrets", "/api/v1/users", "/api/v1/executions", "/api/v1/audit"]
LISTS += ["/api/v1/scripts/1/chains", "/api/v1/scripts/1/webhooks", "/api/v1/scripts/1/schedules"]
LISTS += ["/api/v1/notifications/channels", "/api/v1/notifications/rules", "/api/v1/inventories"]
LISTS += ["/api/v1/tokens", "/api/v1/settings"]

# Any Unicode scalar value or surrogate, with the known troublemakers drawn often.
odd_text = st.one_of(
    st.sampled_from(ODD),
    st.text(st.characters(codec=None, categories=None), max_size=12),
    st.builds(lambda a, b, c: a + b + c, st.text(max_size=6), st.sampled_from(ODD), st.text(max_size=6)),
)


# Where a number, an id or a flag is expected: any JSON value, the troublemakers drawn often.
odd_value = st.one_of(
    st.sampled_from([2**31, 2**63, 2**64, -(2**63) - 1, 10**30, 0, -1, 1.5, True, None, [], {}]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(),
    odd_text,
    st.lists(st.integers(), max_size=2),
)


def _values(v: st.SearchStrategy[Any], t: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[str, str, Any]]:
    """(method, url, JSON body) for routes whose numbers, ids and names get odd values."""
    return st.one_of(
        st.builds(lambda x: {"target_script_id": x}, v).map(
            lambda b: ("POST", "/api/v1/scripts/1/chains", b)
        ),
        st.fixed_dictionaries(
            {"channel_id": v, "events": st.just(["failed"])}, optional={"script_id": v}
        ).map(lambda b: ("POST", "/api/v1/notifications/rules", b)),
        st.fixed_dictionaries({"name": t, "kind": st.just("webhook")}, optional={"secret_id": v}).map(
            lambda b: ("POST", "/api/v1/notifications/channels", b)
        ),
        st.fixed_dictionaries({"name": t}, optional={"secret_id": v, "enabled": v}).map(
            lambda b: ("POST", "/api/v1/scripts/1/webhooks", b)
        ),
        st.fixed_dictionaries({"name": t, "cron": st.just("0 0 1 1 *")}, optional={"timezone": t}).map(
            lambda b: ("POST", "/api/v1/scripts/1/schedules", b)
        ),
        st.fixed_dictionaries(
            {},
            optional={
                "timeout_seconds": v,
                "memory_mb": v,
                "cpus": v,
                "max_concurrent": v,
                "base_version": v,
                "inventory_id": v,
            },
        ).map(lambda b: ("PUT", "/api/v1/scripts/1", b)),
        st.fixed_dictionaries(
            {}, optional={"output_retention_days": v, "output_retention_gb": v, "warm_pool_size": v}
        ).map(lambda b: ("PUT", "/api/v1/settings", b)),
        st.fixed_dictionaries({"name": t}, optional={"expires_at": t}).map(
            lambda b: ("POST", "/api/v1/tokens", b)
        ),
        st.fixed_dictionaries({"name": t, "content": st.just("[web]\nh1\n")}).map(
            lambda b: ("POST", "/api/v1/inventories", b)
        ),
        st.fixed_dictionaries(
            {"script_id": v}, optional={"parameters": st.dictionaries(t, v, max_size=2)}
        ).map(lambda b: ("POST", "/api/v1/executions", b)),
    )


def _bodies(t: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[str, str, Any]]:
    """(method, url, JSON body) for every route that takes text."""
    params = st.dictionaries(t, t, max_size=3)
    return st.one_of(
        st.fixed_dictionaries(
            {"name": t, "script_type": st.just("bash"), "content": t},
            optional={
                "description": t,
                "tags": st.lists(t, max_size=3),
                "parameters": params,
                "version": t,
                "change_note": t,
            },
        ).map(lambda b: ("POST", "/api/v1/scripts", b)),
        st.fixed_dictionaries(
            {}, optional={"name": t, "description": t, "tags": st.lists(t, max_size=2), "content": t}
        ).map(lambda b: ("PUT", "/api/v1/scripts/1", b)),
        st.fixed_dictionaries({"name": t, "value": t}, optional={"description": t}).map(
            lambda b: ("POST", "/api/v1/secrets", b)
        ),
        st.fixed_dictionaries({}, optional={"description": t, "value": t}).map(
            lambda b: ("PUT", "/api/v1/secrets/1", b)
        ),
        st.fixed_dictionaries({"username": t, "email": t, "password": t}, optional={"full_name": t}).map(
            lambda b: ("POST", "/api/v1/users", b)
        ),
        st.fixed_dictionaries({}, optional={"full_name": t, "email": t}).map(
            lambda b: ("PUT", "/api/v1/users/2", b)
        ),
        st.builds(lambda p: {"script_id": 1, "parameters": p, "runner": "local"}, params).map(
            lambda b: ("POST", "/api/v1/executions", b)
        ),
        st.fixed_dictionaries({"username": t, "password": t}).map(
            lambda b: ("POST", "/api/v1/auth/login", b)
        ),
        st.builds(lambda n: {"change_note": n}, t).map(lambda b: ("POST", "/api/v1/scripts/1/rollback/1", b)),
    )


def _queries(t: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[str, str, Any]]:
    """(GET, url with the text percent-encoded as the client's UTF-8, surrogates passed through)."""
    routes = [
        "/api/v1/scripts?search=",
        "/api/v1/scripts?tag=",
        "/api/v1/users?search=",
        "/api/v1/secrets?search=",
    ]
    routes += ["/api/v1/audit?actor_name=", "/api/v1/audit?target_id=", "/api/v1/executions?status="]
    return st.builds(
        lambda route, text: ("GET", route + quote(text.encode("utf-8", "surrogatepass")), None),
        st.sampled_from(routes),
        t,
    )


async def _seed(client: httpx.AsyncClient, admin: LoggedIn) -> None:
    if (await client.get("/api/v1/scripts/1", headers=admin.headers)).status_code == 200:
        return
    script = {
        "name": "seed",
        "script_type": "bash",
        "content": 'echo "$P"\n',
        "parameters": {"P": "x"},
        "status": "active",
    }
    assert (await client.post("/api/v1/scripts", json=script, headers=admin.headers)).status_code == 201
    assert (
        await client.post("/api/v1/secrets", json={"name": "SEED", "value": "v"}, headers=admin.headers)
    ).status_code == 201
    user = {"username": "seeded", "email": "seeded@example.com", "password": "Long-Enough-1"}
    assert (await client.post("/api/v1/users", json=user, headers=admin.headers)).status_code == 201


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(request=st.one_of(_bodies(odd_text), _queries(odd_text), _values(odd_value, odd_text)))
async def test_odd_text_never_makes_a_server_error(
    client: httpx.AsyncClient, admin: LoggedIn, request: tuple[str, str, Any]
) -> None:
    await _seed(client, admin)
    method, url, body = request
    headers = {**admin.headers, "content-type": "application/json"}
    content = None if body is None else json.dumps(body).encode()  # ASCII: surrogates as \\u escapes
    response = await client.request(method, url, content=content, headers=headers)
    assert response.status_code < 500, (method, url, body, response.text)
    if response.status_code == 422:
        assert response.json()["errors"], "a 422 names the field"
    for listing in LISTS:
        r = await client.get(listing, headers=admin.headers)
        assert r.status_code == 200, (listing, r.text)
