"""What reaches the disk, key rotation and the key check at start, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from sqlmodel import col, select, update

from opscraft import lifecycle, runtime
from opscraft.config import ConfigError
from opscraft.db.models import AppSetting, AuditEvent, Secret
from opscraft.security.vault import DecryptError, MasterKey, Vault, generate_key_text, parse_key
from opscraft.services import keyring
from opscraft.services.errors import Invalid
from tests.conftest import PG_URL, LoggedIn, make_settings

VALUES = {"DB_PASSWORD": "Plaintext-Marker-7f3a9c", "API_TOKEN": "tok_Another-Marker-51b2e8"}


def forms(value: str) -> list[bytes]:
    raw = value.encode()
    return [raw, base64.b64encode(raw), raw.hex().encode(), value.encode("utf-16-le")]


async def create_all(client: httpx.AsyncClient, who: LoggedIn) -> dict[str, int]:
    ids = {}
    for name, value in VALUES.items():
        r = await client.post("/api/v1/secrets", json={"name": name, "value": value}, headers=who.headers)
        assert r.status_code == 201, r.text
        ids[name] = int(r.json()["id"])
    # Replacing a value leaves no trace of the old one either.
    r = await client.put(
        f"/api/v1/secrets/{ids['API_TOKEN']}", json={"value": VALUES["API_TOKEN"]}, headers=who.headers
    )
    assert r.status_code == 200
    return ids


async def stored_bytes(backend: str, tmp_path: Path) -> list[bytes]:
    """What the test's database holds on disk: the SQLite database file with its WAL and SHM
    (the runtime's connections closed first, so nothing is checkpointed away while reading), or
    PostgreSQL's `pg_dump` of it; `tmp_path` is the runtime's data directory."""
    if backend == "sqlite":
        await runtime.current().db.engine.dispose()
        files = sorted(tmp_path.glob("opscraft.db*"))
        assert files and files[0].name == "opscraft.db"
        return [f.read_bytes() for f in files]
    pg_dump = shutil.which("pg_dump")
    assert pg_dump and PG_URL
    url = PG_URL.replace("+asyncpg", "")
    return [subprocess.run([pg_dump, url], capture_output=True, check=True).stdout]


async def test_database_holds_no_plaintext(
    backend: str, client: httpx.AsyncClient, operator: LoggedIn, tmp_path: Path
) -> None:
    await create_all(client, operator)
    blobs = await stored_bytes(backend, tmp_path)
    assert any(b"DB_PASSWORD" in blob for blob in blobs)  # it did capture the secrets table
    key = (tmp_path / "master.key").read_text().strip()
    for blob in blobs:
        for value in VALUES.values():
            for form in forms(value):
                assert form not in blob
        assert key.encode() not in blob and base64.b64decode(key) not in blob


async def test_rotation_reencrypts_everything_and_retires_the_old_key(
    client: httpx.AsyncClient, operator: LoggedIn, tmp_path: Path
) -> None:
    ids = await create_all(client, operator)
    old = keyring.current_vault()
    new_key = parse_key(generate_key_text(), "test")
    async with runtime.current().db.session() as session:
        new, count = await keyring.rotate(session, old, new_key)
    assert (count, new.key_version) == (2, old.key_version + 1)
    async with runtime.current().db.session() as session:
        rows = (await session.exec(select(Secret))).all()
        for secret in rows:
            assert secret.key_version == new.key_version
            assert keyring.reveal(new, secret) == VALUES[secret.name]
            with pytest.raises(DecryptError):
                keyring.reveal(Vault(old.master, new.key_version), secret)
        state = await session.get(AppSetting, keyring.STATE_KEY)
        assert state is not None and new_key.matches(state.value["check"])
        audited = (
            await session.exec(select(AuditEvent).where(col(AuditEvent.action) == "secret.rotate"))
        ).all()
        assert sorted(int(e.target_id or 0) for e in audited) == sorted(ids.values())
        assert {e.details["name"] for e in audited} == set(ids), "named like the other secret events"
    # After a restart only the new key opens the vault.
    settings = runtime.current().settings
    await lifecycle.stop()
    url = None if settings.is_sqlite else PG_URL
    with pytest.raises(
        ConfigError, match="not the master key the secrets in the database were encrypted with"
    ):
        await lifecycle.start(
            make_settings(tmp_path, url, OPSCRAFT_MASTER_KEY=old.master.encoded()), worker=False
        )
    restarted = await lifecycle.start(
        make_settings(tmp_path, url, OPSCRAFT_MASTER_KEY=new_key.encoded()), worker=False
    )
    assert restarted.vault is not None and restarted.vault.key_version == new.key_version


async def test_rotation_with_an_undecryptable_secret_changes_nothing(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    ids = await create_all(client, operator)
    async with runtime.current().db.session() as session:
        await session.exec(
            update(Secret).where(col(Secret.id) == ids["API_TOKEN"]).values(nonce=os.urandom(12))
        )
        await session.commit()
    old = keyring.current_vault()
    async with runtime.current().db.session() as session:
        with pytest.raises(Invalid, match="secret API_TOKEN could not be decrypted; nothing was rotated"):
            await keyring.rotate(session, old, parse_key(generate_key_text(), "test"))
    async with runtime.current().db.session() as session:
        secret = (await session.exec(select(Secret).where(col(Secret.name) == "DB_PASSWORD"))).one()
        assert secret.key_version == old.key_version and keyring.reveal(old, secret) == VALUES["DB_PASSWORD"]


async def test_rotation_to_the_same_key_is_refused(rt: runtime.Runtime) -> None:
    old = keyring.current_vault()
    async with rt.db.session() as session:
        with pytest.raises(Invalid, match="the new master key is the same as the current one"):
            await keyring.rotate(session, old, MasterKey(old.master.key, "test"))


async def test_wrong_or_missing_key_at_start_is_refused(rt: runtime.Runtime, tmp_path: Path) -> None:
    url = None if rt.settings.is_sqlite else PG_URL
    await lifecycle.stop()
    with pytest.raises(ConfigError) as err:
        await lifecycle.start(make_settings(tmp_path, url, OPSCRAFT_MASTER_KEY=generate_key_text()))
    assert str(err.value).startswith("OPSCRAFT_MASTER_KEY: this is not the master key")
    assert "\n" not in str(err.value)
    (tmp_path / "master.key").unlink()
    with pytest.raises(
        ConfigError, match=r"master\.key is missing, but the database was set up with a master key"
    ):
        await lifecycle.start(make_settings(tmp_path, url))
    assert not (tmp_path / "master.key").exists()
