"""argon2id password hashing with transparent rehash when parameters change.

Passwords are hashed and checked in Unicode normal form NFKC (NIST SP 800-63B, 5.1.1.2): the
same password typed on another keyboard or pasted from elsewhere may arrive composed (`é`,
U+00E9) or decomposed (`e` + U+0301), and must be accepted either way. A hash made before this
rule (of the password as typed) still verifies, and is replaced at the next login
(`verify_password` says so).
"""

from __future__ import annotations

import functools
import unicodedata
from enum import Enum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters


class Match(Enum):
    """How a password matched its hash: `normal` (NFKC, the current rule) or `as_typed` (a hash
    made before passwords were normalised: rehash it)."""

    normal = "normal"
    as_typed = "as_typed"


@functools.cache
def _dummy_hash() -> str:
    """Verified against when the username is unknown, so a miss costs as much as a hit. Made on
    first use, not at import: one argon2 hash is ~0.25 s of CPU that start-up does not need."""
    return _hasher.hash("opscraft-timing-equalizer")


def normal_form(password: str) -> str:
    """`password` in NFKC, the form that is hashed."""
    return unicodedata.normalize("NFKC", password)


def hash_password(password: str) -> str:
    """An argon2id hash of the password in its normal form (NFKC, as `normal_form` makes it)."""
    return _hasher.hash(normal_form(password))


def _verifies(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def password_match(password: str, hashed: str | None) -> Match | None:
    """How `password` matches `hashed` (None: it does not, or there is no hash). A missing hash
    (an unknown username) is checked against a dummy one the same way, so a miss costs as many
    verifications either way: one, or two for a password NFKC changes (the normal form, then the
    form as typed). With one for an unknown name, such a password's answer came about 0.25 s
    sooner for a name no account has, telling which ones exist."""
    normal = normal_form(password)
    checked = hashed if hashed is not None else _dummy_hash()
    if _verifies(checked, normal):
        return Match.normal if hashed is not None else None
    if normal != password and _verifies(checked, password):
        return Match.as_typed if hashed is not None else None
    return None


def verify_password(password: str, hashed: str | None) -> bool:
    """True when `password` matches the hash; False for no hash or an unreadable one."""
    return password_match(password, hashed) is not None


def needs_rehash(hashed: str) -> bool:
    """True when the hash was made with other parameters than today's and should be replaced at the next
    login.
    """
    return _hasher.check_needs_rehash(hashed)
