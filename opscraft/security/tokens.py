"""JWT access and refresh tokens (PyJWT, HS256) with a token-type claim; personal access tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import jwt

from opscraft.db.types import utcnow

TokenType = Literal["access", "refresh"]


class TokenError(Exception):
    """The token is malformed, expired, of the wrong type or signed with another key.

    `reason` is "expired", "invalid" or "wrong_type"; the message is a complete sentence
    ("the access token has expired")."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class TokenClaims:
    """A token's claims: `sub` (user id), `type`, `ver` (the user's token version), `acct` (the
    account's `User.account_key`: an id alone could name a later account), `jti`, `exp`, and
    for an access token `sid` (`sign_in`: the `RefreshToken.family_id` of the password sign-in
    it was issued to, which a logout without a refresh token ends; "" in tokens issued before)."""

    user_id: int
    token_type: TokenType
    version: int
    jti: str
    expires_at: datetime
    account_key: str = ""
    sign_in: str = ""


def issue_token(
    key: str,
    user_id: int,
    token_type: TokenType,
    version: int,
    lifetime: timedelta,
    account_key: str,
    sign_in: str = "",
) -> tuple[str, TokenClaims]:
    """A signed token (HS256 with `key`) for the account (`user_id`, `account_key`) and, when
    given, the sign-in it belongs to (`sign_in`, claim `sid`), and its claims. `iat` and `exp`
    are in the database's clock (`db.types.utcnow`), as `decode_token` judges them."""
    now = utcnow()
    jti = secrets.token_hex(16)
    claims = TokenClaims(user_id, token_type, version, jti, now + lifetime, account_key, sign_in)
    payload = {
        "sub": str(user_id),
        "acct": account_key,
        "type": token_type,
        "ver": version,
        "jti": claims.jti,
        "iat": now,
        "exp": claims.expires_at,
    } | ({"sid": sign_in} if sign_in else {})
    return jwt.encode(payload, key, algorithm="HS256"), claims


# Access tokens already verified, by (key, token): every API request and WebSocket presents one,
# and checking its signature again each time was a visible part of a run's server CPU (issue 15).
# A hit is still refused once `exp` has passed, exactly when a token verified again would be.
VERIFIED_ACCESS_TOKENS = 1024
_verified: dict[tuple[str, str], TokenClaims] = {}


def decode_token(key: str, token: str, expected_type: TokenType) -> TokenClaims:
    """The claims of `token`, signed with `key` (HS256), of type `expected_type`, not expired.
    Raises TokenError. An access token verified before is taken from a bounded per-process
    memo until it expires (the user behind it is still checked by the caller on every use).

    `exp` is judged in the database's clock (`db.types.utcnow`), not by PyJWT in this machine's:
    a web process whose clock was 31 minutes ahead refused every access token the others issued
    as expired (and one behind, as not yet valid: `iat`), so a user it served was signed out."""
    if expected_type == "access":
        known = _verified.get((key, token))
        if known is not None and utcnow() < known.expires_at:
            return known
    claims = _verify(key, token, expected_type)
    if expected_type == "access":
        if len(_verified) >= VERIFIED_ACCESS_TOKENS:
            _verified.pop(next(iter(_verified)), None)  # the oldest
        _verified[(key, token)] = claims
    return claims


def _verify(key: str, token: str, expected_type: TokenType) -> TokenClaims:
    try:
        payload = jwt.decode(
            token,
            key,
            algorithms=["HS256"],
            options={"require": ["exp", "sub", "type", "jti"], "verify_exp": False, "verify_iat": False},
        )
        expires_at = datetime.fromtimestamp(int(payload["exp"]), UTC)
    except (jwt.PyJWTError, TypeError, ValueError, OverflowError, OSError):
        raise TokenError(f"the {expected_type} token is invalid", "invalid") from None
    if utcnow() >= expires_at:
        raise TokenError(f"the {expected_type} token has expired", "expired") from None
    if payload.get("type") != expected_type:
        actual = str(payload.get("type"))
        raise TokenError(
            f"this is {_article(actual)} {actual} token, not {_article(expected_type)} {expected_type} token",
            "wrong_type",
        )
    try:
        return TokenClaims(
            user_id=int(payload["sub"]),
            token_type=expected_type,
            version=int(payload.get("ver", 0)),
            jti=str(payload["jti"]),
            expires_at=expires_at,
            account_key=str(payload.get("acct", "")),  # none before migration 0016: refused
            sign_in=str(payload.get("sid", "")),
        )
    except (TypeError, ValueError):
        raise TokenError(f"the {expected_type} token is invalid", "invalid") from None


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


# --- personal access tokens ------------------------------------------------------------------

PAT_PREFIX = "ocp_"
PAT_DISPLAY_CHARS = 8


def new_personal_token() -> tuple[str, str, str]:
    """A new personal access token: (the token shown once, its SHA-256 hex, its display prefix).

    The token is `ocp_` + 43 URL-safe characters (256 random bits). A fast hash is enough for
    a value of that entropy (no dictionary to guess from) and allows an indexed lookup; the
    prefix makes leaked tokens recognisable by secret scanners and lets users tell tokens apart.
    """
    token = PAT_PREFIX + secrets.token_urlsafe(32)
    return token, hash_personal_token(token), token[: len(PAT_PREFIX) + PAT_DISPLAY_CHARS]


def hash_personal_token(token: str) -> str:
    """SHA-256 hex digest of a personal access token (the only form stored)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def is_personal_token(token: str) -> bool:
    """True when `token` has the personal access token form (not a JWT access token)."""
    return token.startswith(PAT_PREFIX)


def same_secret(expected: str, given: str) -> bool:
    """Whether `given` (a caller's text: a header, a password) equals `expected`, compared in
    constant time as UTF-8 bytes. `hmac.compare_digest` refuses a `str` holding a non-ASCII
    character with a TypeError, which a caller's `é` turned into a 500; as bytes it is simply
    not equal (lone surrogates included, through `surrogatepass`)."""
    return hmac.compare_digest(
        expected.encode("utf-8", "surrogatepass"), given.encode("utf-8", "surrogatepass")
    )
