"""The health check's Redis PING reuses one client per Redis URL (`services/redis_state.py`):
each `GET /api/v1/health` opened a client of its own, a new TCP connection per probe. A client
whose PING fails is dropped, so the next check starts afresh."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import redis.asyncio

from opscraft.services import redis_state
from tests.conftest import REDIS_URL, require_service


@pytest.fixture(autouse=True)
def _real_redis() -> None:
    """A real Redis (OPSCRAFT_TEST_REDIS_URL): with CI=true its absence fails, never skips."""
    require_service(bool(REDIS_URL), "Redis (OPSCRAFT_TEST_REDIS_URL)")


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The URLs `redis.asyncio.from_url` made a client for, in order (the real client is made)."""
    made: list[str] = []
    real = redis.asyncio.from_url

    def counting(url: str, **options: Any) -> redis.asyncio.Redis:
        made.append(url)
        return real(url, **options)

    monkeypatch.setattr(redis.asyncio, "from_url", counting)
    return made


async def test_health_checks_share_one_client_per_url(opened: list[str]) -> None:
    for _ in range(5):
        assert await redis_state.answers(REDIS_URL) is True
    assert opened == [REDIS_URL], "one client for five checks"


async def test_a_client_whose_ping_failed_is_dropped_and_the_next_check_makes_one(opened: list[str]) -> None:
    with socket.socket() as probe:  # a port nothing listens on: refused at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dead = f"redis://127.0.0.1:{port}/0"
    assert await redis_state.answers(dead) is False
    assert await redis_state.answers(dead) is False
    assert opened == [dead, dead], "a failed client is not kept"
    assert await redis_state.answers(REDIS_URL) is True
    assert await redis_state.answers(REDIS_URL) is True
    assert opened == [dead, dead, REDIS_URL]
