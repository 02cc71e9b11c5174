"""A secret that opens exactly one door, once: the desktop window's sign-in ticket."""

from __future__ import annotations

import secrets
import threading
import time

from opscraft.security.tokens import same_secret


class OneTimeSecret:
    """A random 256-bit URL-safe secret held only in this process's memory.

    `consume(candidate)` is true for the first matching candidate presented before `ttl_seconds`
    have passed since `issue()`, and false for every other call: a match spends the secret, a
    wrong guess does not (256 bits cannot be guessed, and a stranger's wrong guess must not
    lock the window out). Comparison is constant-time (`tokens.same_secret`).
    """

    def __init__(self, ttl_seconds: float = 300.0) -> None:
        self._ttl = ttl_seconds
        self._value: str | None = None
        self._issued_at = 0.0
        self._lock = threading.Lock()

    def issue(self) -> str:
        """A new secret (43 characters of base64url); any earlier one stops working."""
        with self._lock:
            self._value = secrets.token_urlsafe(32)
            self._issued_at = time.monotonic()
            return self._value

    def consume(self, candidate: str | None) -> bool:
        """True once, for the issued secret within its lifetime; every later call is false."""
        with self._lock:
            if self._value is None or not candidate:
                return False
            if time.monotonic() - self._issued_at > self._ttl:
                self._value = None
                return False
            if not same_secret(self._value, candidate):
                return False
            self._value = None
            return True
