"""The desktop window's own process: shown at once with a start-up page, then the app.

NiceGUI's native mode starts its window process only when `ui.run` is called and keeps the
window hidden until the server's port is open, so a launch shows nothing while the server
imports and starts. `start(...)` instead spawns the window process first (through NiceGUI's
public `nicegui.native.activate`, so NiceGUI's window events, window methods and
shutdown-on-close keep working) and runs `show` in it: the window appears with `STARTING_PAGE`
while the server boots in the parent, and loads the app once `GET /api/v1/health` answers 200.
This process imports neither OpsCraft's server nor (until the window is up) NiceGUI.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

#: How often the window process asks whether the server is ready (seconds).
POLL_SECONDS = 0.1
#: How often the window process looks whether the launch (its parent) has ended (seconds).
LAUNCH_WATCH_SECONDS = 0.5
#: How long a window closed while the app was starting waits for its thread (seconds).
CONNECT_WAIT_SECONDS = 30.0
STARTING_PAGE = (
    '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>OpsCraft</title></head>'
    '<body style="font-family:system-ui,sans-serif;display:flex;align-items:center;'
    'justify-content:center;height:90vh;color:#475569">'
    "<main><h1>OpsCraft is starting…</h1><p>The window opens the app in a moment.</p></main></body></html>"
)


def start(host: str, port: int, title: str, size: tuple[int, int]) -> None:
    """Spawn the window process now (call before the server is started; `app.native` window and
    start arguments must be set already). Closing the window stops the server, as in NiceGUI."""
    from nicegui import native
    from nicegui.native import native_mode

    # NiceGUI's activate() spawns `native_mode._open_window`, which waits for the port before it
    # creates the window; `show` has its signature and creates the window at once instead.
    native_mode._open_window = show  # type: ignore[assignment]
    native.activate("http", host, port, title, size[0], size[1], False, False)


def server_ready(host: str, port: int) -> bool:
    """True once `GET /api/v1/health` on host:port answers 200 (the runtime is up)."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/api/v1/health", timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def show(
    protocol: str,
    host: str,
    port: int,
    title: str,
    width: int,
    height: int,
    fullscreen: bool,
    frameless: bool,
    method_queue: Any,
    response_queue: Any,
    event_sender: Connection,
    favicon: str | Path | None = None,
    window_args: dict[str, Any] | None = None,
    settings: dict[str, Any] | None = None,
    start_args: dict[str, Any] | None = None,
    dropped_keys: dict[str, list[str]] | None = None,
) -> None:
    """Body of the window process (NiceGUI's `_open_window` signature): create the window with
    `STARTING_PAGE`, hook NiceGUI's event bridge and window-method executor up once it runs,
    load `window_args["url"]` when the server is ready, and run the GUI loop until closed."""
    import webview

    window_args = dict(window_args or {})
    url = window_args.pop("url", f"{protocol}://{host}:{port}/")
    webview.settings.update(**(settings or {}))
    window = webview.create_window(
        title=title,
        html=STARTING_PAGE,
        width=width,
        height=height,
        fullscreen=fullscreen,
        frameless=frameless,
        **window_args,
    )
    assert window is not None
    threading.Thread(target=_end_with_launch, name="opscraft-launch-watch", daemon=True).start()
    closed = threading.Event()
    connected = threading.Event()
    window.events.closed += closed.set
    # Said at once, not through NiceGUI's bridge below: a window closed while the app was still
    # starting was shown all the same (the launch ends quietly, not as a toolkit failure).
    window.events.shown += lambda: _send(event_sender, {"type": "shown", "args": {}})

    def connect_and_navigate() -> None:  # pywebview runs it in a thread once the GUI loop runs
        try:
            from nicegui.native import native_mode

            if closed.is_set():
                return
            native_mode._bind_pywebview_events(window, event_sender)
            native_mode._start_window_method_executor(window, method_queue, response_queue, closed)
            while not closed.is_set() and not server_ready(host, port):
                time.sleep(POLL_SECONDS)
            if not closed.is_set():
                window.load_url(url)
        finally:
            connected.set()

    webview.start(connect_and_navigate, **(start_args or {}))
    # Closed early, the thread may still be importing NiceGUI: it must finish before the
    # interpreter shuts down under it (RuntimeError: can't register atexit after shutdown).
    connected.wait(CONNECT_WAIT_SECONDS)
    _end_now()


def _end_with_launch() -> None:
    """Wait for the launching (server) process to end, then end this one with its window.

    Closing the window ends the launch (NiceGUI watches this process), but nothing ended this
    process when the launch ended first: stopped by SIGTERM (`kill`, a session's end), or refused
    after the window had appeared (a damaged database, a disabled `desktop` account), it left a
    window saying "OpsCraft is starting" or showing a server that was gone, for ever."""
    parent = multiprocessing.parent_process()
    if parent is None:  # not a spawned child (called directly): there is no launch to follow
        return
    # By the parent's id, not its sentinel pipe (a child the launch forked without exec would
    # hold that pipe open after the launch ended): reparented means the launch is gone.
    while os.getppid() == parent.pid:
        time.sleep(LAUNCH_WATCH_SECONDS)
    _end_now()


def _end_now() -> None:
    """End the window process once its window is closed, whatever threads are left.

    pywebview runs event handlers in non-daemon threads, and NiceGUI's `loaded` handler evaluates
    JavaScript, which waits without a timeout for the page's answer: a window closed during that
    wait left the thread blocked forever, the interpreter waited for it at exit, and the server
    (which stops when this process ends) kept running with no window. Nothing is left to do here
    once the window is gone, so the process exits without joining them."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _send(event_sender: Connection, event: dict[str, Any]) -> None:
    """Send a window event to the server process (gone already: nothing to tell)."""
    with contextlib.suppress(OSError):
        event_sender.send(event)
