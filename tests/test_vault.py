"""The vault: AES-256-GCM bound to its row, and how the master key is found."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from opscraft.config import ConfigError
from opscraft.security.vault import (
    KEY_FILE,
    DecryptError,
    MasterKey,
    Sealed,
    Vault,
    generate_key_text,
    load_master_key,
    parse_key,
)
from tests.conftest import make_settings

VALUE = "s3cr3t-válue"


def vault(version: int = 1) -> Vault:
    return Vault(MasterKey(os.urandom(32), "test"), version)


def test_round_trip_with_fresh_salt_and_nonce() -> None:
    v = vault()
    a = v.seal(VALUE, secret_id=1, name="DB")
    b = v.seal(VALUE, secret_id=1, name="DB")
    assert (len(a.salt), len(a.nonce)) == (16, 12)
    assert a.salt != b.salt and a.nonce != b.nonce and a.ciphertext != b.ciphertext
    assert VALUE.encode() not in a.ciphertext
    assert v.open(a, secret_id=1, name="DB", key_version=1) == VALUE


@pytest.mark.parametrize(
    "row", [{"secret_id": 2, "name": "DB"}, {"secret_id": 1, "name": "OTHER"}], ids=["other-id", "other-name"]
)
def test_ciphertext_moved_to_another_row_does_not_decrypt(row: dict) -> None:
    v = vault()
    box = v.seal(VALUE, secret_id=1, name="DB")
    with pytest.raises(DecryptError) as err:
        v.open(box, key_version=1, **row)
    assert str(err.value) == f"secret {row['name']} could not be decrypted"


def test_other_key_version_does_not_decrypt() -> None:
    v = vault(1)
    box = v.seal(VALUE, secret_id=1, name="DB")
    with pytest.raises(DecryptError):
        v.open(box, secret_id=1, name="DB", key_version=2)


@pytest.mark.parametrize("part", ["ciphertext", "salt", "nonce"])
def test_tampering_is_detected(part: str) -> None:
    v = vault()
    box = v.seal(VALUE, secret_id=1, name="DB")
    data = bytearray(getattr(box, part))
    data[0] ^= 1
    tampered = Sealed(**{**box.__dict__, part: bytes(data)})
    with pytest.raises(DecryptError) as err:
        v.open(tampered, secret_id=1, name="DB", key_version=1)
    assert str(err.value) == "secret DB could not be decrypted"


def test_wrong_master_key_does_not_decrypt() -> None:
    box = vault().seal(VALUE, secret_id=1, name="DB")
    with pytest.raises(DecryptError):
        vault().open(box, secret_id=1, name="DB", key_version=1)


@pytest.mark.parametrize("text", ["", "not base64!", base64.b64encode(b"x" * 16).decode()])
def test_bad_key_text_is_one_clear_line(text: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_key(text, "OPSCRAFT_MASTER_KEY")
    message = str(err.value)
    assert message.startswith("OPSCRAFT_MASTER_KEY: must be the base64 encoding of exactly 32 bytes")
    assert "\n" not in message


def test_key_from_environment(tmp_path: Path) -> None:
    text = generate_key_text()
    settings = make_settings(tmp_path, OPSCRAFT_MASTER_KEY=text)
    key = load_master_key(settings, create=True)
    assert key.key == base64.b64decode(text) and key.source == "OPSCRAFT_MASTER_KEY"
    assert not (tmp_path / KEY_FILE).exists()


def test_key_file_created_0600_in_dev_and_reused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    first = load_master_key(settings, create=True)
    path = tmp_path / KEY_FILE
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_master_key(settings, create=False).key == first.key


def test_readable_key_file_is_refused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    load_master_key(settings, create=True)
    (tmp_path / KEY_FILE).chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_master_key(settings, create=False)


def test_production_without_key_is_refused(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, ENVIRONMENT="production", SECRET_KEY="p" * 40)
    with pytest.raises(ConfigError, match="OPSCRAFT_MASTER_KEY: required when ENVIRONMENT=production"):
        load_master_key(settings, create=True)
    assert not (tmp_path / KEY_FILE).exists()


def test_missing_key_file_is_not_recreated_when_the_database_expects_a_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="to that key or restore the file"):
        load_master_key(make_settings(tmp_path), create=False)
    assert not (tmp_path / KEY_FILE).exists()
