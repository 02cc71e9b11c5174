"""SECRET_KEY's check value (`services/signing_key.py`): web processes record it, workers that
sign Terraform state backend credentials with their key must have the same."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from opscraft import lifecycle, runtime
from opscraft.config import ConfigError
from opscraft.db.models import AppSetting
from opscraft.services import signing_key
from tests.conftest import PG_URL, empty_postgres, make_settings

WEB_KEY, OTHER_KEY = "web-secret-key-" + "w" * 32, "other-secret-key-" + "o" * 32


async def _stored() -> str | None:
    async with runtime.current().db.session() as s:
        row = await s.get(AppSetting, signing_key.STATE_KEY)
        return None if row is None else str(row.value["check"])


async def test_web_records_its_key_and_a_worker_needs_it_only_with_a_state_backend(
    backend: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = PG_URL if backend == "postgresql" else None
    if url:
        await empty_postgres(url)
    web = make_settings(tmp_path, url, SECRET_KEY=WEB_KEY)
    await lifecycle.start(web, worker=False, signing="record")
    try:
        assert await _stored() == signing_key.check_value(WEB_KEY)
        db = runtime.current().db
        worker = make_settings(tmp_path, url, SECRET_KEY=OTHER_KEY, migrated=False)
        await signing_key.require_same(db, worker)  # no state backend: the key signs nothing there
        with_backend = {"OPSCRAFT_STATE_BACKEND_URL": "http://127.0.0.1:8080", "migrated": False}
        stranger = make_settings(tmp_path, url, SECRET_KEY=OTHER_KEY, **with_backend)
        with pytest.raises(ConfigError) as refused:
            await signing_key.require_same(db, stranger)
        assert str(refused.value).startswith("SECRET_KEY: this is not the SECRET_KEY of the web processes")
        assert OTHER_KEY not in str(refused.value) and WEB_KEY not in str(refused.value)
        await signing_key.require_same(db, make_settings(tmp_path, url, SECRET_KEY=WEB_KEY, **with_backend))
        with caplog.at_level(logging.WARNING, logger="opscraft.services.signing_key"):
            await signing_key.record(db, OTHER_KEY)  # SECRET_KEY changed: the web's new key counts
        assert "SECRET_KEY is not the key the web processes of this database used until now" in caplog.text
        assert await _stored() == signing_key.check_value(OTHER_KEY)
        await signing_key.require_same(db, stranger)
    finally:
        await lifecycle.stop()
