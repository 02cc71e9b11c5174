"""Every WebSocket of `opscraft serve` runs on uvicorn's `websockets-sansio` implementation, not the
`wsproto` NiceGUI's `ui.run` hard-codes (opscraft.app.server_protocols, issue 15)."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from opscraft.app import WS_PROTOCOL, server_protocols
from tests.conftest import start_server, stop_server

# uvicorn 0.54's sans-I/O protocol answers a permessage-deflate offer with 12-bit windows;
# its wsproto protocol answers `client_max_window_bits=15` and no server window.
SANSIO_DEFLATE = "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"


async def asgi_app(scope: object, receive: object, send: object) -> None:
    """An ASGI app for building a config (never called)."""


def test_ui_run_config_gets_the_chosen_protocol_and_is_restored() -> None:
    ui_run = importlib.import_module("nicegui.ui_run")
    nicegui_config = ui_run.CustomServerConfig
    assert "ws='wsproto'" in inspect.getsource(ui_run.run), "NiceGUI no longer hard-codes wsproto"
    with server_protocols():
        config = ui_run.CustomServerConfig(asgi_app, ws="wsproto", log_level="warning")
        assert isinstance(config, nicegui_config), "NiceGUI's Server asserts its own config class"
        config.load()
    assert WS_PROTOCOL == "websockets-sansio"
    assert config.ws == WS_PROTOCOL
    assert config.ws_protocol_class is WebSocketsSansIOProtocol
    assert ui_run.CustomServerConfig is nicegui_config


def test_live_server_serves_both_sockets_with_sansio(tmp_path: Path) -> None:
    """A real `opscraft serve`: NiceGUI's socket.io (engine.io open packet, then the socket.io
    connect answered) and the API's `/ws/` (refused with 4401) both answer the upgrade as the
    sans-I/O protocol does."""
    server = start_server(tmp_path / "server")
    host = server.url.removeprefix("http://")
    try:
        with connect(f"ws://{host}/_nicegui_ws/socket.io/?EIO=4&transport=websocket", open_timeout=30) as sio:
            assert sio.response.headers["Sec-WebSocket-Extensions"] == SANSIO_DEFLATE
            assert str(sio.recv(timeout=30)).startswith('0{"sid":'), "engine.io open packet"
            sio.send("40")
            assert str(sio.recv(timeout=30)).startswith("4"), "socket.io answers the connect"
        with connect(f"ws://{host}/ws/executions/1", open_timeout=30) as api:
            assert api.response.headers["Sec-WebSocket-Extensions"] == SANSIO_DEFLATE
            try:
                api.recv(timeout=30)
                raise AssertionError("the server should have closed the connection")
            except ConnectionClosed as closed:
                assert closed.rcvd is not None and closed.rcvd.code == 4401
    finally:
        stop_server(server)
