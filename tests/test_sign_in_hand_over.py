"""A page's sign-in handed to the browser (`opscraft.ui.session.hand_over` / `take_over`): what a
browser cannot show, in one process with NiceGUI's file storage. The browser's side (another
tab's login page, a replayed or cross-site ticket) is in tests/test_session_fixation_browser.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from nicegui import app, storage
from starlette.requests import Request

from opscraft.ui import session

TICKET = "t" * 43
SIGN_IN = "s" * 32  # a `BrowserSignIn` id


@pytest.fixture
def file_storage(tmp_path: Path) -> Iterator[None]:
    """NiceGUI's per-browser storage in `tmp_path`, under a storage secret of the test's."""
    saved = storage.Storage.path, storage.Storage.secret
    storage.Storage.path, storage.Storage.secret = tmp_path, "test-storage-secret-" + "x" * 24
    try:
        yield
    finally:
        storage.Storage.path, storage.Storage.secret = saved


async def _handed_over(until: float) -> str:
    """The session id of TICKET, holding a sign-in handed over until `until` (epoch seconds)."""
    handed_id = session._storage_id_of(TICKET)
    await app.storage._create_user_storage(handed_id)
    app.storage._users[handed_id].update({session._SIGN_IN: SIGN_IN, session._HAND_OVER_UNTIL: until})
    return handed_id


def _request() -> Request:
    return Request({"type": "http", "session": {"id": "the-login-page's-id"}, "headers": []})


async def test_an_expired_hand_over_signs_nobody_in_and_its_sign_in_is_forgotten(file_storage: None) -> None:
    handed_id = await _handed_over(time.time() - 1)
    request = _request()
    assert not await session.take_over(request, TICKET)
    assert request.session == {"id": "the-login-page's-id"}
    assert dict(app.storage._users[handed_id]) == {}


async def test_a_hand_over_in_time_gives_its_id_once(file_storage: None) -> None:
    handed_id = await _handed_over(time.time() + session.HAND_OVER_SECONDS)
    request = _request()
    assert await session.take_over(request, TICKET)
    assert request.session == {"id": handed_id}
    assert dict(app.storage._users[handed_id]) == {session._SIGN_IN: SIGN_IN}
    assert not await session.take_over(_request(), TICKET)


def test_a_tickets_session_id_needs_the_storage_secret(file_storage: None) -> None:
    """Another secret (another installation) leads the same ticket elsewhere; the id is a UUID."""
    ours = session._storage_id_of(TICKET)
    storage.Storage.secret = "another-installation-" + "y" * 24
    assert session._storage_id_of(TICKET) != ours
    assert len(ours) == 36 and ours.count("-") == 4
