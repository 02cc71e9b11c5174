"""The NiceGUI application: API + pages in one process. Only `serve()` touches NiceGUI's globals."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import importlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from opscraft import collector, lifecycle
from opscraft.config import Settings
from opscraft.logs import NoWireDebug, RedactCredentials
from opscraft.server_protocol import JsonErrorHTTPProtocol

log = logging.getLogger(__name__)

# uvicorn's WebSocket implementation for every socket the server accepts: the API's `/ws/` and
# NiceGUI's socket.io connection (`/_nicegui_ws/`). See `server_protocols`.
WS_PROTOCOL = "websockets-sansio"
# Answers shorter than this are sent as they are, also to a client that accepts gzip: one that
# fits a TCP segment takes no fewer packets compressed, and compressing it (level 9) cost about
# 100 us of the event loop's CPU per answer, the submission's 670-byte JSON included (NiceGUI's
# default: Starlette's GZipMiddleware from 500 bytes; issue 15, docs/benchmarks.md session 28).
GZIP_MIN_BYTES = 1400


def versioned_prefix() -> str:
    """Where NiceGUI serves the files of its version (JS, CSS, fonts, components), unchanged while
    that version runs; its `dynamic_resources/` under it are made per request."""
    from nicegui.version import __version__

    return f"/_nicegui/{__version__}/"


def _gzip(app: Any) -> Any:
    """Starlette's GZipMiddleware (NiceGUI's own) from `GZIP_MIN_BYTES` on, which compresses each
    of NiceGUI's versioned files (`versioned_prefix`, not its per-request `dynamic_resources/`)
    once and sends that again (`opscraft.static_gzip`)."""
    from opscraft.static_gzip import CachingGZipMiddleware

    prefix = versioned_prefix()
    return CachingGZipMiddleware(
        app, GZIP_MIN_BYTES, immutable_prefix=prefix, except_prefixes=(f"{prefix}dynamic_resources/",)
    )


def storage_secret(settings: Settings) -> str:
    """The NiceGUI session-storage secret, derived from SECRET_KEY (never the key itself)."""
    assert settings.secret_key
    return hmac.new(settings.secret_key.encode(), b"opscraft-ui-storage", hashlib.sha256).hexdigest()


def nicegui_environment(settings: Settings) -> None:
    """Set the variables NiceGUI reads once, when it is imported (so call this before): session
    storage in the data directory (else it writes `.nicegui/` in the cwd) and, with `REDIS_URL`,
    per-user storage in Redis, shared by every web process."""
    os.environ.setdefault("NICEGUI_STORAGE_PATH", str(settings.data_dir / "ui-storage"))
    if settings.redis_url:
        os.environ.setdefault("NICEGUI_REDIS_URL", settings.redis_url)
        os.environ.setdefault("NICEGUI_REDIS_KEY_PREFIX", f"{settings.redis_prefix}:nicegui:")


def configure(settings: Settings) -> list[Exception]:
    """Register API, pages and lifecycle hooks on NiceGUI's app (call once, before `ui.run`).

    With `REDIS_URL`, NiceGUI keeps `app.storage.user` in Redis (`NICEGUI_REDIS_URL`), so a
    browser session survives being served by another web process; its socket connection still
    needs sticky sessions (docs/deployment.md).

    Returns the list that receives what `lifecycle.start` raised, if it failed (a worker id
    another live worker holds, the database gone since the CLI checked it): the server is then
    stopped (`serve` raises it), where it used to log a traceback and go on answering 503
    "starting" for ever, a container up and never healthy that no restart policy restarts."""
    nicegui_environment(settings)
    from nicegui import app, background_tasks

    from opscraft.api import install_api, lean_path, route_state
    from opscraft.api.docs import install_docs
    from opscraft.ui import redis_storage, register_pages, stylesheet, unavailable

    if settings.redis_url:
        redis_storage.install(unavailable.sessions_page)

    install_api(app, settings)
    install_docs(app)
    register_pages()
    stylesheet.install(versioned_prefix())
    lean_path.install(app, versioned_prefix(), cache_control=lambda: app.config.cache_control_directives)
    for name in ("uvicorn.access", "uvicorn.error"):  # uvicorn's own handlers: not the root's filter
        logging.getLogger(name).addFilter(RedactCredentials())
    logging.getLogger("uvicorn.error").addFilter(NoWireDebug())

    failed: list[Exception] = []

    async def _startup() -> None:
        # Always dispatch run events, also with `--workers 0`: the web process then declares lost
        # workers (nobody did once every worker was gone: their runs stayed `running`) and runs
        # the automation loops, as docs/architecture.md and docs/executions.md say it does.
        try:
            await lifecycle.start(settings, dispatch=True, signing="record")
        except Exception as exc:
            failed.append(exc)
            app.shutdown()
            return
        background_tasks.create(_ahead(), name="build route state")

    async def _ahead() -> None:
        await route_state.build_ahead(app)
        collector.settle()  # what start-up left alive, out of the collector's walks

    app.on_startup(_startup)
    app.on_shutdown(lifecycle.stop)
    return failed


@contextlib.contextmanager
def server_protocols(name: str = WS_PROTOCOL) -> Iterator[None]:
    """While inside, NiceGUI's `ui.run` builds its uvicorn config with `ws=name` (a key of
    `uvicorn.config.WS_PROTOCOLS`) instead of the `ws='wsproto'` it hard-codes
    (nicegui/ui_run.py, `config = CustomServerConfig(..., ws='wsproto', **kwargs)`, NiceGUI 3.18;
    passing `ws=` to `ui.run` is a duplicate keyword, hence this seam), and with
    `http=JsonErrorHTTPProtocol`: uvicorn's own HTTP protocol, whose `400` for a request it cannot
    read has the API's `{detail, errors}` body (`opscraft.server_protocol`).

    Why: wsproto is uvicorn's pure-Python implementation (the handshake is parsed again by h11,
    every frame built in Python); `websockets-sansio` runs the `websockets` package's sans-I/O
    protocol (C-accelerated framing, its own handshake parser) and is uvicorn's own default since
    0.50 (`ws="auto"`). NiceGUI chose wsproto only to leave the deprecated `websockets.legacy`
    implementation (zauberzeug/nicegui#5256: "We can choose anything but `auto` ... and
    `websockets`"; "we may use `websockets-sansio` as well"), not for a behaviour of wsproto's.
    Measured (docs/benchmarks.md, issue 15): 1-7 % less server CPU per watched run, 17 % less per
    connection with permessage-deflate. Both sockets keep the same ASGI contract; uvicorn 0.54's
    sans-I/O protocol negotiates permessage-deflate with 12-bit windows (wsproto: 15), which is
    how a client can tell them apart (tests/test_ws_protocol.py).

    Replaces `nicegui.ui_run.CustomServerConfig` by a subclass for the duration (restored on exit);
    raises AttributeError if a NiceGUI upgrade renamed it, rather than silently serving wsproto."""
    ui_run = importlib.import_module("nicegui.ui_run")
    nicegui_config: type[Any] = ui_run.CustomServerConfig

    class ServerConfig(nicegui_config):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "ws": name, "http": JsonErrorHTTPProtocol})

    ui_run.CustomServerConfig = ServerConfig
    try:
        yield
    finally:
        ui_run.CustomServerConfig = nicegui_config


def serve(settings: Settings, host: str, port: int) -> None:
    """Run the app until stopped (the desktop window, when there is one, was started before by
    opscraft.desktop.launch and talks to this server like a browser). Every WebSocket is served by
    uvicorn's `WS_PROTOCOL` implementation (`server_protocols`). On SIGTERM, answers still open
    after `SERVER_STOP_SECONDS` (event streams of runs) are cut, so a stop is not held by them.
    Raises what the runtime's start raised (`configure`), once the server has stopped.

    uvicorn logs through the root logger (`log_config=None`), so its lines (start, stop, one per
    request) have the format of every other line, JSON with `LOG_FORMAT=json`, instead of
    uvicorn's own `INFO:     ...` text in the middle of a JSON log."""
    failed = configure(settings)
    from nicegui import ui

    from opscraft.api.sse import SERVER_STOP_SECONDS  # here: the desktop launcher imports this module

    with server_protocols():
        ui.run(
            host=host,
            port=port,
            title="OpsCraft",
            favicon="🛠",
            dark=None,
            reload=False,
            show=False,
            storage_secret=storage_secret(settings),
            uvicorn_logging_level=settings.log_level.lower(),
            show_welcome_message=False,
            tailwind=False,  # the pages link Tailwind's CSS compiled ahead (`opscraft.ui.stylesheet`)
            reconnect_timeout=10,
            timeout_graceful_shutdown=SERVER_STOP_SECONDS,
            log_config=None,
            gzip_middleware_factory=_gzip,
        )
    if failed:
        raise failed[0]
