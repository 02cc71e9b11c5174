"""A sign-out made while Redis does not answer holds once it is back, in every web process.

On a team service the browser sessions' storage lives in Redis (`ui.redis_storage`). A sign-out
forgets the sign-in in the web process's copy and deletes Redis's; with Redis down at that moment
(a restart, a fail-over) the delete failed (a warning), Redis came back with the signed-in copy
of its last snapshot, and the next web process to load that session from Redis (here: the same
one, restarted) let the browser in again, without a password. (A freeze does not show it: the
delete waits in the connection and Redis applies it when it wakes.) The sign-in is now a row of
the database a sign-out ends (`auth.start_browser_sign_in`, `auth.logout`), and a session whose
sign-in has ended is not let in, whatever copy it comes from.

Real components: a private `redis-server` restarted from its snapshot (`SAVE`), a real web
process on SQLite, Chromium signing in and out on the pages."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from tests.conftest import LiveServer, start_server, stop_server
from tests.scale.cluster import RedisServer
from tests.ui_journey import log_in, log_out, make_users

pytestmark = [pytest.mark.redis, pytest.mark.browser]

KEYS = "opscraft:nicegui:user-*"  # NiceGUI's per-browser storages (`redis_storage`)


def _stored_sessions(server: RedisServer) -> dict[str, dict[str, Any]]:
    """Every browser session storage Redis holds, by key."""
    client = redis.Redis(port=server.port, socket_timeout=5)
    try:
        return {key.decode(): json.loads(client.get(key) or b"{}") for key in client.scan_iter(KEYS)}
    finally:
        client.close()


def _signed_in_copies(server: RedisServer) -> list[str]:
    """The keys of the storages that hold a sign-in (`ui.session._SIGN_IN`)."""
    return [key for key, data in _stored_sessions(server).items() if "sign_in" in data]


def _snapshot(server: RedisServer) -> None:
    """Have `server` write its data to its `dump.rdb`, which it loads when it starts again."""
    client = redis.Redis(port=server.port, socket_timeout=30)
    try:
        client.save()
    finally:
        client.close()


def test_a_sign_out_while_redis_is_down_is_not_undone_by_its_copy_once_back(
    tmp_path: Path, page: Any
) -> None:
    store = RedisServer(tmp_path / "redis")
    store.start()
    env = {"REDIS_URL": store.url}
    server: LiveServer | None = start_server(tmp_path / "server", env)
    try:
        assert server is not None
        make_users(server)
        log_in(page, server, "operator")
        assert len(_signed_in_copies(store)) == 1, _stored_sessions(store)
        cookie = "; ".join(f"{c['name']}={c['value']}" for c in page.context.cookies())
        _snapshot(store)  # what Redis comes back with after its restart
        store.stop()
        log_out(page, server)  # forgotten in this process; Redis's copy cannot be deleted
        page.goto("about:blank")  # no page of the session open: nothing of it written later
        store.start()
        # The premise: Redis is back with the signed-in copy the sign-out could not delete.
        assert len(_signed_in_copies(store)) == 1, _stored_sessions(store)
        assert "not saved to Redis" in server.log(), server.log()[-3000:]

        stop_server(server)  # the next process to serve this browser loads its session from Redis
        server = None
        server = start_server(tmp_path / "server", env)
        home = httpx.get(f"{server.url}/", headers={"Cookie": cookie}, timeout=30)
        assert home.status_code in (303, 307), (home.status_code, home.text[:500])
        assert home.headers["location"].startswith("/login"), home.headers
    finally:
        if server is not None:
            stop_server(server)
        store.stop()
