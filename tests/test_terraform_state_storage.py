"""Terraform states at rest: encrypted by the vault, re-encrypted by a key rotation."""

from __future__ import annotations

import json
import tracemalloc

import httpx
import pytest
from sqlmodel import select

from opscraft import runtime
from opscraft.db.models import TerraformState, TerraformStateVersion
from opscraft.security.vault import DecryptError, generate_key_text, parse_key
from opscraft.services import keyring, terraform_state
from tests.conftest import LoggedIn

STATE = '{"version": 4, "serial": 3, "lineage": "abc", "outputs": {"pw": {"value": "State-Marker-91c4"}}}'


async def test_states_are_sealed_and_follow_a_key_rotation(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    body = {"name": "tf-at-rest", "script_type": "terraform", "content": "locals {}\n"}
    script_id = (await client.post("/api/v1/scripts", json=body, headers=operator.headers)).json()["id"]
    async with runtime.current().db.session() as session:
        state = TerraformState(script_id=script_id, workspace="default")
        session.add(state)
        await session.flush()
        version = await terraform_state._add_version(
            session, state, STATE, execution_id=None, user_id=None, note=""
        )
        await session.commit()
        assert b"State-Marker" not in version.ciphertext
        assert (version.serial, version.lineage, version.number) == (3, "abc", 1)
    old = keyring.current_vault()
    async with runtime.current().db.session() as session:
        new, _ = await keyring.rotate(session, old, parse_key(generate_key_text(), "test"))
    async with runtime.current().db.session() as session:
        stored = (await session.exec(select(TerraformStateVersion))).one()
        assert stored.key_version == new.key_version
        assert keyring.reveal_state(new, stored) == STATE
        with pytest.raises(DecryptError):
            keyring.reveal_state(old, stored)


async def test_a_key_rotation_holds_one_state_at_a_time(
    client: httpx.AsyncClient, operator: LoggedIn
) -> None:
    """Every apply keeps a version and a state may be 64 MiB: the rotation used to load every
    version at once and hold each ciphertext twice (old and new) until its commit, so its memory
    grew with the whole history. It now re-encrypts one version at a time: its peak stays within
    a few states' size, whatever the number of versions."""
    body = {"name": "tf-many", "script_type": "terraform", "content": "locals {}\n"}
    script_id = (await client.post("/api/v1/scripts", json=body, headers=operator.headers)).json()["id"]
    size, count = 2 * 1024 * 1024, 12
    async with runtime.current().db.session() as session:
        state = TerraformState(script_id=script_id, workspace="default")
        session.add(state)
        await session.flush()
        for serial in range(1, count + 1):
            text = json.dumps({"version": 4, "serial": serial, "lineage": "l", "pad": "x" * size})
            await terraform_state._add_version(session, state, text, execution_id=None, user_id=None, note="")
        await session.commit()
    old = keyring.current_vault()
    tracemalloc.start()
    try:
        async with runtime.current().db.session() as session:
            new, _ = await keyring.rotate(session, old, parse_key(generate_key_text(), "test"))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 6 * size, f"peak {peak / 2**20:.1f} MiB for {count} states of {size / 2**20:.0f} MiB"
    async with runtime.current().db.session() as session:
        stored = (
            await session.exec(select(TerraformStateVersion).order_by(TerraformStateVersion.number))
        ).all()
        assert [v.key_version for v in stored] == [new.key_version] * count
        assert json.loads(keyring.reveal_state(new, stored[-1]))["serial"] == count
