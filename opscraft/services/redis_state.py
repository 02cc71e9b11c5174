"""Whether Redis answers, asked within a bound that a scraper or a load balancer's probe can wait.

A frozen Redis (SIGSTOPped, swapped out, a network path dropping packets) accepts connections and
answers nothing: each command waits for its socket timeout, and redis-py (8) tries a command that
timed out again, three more times. `GET /metrics` waited about 4 s for the shared HTTP counts and
`GET /api/v1/health` 2 s for its PING; now each gives Redis `ANSWER_SECONDS` in all and answers
with what it has, saying Redis did not answer (`opscraft_redis_up 0`, `"redis": "disconnected"`).
"""

from __future__ import annotations

import asyncio

#: Seconds a scrape or a health check gives Redis, every command and retry included.
ANSWER_SECONDS = 1.0


async def answers(url: str) -> bool:
    """True when the Redis at `url` answers a PING within `ANSWER_SECONDS` (a client of its own,
    closed before returning); False when it refuses, fails or stays silent."""
    import redis.asyncio as redis

    client = redis.from_url(url, socket_connect_timeout=ANSWER_SECONDS, socket_timeout=ANSWER_SECONDS)
    try:
        async with asyncio.timeout(ANSWER_SECONDS):
            await client.ping()
    except Exception:
        return False
    finally:
        await client.aclose()
    return True
