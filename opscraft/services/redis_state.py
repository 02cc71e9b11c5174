"""Whether Redis answers, asked within a bound that a scraper or a load balancer's probe can wait.

A frozen Redis (SIGSTOPped, swapped out, a network path dropping packets) accepts connections and
answers nothing: each command waits for its socket timeout, and redis-py (8) tries a command that
timed out again, three more times. `GET /metrics` waited about 4 s for the shared HTTP counts and
`GET /api/v1/health` 2 s for its PING; now each gives Redis `ANSWER_SECONDS` in all and answers
with what it has, saying Redis did not answer (`opscraft_redis_up 0`, `"redis": "disconnected"`).
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from redis.asyncio import Redis

#: Seconds a scrape or a health check gives Redis, every command and retry included.
ANSWER_SECONDS = 1.0

# One client per Redis URL per event loop (a redis-py asyncio client's connections belong to the
# loop that opened them), kept while it answers: every health check opened a client of its own, a
# new TCP connection (and its handshake) per probe, and closed it. A client whose PING failed or
# timed out is closed and dropped, so the next check starts on a fresh connection (a timed-out
# one may still owe the old reply).
_CLIENTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Redis]] = weakref.WeakKeyDictionary()


def _client(url: str) -> Redis:
    """The kept client of `url` on the running loop, made on first use."""
    import redis.asyncio as redis

    kept = _CLIENTS.setdefault(asyncio.get_running_loop(), {})
    client = kept.get(url)
    if client is None:
        client = redis.from_url(url, socket_connect_timeout=ANSWER_SECONDS, socket_timeout=ANSWER_SECONDS)
        kept[url] = client
    return client


async def answers(url: str) -> bool:
    """True when the Redis at `url` answers a PING within `ANSWER_SECONDS`, on the client kept
    for `url` (`_CLIENTS`); False when it refuses, fails or stays silent (that client is then
    closed and dropped)."""
    client = _client(url)
    try:
        async with asyncio.timeout(ANSWER_SECONDS):
            await client.ping()
    except Exception:
        _CLIENTS.get(asyncio.get_running_loop(), {}).pop(url, None)
        # A frozen Redis: closing drops the connection, bounded like the PING.
        with contextlib.suppress(Exception):
            async with asyncio.timeout(ANSWER_SECONDS):
                await client.aclose()
        return False
    return True
