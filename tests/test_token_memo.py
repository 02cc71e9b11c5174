"""Verified access tokens are memoised (`security.tokens.decode_token`, issue 15's lean request
path) without changing what is refused: an expired token, another key, another type."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from opscraft.security import tokens
from opscraft.security.tokens import TokenError, decode_token, issue_token

KEY = "k" * 32


def test_an_access_token_is_verified_once_then_taken_from_the_memo(monkeypatch: pytest.MonkeyPatch) -> None:
    token, claims = issue_token(KEY, 7, "access", 3, timedelta(minutes=5), "k")
    assert decode_token(KEY, token, "access").jti == claims.jti
    with monkeypatch.context() as patch:
        patch.setattr(tokens.jwt, "decode", lambda *a, **k: pytest.fail("verified again"))
        again = decode_token(KEY, token, "access")
    assert (again.user_id, again.version, again.jti) == (7, 3, claims.jti)
    with pytest.raises(TokenError) as other_key:  # a memo entry is the (key, token) pair
        decode_token("x" * 32, token, "access")
    assert other_key.value.reason == "invalid"


def test_a_memoised_token_is_refused_once_it_expires() -> None:
    token, _ = issue_token(KEY, 7, "access", 0, timedelta(seconds=2), "k")
    decode_token(KEY, token, "access")
    assert (KEY, token) in tokens._verified
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            decode_token(KEY, token, "access")
        except TokenError as exc:
            assert exc.reason == "expired"
            assert str(exc) == "the access token has expired"
            return
        time.sleep(0.1)
    pytest.fail("an expired access token was still accepted")


def test_refresh_tokens_and_wrong_types_are_not_memoised() -> None:
    refresh, _ = issue_token(KEY, 7, "refresh", 0, timedelta(minutes=5), "k")
    decode_token(KEY, refresh, "refresh")
    assert (KEY, refresh) not in tokens._verified
    with pytest.raises(TokenError) as wrong:
        decode_token(KEY, refresh, "access")
    assert wrong.value.reason == "wrong_type"
    assert (KEY, refresh) not in tokens._verified


def test_the_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tokens, "VERIFIED_ACCESS_TOKENS", 3)
    monkeypatch.setattr(tokens, "_verified", {})
    issued = [issue_token(KEY, i, "access", 0, timedelta(minutes=5), "k")[0] for i in range(5)]
    for token in issued:
        decode_token(KEY, token, "access")
    assert list(tokens._verified) == [(KEY, t) for t in issued[-3:]], "the oldest go first"
