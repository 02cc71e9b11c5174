"""Rate limits: auth endpoints per client IP, per (username, IP) and (looser) per username, the API
per user; in memory and in Redis."""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from opscraft import lifecycle, runtime
from opscraft.api import install_api
from opscraft.security import ratelimit
from opscraft.security.ratelimit import MemoryRateLimiter, RedisRateLimiter
from opscraft.services import auth, users
from opscraft.services.actor import Actor
from opscraft.services.errors import Forbidden, RateLimited, Unauthorized
from opscraft.services.users import Registration
from tests.conftest import PASSWORD, REDIS_URL, make_settings, make_user, own_redis_prefix, require_service

Clients = Callable[[str], httpx.AsyncClient]


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def limiter_backend(request: pytest.FixtureRequest) -> str:
    if request.param == "redis":
        require_service(bool(REDIS_URL), "Redis (OPSCRAFT_TEST_REDIS_URL)")
    return str(request.param)


@asynccontextmanager
async def started(tmp_path: Path, **overrides: object) -> AsyncIterator[FastAPI]:
    settings = make_settings(tmp_path, None, **overrides)
    await lifecycle.start(settings)
    try:
        app = FastAPI()
        install_api(app, settings)
        yield app
    finally:
        await lifecycle.stop()


@pytest.fixture
async def clients(limiter_backend: str, tmp_path: Path, one_rate_window: None) -> AsyncIterator[Clients]:
    """`clients(ip)`: an API client whose requests come from `ip`; auth 5/min, API 3/min, all
    counted in one window (`one_rate_window`)."""
    with own_redis_prefix("rl") as prefix:
        redis = (
            {"REDIS_URL": REDIS_URL, "OPSCRAFT_REDIS_PREFIX": prefix} if limiter_backend == "redis" else {}
        )
        async with started(tmp_path, OPSCRAFT_RATE_LIMIT_AUTH=5, OPSCRAFT_RATE_LIMIT_API=3, **redis) as app:
            opened: list[httpx.AsyncClient] = []

            def make(ip: str) -> httpx.AsyncClient:
                transport = httpx.ASGITransport(app=app, client=(ip, 40000))
                opened.append(httpx.AsyncClient(transport=transport, base_url="http://testserver"))
                return opened[-1]

            try:
                yield make
            finally:
                for client in opened:
                    await client.aclose()


def _ip() -> str:
    """A client address of its own, so runs sharing a Redis never count each other's hits."""
    return "10.{}.{}.{}".format(*secrets.token_bytes(3))


def _assert_limited(response: httpx.Response) -> None:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    seconds = int(response.headers["Retry-After"])
    assert f"try again in {seconds} second" in response.json()["detail"]


async def test_auth_limit_per_client_ip(clients: Clients) -> None:
    attacker = clients(_ip())
    for i in range(5):
        r = await attacker.post("/api/v1/auth/login", json={"username": f"guess{i}", "password": "nope-nope"})
        assert r.status_code == 401
    _assert_limited(await attacker.post("/api/v1/auth/login", json={"username": "guess9", "password": "x"}))
    _assert_limited(
        await attacker.post(
            "/api/v1/auth/register",
            json={"username": "newbie", "email": "n@example.com", "password": "Newbie-123", "full_name": ""},
        )
    )
    other = clients(_ip())
    r = await other.post("/api/v1/auth/login", json={"username": "guess0", "password": "nope-nope"})
    assert r.status_code == 401, "another address is not affected"


async def test_wrong_guesses_from_one_address_do_not_lock_the_user_out(clients: Clients) -> None:
    """The tight limit is per (username, client IP): the guessing address is limited, the real
    user signing in from elsewhere is not (the issue: 5 wrong logins made the right password
    return 429). A username is read trimmed and in any case, in the count as at sign-in: spaces
    around it neither dodge the limit nor stop the right password (the login page trimmed, the
    API answered "incorrect username or password")."""
    user = await make_user(clients(_ip()), "viewer", f"victim{secrets.token_hex(3)}")
    attacker = clients(_ip())
    for spaces in range(5):
        guess = {"username": " " * spaces + user.username, "password": "nope"}
        r = await attacker.post("/api/v1/auth/login", json=guess)
        assert r.status_code == 401, r.text
    right = {"username": f"  {user.username.upper()} ", "password": PASSWORD}
    _assert_limited(await attacker.post("/api/v1/auth/login", json=right))
    r = await clients(_ip()).post("/api/v1/auth/login", json=right)
    assert r.status_code == 200, r.text


async def test_auth_limit_per_username_across_addresses(clients: Clients) -> None:
    """Guessing spread over many addresses meets the looser per-username limit (10 x 5)."""
    victim = f"victim{secrets.token_hex(3)}"
    for _ in range(50):
        r = await clients(_ip()).post("/api/v1/auth/login", json={"username": victim, "password": "nope"})
        assert r.status_code == 401
    fresh_address = clients(_ip())
    _assert_limited(
        await fresh_address.post("/api/v1/auth/login", json={"username": victim.upper(), "password": "x"})
    )
    r = await fresh_address.post("/api/v1/auth/login", json={"username": "someone-else", "password": "x"})
    assert r.status_code == 401


async def test_an_ipv6_client_counts_by_its_64_network(clients: Clients) -> None:
    """A host given an IPv6 /64 (any home or server) picks any of its 2^64 addresses: counted
    per address, a new address was a new limit at every guess. The /64 is counted as one, an
    IPv4-mapped address as its IPv4 address; other networks keep their own counts. Inbound
    webhooks' unknown-token limit per address counts the same way."""
    network = "2001:db8:{:x}:{:x}".format(*(secrets.randbelow(0xFFFF) + 1 for _ in range(2)))
    for i in range(5):
        attacker = clients(f"{network}::{secrets.token_hex(2)}:{i + 1:x}")
        r = await attacker.post("/api/v1/auth/login", json={"username": f"guess{i}", "password": "nope-nope"})
        assert r.status_code == 401, r.text
    rotated = clients(f"{network}:ffff:1:2:{secrets.token_hex(2)}")
    _assert_limited(await rotated.post("/api/v1/auth/login", json={"username": "guess9", "password": "x"}))
    neighbour = clients(f"{network[:-1]}{'0' if network[-1] != '0' else '1'}::1")
    r = await neighbour.post("/api/v1/auth/login", json={"username": "guess0", "password": "nope-nope"})
    assert r.status_code == 401, "another /64 is not affected"

    ipv4 = _ip()
    for _ in range(5):
        r = await clients(ipv4).post("/api/v1/auth/login", json={"username": "guess", "password": "nope"})
        assert r.status_code == 401
    mapped = clients(f"::ffff:{ipv4}")
    _assert_limited(await mapped.post("/api/v1/auth/login", json={"username": "guess", "password": "x"}))

    hooks = "2001:db8:{:x}:{:x}".format(*(secrets.randbelow(0xFFFF) + 1 for _ in range(2)))
    for i in range(3):  # OPSCRAFT_RATE_LIMIT_API
        r = await clients(f"{hooks}::{i + 1:x}").post("/api/v1/hooks/999999/och_guess", json={})
        assert r.status_code == 404, r.text
    _assert_limited(await clients(f"{hooks}::abcd").post("/api/v1/hooks/999999/och_guess", json={}))


async def test_refresh_is_an_auth_endpoint(clients: Clients) -> None:
    client = clients(_ip())
    for _ in range(5):
        assert (await client.post("/api/v1/auth/refresh", json={"refresh_token": "junk"})).status_code == 401
    _assert_limited(await client.post("/api/v1/auth/refresh", json={"refresh_token": "junk"}))


async def test_api_limit_per_user(clients: Clients) -> None:
    client = clients(_ip())
    alice = await make_user(client, "viewer", f"alice{secrets.token_hex(3)}")
    bob = await make_user(clients(_ip()), "viewer", f"bob{secrets.token_hex(3)}")
    for _ in range(3):
        assert (await client.get("/api/v1/auth/me", headers=alice.headers)).status_code == 200
    _assert_limited(await client.get("/api/v1/auth/me", headers=alice.headers))
    _assert_limited(await clients(_ip()).get("/api/v1/settings", headers=alice.headers))
    assert (await client.get("/api/v1/auth/me", headers=bob.headers)).status_code == 200, "per user"


def _quota(response: httpx.Response) -> tuple[int, int, int]:
    """(RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset) of an answer, as ints."""
    return tuple(int(response.headers[f"RateLimit-{name}"]) for name in ("Limit", "Remaining", "Reset"))  # type: ignore[return-value]


async def test_rate_limited_answers_tell_the_quota_before_the_429(clients: Clients) -> None:
    """A 429 said when to retry, but nothing before it let a client pace itself: every answer of a
    rate-limited route now carries RateLimit-Limit/-Remaining/-Reset (draft-06), the 429 too, for
    the limit closest to its end (a sign-in counts three ways); a route counting none, none."""
    client = clients(_ip())
    seen = []
    for i in range(6):
        r = await client.post("/api/v1/auth/login", json={"username": "same", "password": f"nope-{i}"})
        seen.append((r.status_code, *_quota(r)[:2]))
        assert 1 <= _quota(r)[2] <= 60
    assert seen == [(401, 5, 4), (401, 5, 3), (401, 5, 2), (401, 5, 1), (401, 5, 0), (429, 5, 0)]
    assert _quota(r)[2] == int(r.headers["Retry-After"])
    health = await client.get("/api/v1/health")
    assert not any(h.lower().startswith("ratelimit-") for h in health.headers), "no limit counted"
    alice = await make_user(clients(_ip()), "viewer", f"alice{secrets.token_hex(3)}")
    answers = [await client.get("/api/v1/auth/me", headers=alice.headers) for _ in range(4)]
    assert [(a.status_code, *_quota(a)[:2]) for a in answers] == [
        (200, 3, 2),
        (200, 3, 1),
        (200, 3, 0),
        (429, 3, 0),
    ]
    bob = await make_user(clients(_ip()), "viewer", f"bob{secrets.token_hex(3)}")
    missing = await client.get("/api/v1/scripts/999999", headers=bob.headers)
    assert missing.status_code == 404 and _quota(missing)[:2] == (3, 2), "a refusal counted too"


@pytest.mark.redis
@pytest.mark.usefixtures("one_rate_window")
async def test_redis_holds_the_counts(tmp_path: Path) -> None:
    require_service(bool(REDIS_URL), "Redis (OPSCRAFT_TEST_REDIS_URL)")
    import redis.asyncio as redis

    assert REDIS_URL
    prefix = f"rl-test-{secrets.token_hex(4)}"
    limiter = RedisRateLimiter(REDIS_URL, prefix)
    store = redis.from_url(REDIS_URL)
    key = f"test:{secrets.token_hex(4)}"
    try:
        assert [(await limiter.hit(key, 2)).remaining for _ in range(3)] == [1, 0, 0]
        names = [name async for name in store.scan_iter(f"{prefix}:rl:{key}:*")]
        assert len(names) == 1 and int(await store.get(names[0])) == 3
        assert 0 < await store.ttl(names[0]) <= 120
        shared = RedisRateLimiter(REDIS_URL, prefix)  # a second process sees the same count
        assert (await shared.hit(key, 2)).exceeded
        await shared.close()
    finally:
        await limiter.close()
        await store.aclose()


@pytest.mark.redis
@pytest.mark.usefixtures("one_rate_window")
async def test_installations_sharing_a_redis_count_apart(tmp_path: Path) -> None:
    """OPSCRAFT_REDIS_PREFIX keeps two installations' counts apart (their user 1 is not one user):
    the counters were under a fixed `opscraft:rl:`, so one installation's traffic limited the other's."""
    require_service(bool(REDIS_URL), "Redis (OPSCRAFT_TEST_REDIS_URL)")
    assert REDIS_URL
    key = f"api:user:{secrets.randbelow(10**9)}"
    first = RedisRateLimiter(REDIS_URL, f"rl-a-{secrets.token_hex(4)}")
    second = RedisRateLimiter(REDIS_URL, f"rl-b-{secrets.token_hex(4)}")
    try:
        assert [(await first.hit(key, 2)).exceeded for _ in range(3)][2], "the first installation is limited"
        assert not (await second.hit(key, 2)).exceeded, "the second one's count starts at its own zero"
    finally:
        await first.close()
        await second.close()


async def test_a_redis_that_does_not_answer_delays_one_request_per_retry_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A frozen Redis (here a listening socket that never answers: connections are made, no reply
    comes) used to hold every request for the client's timeout (2 s each). Now one request in each
    `REDIS_RETRY_SECONDS` asks Redis; the others count in memory at once, limits still applied."""
    monkeypatch.setattr(ratelimit, "REDIS_RETRY_SECONDS", 1.0)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(64)
        limiter = RedisRateLimiter(f"redis://127.0.0.1:{silent.getsockname()[1]}/0", "rl-frozen")
        try:
            started_at = time.monotonic()
            assert not (await limiter.hit("k", 3)).exceeded
            assert time.monotonic() - started_at >= ratelimit.REDIS_TIMEOUT_SECONDS * 0.9  # it asked
            started_at = time.monotonic()
            answers = [(await limiter.hit("k", 3)).exceeded for _ in range(30)]
            assert time.monotonic() - started_at < 1.0, "Redis was asked again within the window"
            assert answers[:2] == [False, False] and all(answers[2:]), answers  # limited in memory
            while time.monotonic() < limiter._retry_at:  # the window ends: Redis is asked again
                await asyncio.sleep(0.05)
            started_at = time.monotonic()
            await limiter.hit("k", 3)
            assert time.monotonic() - started_at >= ratelimit.REDIS_TIMEOUT_SECONDS * 0.9
        finally:
            await limiter.close()


@pytest.mark.usefixtures("one_rate_window")
async def test_unreachable_redis_falls_back_to_memory(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async with started(tmp_path, REDIS_URL="redis://127.0.0.1:1/0", OPSCRAFT_RATE_LIMIT_AUTH=2) as app:
        transport = httpx.ASGITransport(app=app, client=("10.9.9.9", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            codes = [
                (await client.post("/api/v1/auth/login", json={"username": "x", "password": "y"})).status_code
                for _ in range(3)
            ]
    assert codes == [401, 401, 429], "still limited, never a 500"
    assert "Redis unreachable" in caplog.text


async def test_memory_window_and_retry_after() -> None:
    limiter = MemoryRateLimiter(window=2)
    now = time.time()
    if now % 2 > 1.5:  # the window's own time: its end is not to fall between the two hits
        await asyncio.sleep(0.6)
    first = await limiter.hit("k", 1)
    assert (first.limit, first.remaining, first.exceeded) == (1, 0, False) and 1 <= first.reset <= 2
    second = await limiter.hit("k", 1)
    assert (second.remaining, second.exceeded, second.reset) == (0, True, first.reset)
    assert not (await limiter.hit("other", 1)).exceeded
    await asyncio.sleep(2.05)  # the 2 s window passing is what is tested
    assert not (await limiter.hit("k", 1)).exceeded, "a new window starts from zero"


async def test_personal_token_shares_its_owners_limit(clients: Clients, limiter_backend: str) -> None:
    if limiter_backend == "redis":  # user ids restart with each test's database: forget their counts
        import redis

        with redis.from_url(str(REDIS_URL)) as r:
            for key in r.scan_iter("opscraft:rl:api:user:*"):
                r.delete(key)
    client = clients(_ip())
    carol = await make_user(client, "viewer", f"carol{secrets.token_hex(3)}")
    created = await client.post("/api/v1/tokens", json={"name": "ci"}, headers=carol.headers)
    assert created.status_code == 201, created.text
    token = {"Authorization": f"Bearer {created.json()['token']}"}
    for _ in range(2):
        assert (await client.get("/api/v1/auth/me", headers=token)).status_code == 200
    _assert_limited(await client.get("/api/v1/auth/me", headers=token))
    _assert_limited(await client.get("/api/v1/auth/me", headers=carol.headers))


@pytest.mark.usefixtures("one_rate_window")
async def test_guessing_the_current_password_counts_as_auth_attempts(tmp_path: Path) -> None:
    """Changing your password checks the current one, which tells whoever holds the session (a
    signed-in browser left open, a stolen access token) whether a guess is right: each try
    counts against the auth limits like a login (5 here), in the API and the Profile page alike
    (both call services/users.change_password). It had only the general API limit, and the
    Profile page none at all."""
    async with started(tmp_path, OPSCRAFT_RATE_LIMIT_AUTH=5, OPSCRAFT_RATE_LIMIT_API=1000) as app:
        transport = httpx.ASGITransport(app=app, client=(_ip(), 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            user = await make_user(client, "viewer", f"dave{secrets.token_hex(3)}")  # 1 auth attempt
            for i in range(4):
                guess = {"current_password": f"guess-{i}-x", "new_password": "Brand-New-Pass-1"}
                r = await client.post("/api/v1/auth/change-password", json=guess, headers=user.headers)
                assert r.status_code == 422, r.text
                assert r.json()["errors"][0]["field"] == "current_password"
            right = {"current_password": PASSWORD, "new_password": "Brand-New-Pass-1"}
            changed = await client.post("/api/v1/auth/change-password", json=right, headers=user.headers)
            _assert_limited(changed)
            assert (await client.get("/api/v1/auth/me", headers=user.headers)).status_code == 200, (
                "the refused try changed nothing: the session goes on"
            )


@pytest.mark.usefixtures("one_rate_window")
async def test_the_pages_doors_count_in_the_services(tmp_path: Path) -> None:
    """The login page and the first-administrator page call the services the API calls
    (`auth.authenticate_password`, `users.register`), and the auth limits are counted there, not
    in each door: the first-administrator page counted nothing before (only the API's register
    did), and a new door could forget the count. 3 attempts a minute here, from one address."""
    async with started(tmp_path, OPSCRAFT_RATE_LIMIT_AUTH=3):
        registrar, guesser = Actor(None, _ip()), _ip()
        data = Registration(username="first-admin", email="first@example.com", password=PASSWORD)
        async with runtime.current().db.session() as session:
            await users.register(session, registrar, data)  # 1: the first administrator
            for _ in range(2):  # 2, 3: registration is closed now
                with pytest.raises(Forbidden):
                    await users.register(session, registrar, data)
            with pytest.raises(RateLimited):
                await users.register(session, registrar, data)
            for _ in range(3):
                with pytest.raises(Unauthorized):
                    await auth.authenticate_password(session, guesser, "first-admin", "wrong-guess")
            with pytest.raises(RateLimited):
                await auth.authenticate_password(session, guesser, "first-admin", PASSWORD)


@pytest.mark.redis
async def test_processes_whose_clocks_disagree_count_in_the_database_clocks_window(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Web processes share counts in Redis by window (a minute's number); each numbered it on
    its own clock, so a process whose clock was off by a minute or more counted in other windows
    than the rest: together they allowed the limit once per process. The window is numbered on
    the database's clock (`db.clock`), which every process measures. (Another process's clock
    cannot be faked in this one: here this process's offset from the database is set as `measure`
    would set it for a machine an hour behind.)"""
    require_service(bool(REDIS_URL), "Redis (OPSCRAFT_TEST_REDIS_URL)")
    import redis.asyncio as redis

    from opscraft.db import clock

    assert REDIS_URL
    prefix = f"rl-clock-{secrets.token_hex(4)}"
    limiter = RedisRateLimiter(REDIS_URL, prefix)
    store = redis.from_url(REDIS_URL)
    try:
        monkeypatch.setattr(clock, "_offset", timedelta(hours=1))
        database_now = clock.now().timestamp()
        await limiter.hit("k", 5)
        names = [n.decode() async for n in store.scan_iter(f"{prefix}:rl:k:*")]
        window = int(names[0].rsplit(":", 1)[1])
        assert len(names) == 1 and abs(window - database_now // ratelimit.WINDOW_SECONDS) <= 1, names
    finally:
        await limiter.close()
        await store.aclose()
