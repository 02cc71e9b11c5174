"""HTTP request counts for /metrics (`services/request_counts.py`) on a real Redis: two counters
standing for two web processes share their totals, and an outage loses and doubles nothing.
The end-to-end case with two real web processes is in test_scale_out.py."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest

from opscraft.services.request_counts import MemoryRequestCounts, RedisRequestCounts, make_request_counts
from tests.conftest import REDIS_URL, require_service
from tests.scale.cluster import RedisServer

pytestmark = pytest.mark.redis
GET_OK = ("/api/v1/executions", "GET", "200")
POST_ACCEPTED = ("/api/v1/executions", "POST", "202")


async def test_counts_of_two_processes_are_in_each_ones_totals_once() -> None:
    require_service(bool(REDIS_URL), "Redis (OPSCRAFT_TEST_REDIS_URL)")
    assert REDIS_URL
    prefix = f"test-{secrets.token_hex(4)}"
    a, b = RedisRequestCounts(REDIS_URL, prefix), RedisRequestCounts(REDIS_URL, prefix)
    try:
        for _ in range(3):
            a.count(GET_OK)
        b.count(GET_OK)
        b.count(POST_ACCEPTED)
        await b.totals()  # B's scrape sends B's counts; A's scrape sends A's
        assert await a.totals() == {GET_OK: 4, POST_ACCEPTED: 1}
        assert await b.totals() == {GET_OK: 4, POST_ACCEPTED: 1}
        assert await a.totals() == {GET_OK: 4, POST_ACCEPTED: 1}  # reading twice adds nothing
    finally:
        await a.close()
        await b.close()
        import redis

        redis.Redis.from_url(REDIS_URL).delete(a.key)


async def test_counts_made_while_redis_is_down_arrive_once_it_is_back(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis")
    server.start()
    counts = RedisRequestCounts(server.url, "outage")
    try:
        counts.count(GET_OK)
        assert await counts.totals() == {GET_OK: 1}
        server.stop()
        counts.count(GET_OK)
        counts.count(POST_ACCEPTED)
        assert await counts.totals() is None  # no sample rather than a wrong one
        server.start()  # same port, empty (no persistence): the counter restarts, as after a reset
        assert await counts.totals() == {GET_OK: 1, POST_ACCEPTED: 1}
    finally:
        await counts.close()
        server.stop()


async def test_without_redis_the_counts_are_this_processs() -> None:
    counts = make_request_counts(None, "opscraft")
    assert isinstance(counts, MemoryRequestCounts)
    counts.count(GET_OK)
    counts.count(GET_OK)
    assert await counts.totals() == {GET_OK: 2}
