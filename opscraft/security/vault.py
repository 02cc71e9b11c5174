"""Encryption of secret values: AES-256-GCM under a key derived per secret from the master key.

- Per secret: a random 16-byte salt and 12-byte nonce; the data key is HKDF-SHA256(master, salt).
- The associated data binds a ciphertext to its row: secret id, name and key version, so a
  ciphertext copied into another row (or left behind by a rotation) does not decrypt.
- The master key (32 bytes) comes from `OPSCRAFT_MASTER_KEY` (base64) or from the 0600 file
  `master.key` in the data directory, created on first run outside production. It is never
  stored in the database; only a key check value (an HMAC of a constant) is, so a wrong key is
  refused at start instead of at the first execution.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from opscraft import setting_words
from opscraft.config import ConfigError, Environment, Settings
from opscraft.data_dir import create_private

KEY_BYTES = 32
SALT_BYTES = 16
NONCE_BYTES = 12
# AES-GCM appends its 16-byte tag: a ciphertext is the value's UTF-8 bytes and this.
TAG_BYTES = 16
KEY_FILE = "master.key"
# A rotation's new key, written before its commit and renamed over KEY_FILE after it.
STAGED_KEY_FILE = KEY_FILE + ".new"
ENV_NAME = "OPSCRAFT_MASTER_KEY"
GENERATE_HINT = "generate one with: opscraft secrets generate-key"
_DATA_KEY_INFO = b"opscraft secret data key v1"
_CHECK_LABEL = b"opscraft master key check v1"


class DecryptError(Exception):
    """A ciphertext does not decrypt under this key and row (wrong key, tampered or moved)."""


@dataclass(frozen=True)
class Sealed:
    """A secret value as stored: AES-GCM ciphertext with its tag, the 16-byte HKDF salt, the 12-byte nonce."""

    ciphertext: bytes
    salt: bytes
    nonce: bytes


@dataclass(frozen=True)
class MasterKey:
    """The vault master key (KEY_BYTES raw bytes) and where it was read from."""

    key: bytes
    source: str  # where it came from, for messages: the variable name or the file path

    def check_value(self) -> str:
        """A value stored in the database that identifies the key without revealing it."""
        return hmac.new(self.key, _CHECK_LABEL, hashlib.sha256).hexdigest()

    def encoded(self) -> str:
        """The key as base64 text, as OPSCRAFT_MASTER_KEY and the key file hold it."""
        return base64.b64encode(self.key).decode()

    def matches(self, check_value: str) -> bool:
        """True when `check_value` (stored in the database) was made with this key; constant-time
        comparison.
        """
        return hmac.compare_digest(self.check_value(), check_value)


def _aad(secret_id: int, name: str, key_version: int) -> bytes:
    return f"opscraft-secret\x00{secret_id}\x00{name}\x00{key_version}".encode()


def _data_key(master: bytes, salt: bytes) -> AESGCM:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=KEY_BYTES, salt=salt, info=_DATA_KEY_INFO)
    return AESGCM(hkdf.derive(master))


class Vault:
    """Seals and opens secret values with one master key."""

    def __init__(self, master: MasterKey, key_version: int) -> None:
        self.master = master
        self.key_version = key_version

    def seal(self, value: str, *, secret_id: int, name: str) -> Sealed:
        """Encrypt `value` for secret `secret_id` named `name`: a new salt and nonce, AES-GCM with the
        secret's id, name and key version as associated data.
        """
        salt, nonce = os.urandom(SALT_BYTES), os.urandom(NONCE_BYTES)
        aad = _aad(secret_id, name, self.key_version)
        ciphertext = _data_key(self.master.key, salt).encrypt(nonce, value.encode(), aad)
        return Sealed(ciphertext, salt, nonce)

    def open(self, sealed: Sealed, *, secret_id: int, name: str, key_version: int) -> str:
        """The plaintext; `DecryptError` when it does not decrypt for this row and key (one sealed
        under a later key version than this vault's says to restart: the key was rotated)."""
        if key_version > self.key_version:
            raise DecryptError(
                f"secret {name} could not be decrypted: it is under master key version {key_version}, "
                f"this process has version {self.key_version} (the key was rotated since it started: "
                "restart it)"
            )
        try:
            data_key = _data_key(self.master.key, sealed.salt)
            plain = data_key.decrypt(sealed.nonce, sealed.ciphertext, _aad(secret_id, name, key_version))
        except (InvalidTag, ValueError):
            raise DecryptError(f"secret {name} could not be decrypted") from None
        return plain.decode()


def parse_key(text: str, source: str) -> MasterKey:
    """A master key from its base64 text; `ConfigError` naming `source` when it is not 32 bytes."""
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        key = b""
    if len(key) != KEY_BYTES:
        raise ConfigError(
            f"{source}: must be the base64 encoding of exactly {KEY_BYTES} bytes; "
            f"{setting_words.secret_given(text.strip())}; {GENERATE_HINT}"
        )
    return MasterKey(key, source)


def generate_key_text() -> str:
    """A new random master key as base64 text."""
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def read_key_file(path: Path) -> MasterKey:
    """A key file that only its owner may read (like ssh, refuse a group/world-readable one)."""
    try:
        mode = path.stat().st_mode
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the master key file ({exc.strerror})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path}: the master key file must be readable by its owner only: chmod 600 {path}")
    return parse_key(text, str(path))


def load_master_key(settings: Settings, *, create: bool) -> MasterKey:
    """The configured master key: the variable, else the key file (made only when `create`)."""
    if settings.master_key:
        return parse_key(settings.master_key, ENV_NAME)
    path = settings.data_dir / KEY_FILE
    if path.exists():
        return read_key_file(path)
    if settings.environment is Environment.production:
        raise ConfigError(f"{ENV_NAME}: required when ENVIRONMENT=production; {GENERATE_HINT}")
    if not create:
        raise ConfigError(
            f"{ENV_NAME}: not set and {path} is missing, but the database was set up with a master "
            f"key: set {ENV_NAME} to that key or restore the file"
        )
    try:
        return write_key_file(path, generate_key_text())
    except FileExistsError:  # another process created it first
        return read_key_file(path)


def finish_rotation(settings: Settings, check: str) -> MasterKey | None:
    """The key file set-up's new key when a `secrets rotate-key` was interrupted after its
    commit and before renaming STAGED_KEY_FILE over KEY_FILE (killed, power lost): the database
    is then sealed with the staged key, which is renamed over KEY_FILE here and returned. None
    when there is no staged key, it does not fit the database's key check value `check` either,
    or the key comes from OPSCRAFT_MASTER_KEY (nothing is staged then). Before this, every start
    and the rotation's re-run were refused ("this is not the master key ...") until the file was
    renamed by hand. `ConfigError` for a staged file that is unreadable or readable by others."""
    if settings.master_key:
        return None
    path = settings.data_dir / KEY_FILE
    staged = path.with_name(STAGED_KEY_FILE)
    if not staged.exists() or not read_key_file(staged).matches(check):
        return None
    with contextlib.suppress(FileNotFoundError):  # another process starting renamed it first
        os.replace(staged, path)
    key = read_key_file(path)
    return key if key.matches(check) else None


def write_key_file(path: Path, text: str) -> MasterKey:
    """Create `path` (mode 0600, never overwriting: FileExistsError) holding the base64 key
    `text`, whole or not at all (`data_dir.create_private`: a full disk left an empty key file,
    and every later start was refused)."""
    key = parse_key(text, str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    create_private(path, text + "\n")
    return key
