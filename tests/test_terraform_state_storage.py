"""Terraform states at rest: encrypted by the vault, re-encrypted by a key rotation."""

from __future__ import annotations

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
