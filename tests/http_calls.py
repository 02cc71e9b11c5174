"""httpx's one-call functions (`httpx.get`, `httpx.post`, ...) in the test process, without a
new certificate store per call.

Each of them makes an `httpx.Client` for the one request, and each client with the default
certificate check (`verify=True`) builds an SSL context, loading certifi's CA bundle: 43 ms of
CPU on the development machine (session 45), where the request itself to a live server costs the
test process 1.6 ms. The suite's tests call them a few hundred places, several in polling loops
(`tests.ui_journey.wait_run`: every 0.3 s, 14 % of a core spent loading certificates), for
plain-HTTP requests to servers on loopback that never use the context.

`install()` has those functions build their clients with one SSL context per certificate
setting (`trust_env`, and the `SSL_CERT_FILE` and `SSL_CERT_DIR` it reads), made the first time
as httpx makes it (`httpx.create_ssl_context`): the same check, made once. A call passing its own
`verify` (False, a context) is left as it is; clients a test or OpsCraft makes itself
(`httpx.Client(...)`, `httpx.AsyncClient(...)`) are not touched.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

import httpx
from httpx import _api

_contexts: dict[tuple[bool, str | None, str | None], ssl.SSLContext] = {}


def default_ssl_context(trust_env: bool = True) -> ssl.SSLContext:
    """The SSL context httpx makes for `verify=True` with `trust_env`, made once per value of the
    certificate variables it reads (a test that points `SSL_CERT_FILE` elsewhere gets its own)."""
    key = (
        trust_env,
        os.environ.get("SSL_CERT_FILE") if trust_env else None,
        os.environ.get("SSL_CERT_DIR") if trust_env else None,
    )
    if key not in _contexts:
        _contexts[key] = httpx.create_ssl_context(verify=True, trust_env=trust_env)
    return _contexts[key]


class _OneCallClient(httpx.Client):
    """The client httpx's one-call functions make, its default SSL context kept (`default_ssl_context`)."""

    def __init__(self, *, verify: Any = True, trust_env: bool = True, **options: Any) -> None:
        if verify is True:
            verify = default_ssl_context(trust_env)
        super().__init__(verify=verify, trust_env=trust_env, **options)


def install() -> None:
    """Have `httpx.get`, `httpx.post`, ... (httpx's `_api` module, which makes their clients)
    use `_OneCallClient`. Called once by tests/conftest.py, in each test process."""
    _api.Client = _OneCallClient  # type: ignore[misc]
