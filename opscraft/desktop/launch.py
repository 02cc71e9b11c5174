"""Open the native window around the NiceGUI server: one-time sign-in URL, free loopback port,
title, icon, remembered size; closing the window stops the server (runs: grace, then kill)."""

from __future__ import annotations

import atexit
import logging
import os
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from opscraft.config import Settings
from opscraft.desktop import log_file, sign_in, toolkit, window_process, window_state
from opscraft.security.one_time import OneTimeSecret

log = logging.getLogger(__name__)

TITLE = "OpsCraft"
HOST = "127.0.0.1"  # the window's server listens on loopback only
ICON = Path(__file__).resolve().parent.parent / "assets" / "icon.png"
NEVER_SHOWN = "opscraft: the desktop window could not open (the GUI toolkit's messages are above)"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the kernel's choice)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def open_window(
    settings: Settings, port: int | None = None, prepare: Callable[[], None] | None = None
) -> None:
    """Show the window at once, serve on 127.0.0.1 and keep the window until it is closed; the
    process then exits.

    The window process starts first and shows a start-up page (opscraft.desktop.window_process);
    `prepare()` (the launch's checks that must pass before any port opens) and the server's own
    start run meanwhile, and the window loads the one-time sign-in URL once the server is ready.
    A `prepare()` that exits (SystemExit with its one line: a damaged database, a disabled local
    admin) ends the launch with that line only; the window process ends with the launch.
    Closing the window runs the server's shutdown (runs get the grace period, then are killed;
    NiceGUI allows it 30 s) and exits 0. When the window process ends without ever showing its
    window (the toolkit failed; its own messages are above), it exits 1 after one line saying so.
    """
    from opscraft.app import nicegui_environment

    nicegui_environment(settings)
    from nicegui import app

    port = port or free_port()
    secret = OneTimeSecret()
    shown: list[bool] = []

    def remember_size(event: Any) -> None:
        try:
            window_state.save(settings.data_dir, event.args["width"], event.args["height"])
        except (OSError, KeyError, TypeError, ValueError) as exc:
            log.warning("could not remember the window size: %s", exc)

    # The URL reaches the window process through multiprocessing's pipe, never its arguments.
    app.native.window_args["url"] = f"http://{HOST}:{port}{sign_in.PATH}?token={secret.issue()}"
    app.native.window_args["min_size"] = window_state.MIN_SIZE
    app.native.start_args.update(gui=toolkit.GUI, icon=str(ICON))
    app.native.on("shown", lambda _event: shown.append(True))
    # NiceGUI ends native mode with os._exit(0) after the shutdown hooks and atexit handlers.
    atexit.register(_exit_if_never_shown, shown)
    app.native.on("resized", remember_size)
    window_process.start(HOST, port, TITLE, window_state.load(settings.data_dir))
    if prepare is not None:
        try:
            prepare()
        except SystemExit as refused:
            _end_refused(refused)
    from opscraft.app import serve

    sign_in.install(secret)
    serve(settings, HOST, port)


def _end_refused(refused: SystemExit) -> NoReturn:
    """End a launch that `prepare()` refused (SystemExit with its one line, e.g. a damaged
    database) at once, with that line and its status: the window did not fail, so no
    `NEVER_SHOWN` line, and no interpreter exit, where NiceGUI's watch of the window process
    (which multiprocessing's exit handler terminates) ended the launch with status 0. The window
    process sees the launch gone and ends too (`window_process`). The line goes into the log
    file too, naming it (`log_file.refusal`)."""
    from opscraft.cli.common import end_process

    if isinstance(refused.code, str):
        sys.stderr.write(f"{log_file.refusal(refused.code)}\n")
    end_process(1 if isinstance(refused.code, str) else int(refused.code or 0))


def _exit_if_never_shown(shown: list[bool]) -> None:
    if not shown:
        sys.stderr.write(f"{log_file.refusal(NEVER_SHOWN)}\n")
        sys.stderr.flush()
        os._exit(1)
