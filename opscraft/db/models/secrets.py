"""Encrypted secrets and which scripts they are attached to."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Column, LargeBinary, Text
from sqlmodel import Field, SQLModel

from opscraft.db.types import UTCDateTime, utcnow


class SecretKind(StrEnum):
    """How a run receives the value: as an environment variable, or as a file (SSH key,
    kubeconfig, credentials JSON, CA bundle) whose path is in the environment variable."""

    env = "env"
    file = "file"


class Secret(SQLModel, table=True):
    """A vault secret: the value is only stored encrypted (AES-GCM `ciphertext` with its 12-byte `nonce`;
    the data key is HKDF-SHA256 of master key `key_version` with the 16-byte `salt`).
    """

    __tablename__ = "secrets"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=128, unique=True, index=True)
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    salt: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    nonce: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    key_version: int = Field(default=1)
    kind: str = Field(default=SecretKind.env.value, max_length=8)  # a SecretKind value
    created_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    updated_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ScriptSecret(SQLModel, table=True):
    """The attachment of a secret to a script: its runs get the secret's value."""

    __tablename__ = "script_secrets"

    script_id: int = Field(foreign_key="scripts.id", primary_key=True, ondelete="CASCADE")
    # RESTRICT (0020): a delete racing an attach is refused, never drops it (services/secrets.delete).
    secret_id: int = Field(foreign_key="secrets.id", primary_key=True, index=True, ondelete="RESTRICT")
    attached_by: int | None = Field(default=None, foreign_key="users.id", ondelete="SET NULL")
    attached_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class SecretPreviousValue(SQLModel, table=True):
    """The value a secret had before its last new value, kept while webhooks signed with the
    secret still accept it (migration 0045; services/secrets.py, *rotation window*): encrypted as
    a secret's value is (AES-GCM `ciphertext`, `nonce`, HKDF salt, master key `key_version`),
    bound to its secret's id by the associated data, deleted once `accepted_until` has passed
    (or at once, when its window is ended early). One per secret: the next new value replaces it."""

    __tablename__ = "secret_previous_values"

    secret_id: int = Field(foreign_key="secrets.id", primary_key=True, ondelete="CASCADE")
    ciphertext: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    salt: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    nonce: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    key_version: int = Field(default=1)
    replaced_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    accepted_until: datetime = Field(sa_type=UTCDateTime, index=True)
