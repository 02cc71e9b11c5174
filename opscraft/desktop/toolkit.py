"""The desktop window's GUI toolkit: pywebview's Qt backend (PySide6 + Qt WebEngine from PyPI).

Why Qt and not GTK: see docs/desktop.md. `problem()` names what is missing in one line, so a
missing display or toolkit never ends in a traceback or a headless server.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import os
import socket
import sys
from pathlib import Path

#: pywebview's `gui=` value for the backend OpsCraft installs and bundles.
GUI = "qt"
INSTALL_HINT = (
    "pip install 'opscraft[desktop]' (from a clone, `python3 -m opscraft desktop` installs it into .venv)"
)
#: Python modules the window needs (distributions in the `desktop` extra of pyproject.toml).
MODULES = ("webview", "qtpy", "PySide6.QtWebEngineWidgets")
#: System libraries Qt's X11 platform plugin and Qt WebEngine load, with Debian's package names
#: (PySide6's wheels bundle Qt itself, not these). Found with `ldd` on PySide6 6.12's libraries.
X11_LIBRARIES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libXcomposite.so.1": "libxcomposite1",
    "libXdamage.so.1": "libxdamage1",
    "libXrandr.so.2": "libxrandr2",
    "libXtst.so.6": "libxtst6",
    "libxkbfile.so.1": "libxkbfile1",
    "libnss3.so": "libnss3",
    "libasound.so.2": "libasound2",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libgbm.so.1": "libgbm1",
    "libfontconfig.so.1": "libfontconfig1",
    "libdbus-1.so.3": "libdbus-1-3",
}


def _missing_libraries() -> list[str]:
    missing = []
    for soname, package in X11_LIBRARIES.items():
        try:
            ctypes.CDLL(soname)
        except OSError:
            missing.append(package)
    return missing


def _x11_reachable(display: str) -> bool:
    """Whether the X server `display` (DISPLAY's value, e.g. `:0`) accepts a connection: the
    one Qt's xcb platform plugin opens, made the same way (libxcb's `xcb_connect`)."""
    try:
        xcb = ctypes.CDLL("libxcb.so.1")
    except OSError:
        return False
    xcb.xcb_connect.restype = ctypes.c_void_p
    xcb.xcb_connect.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
    xcb.xcb_connection_has_error.argtypes = [ctypes.c_void_p]
    xcb.xcb_disconnect.argtypes = [ctypes.c_void_p]
    connection = xcb.xcb_connect(display.encode(), None)  # never NULL: an error object instead
    try:
        return bool(connection) and xcb.xcb_connection_has_error(connection) == 0
    finally:
        if connection:
            xcb.xcb_disconnect(connection)


def _wayland_reachable(display: str) -> bool:
    """Whether the Wayland compositor `display` (WAYLAND_DISPLAY's value: a socket name in
    XDG_RUNTIME_DIR, or an absolute path) accepts a connection on its socket."""
    path = Path(os.environ.get("XDG_RUNTIME_DIR", "")) / display  # an absolute `display` wins
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe, contextlib.suppress(OSError):
        probe.settimeout(2)
        probe.connect(str(path))
        return True
    return False


def unreachable_display() -> str | None:
    """The displays set (`DISPLAY=...`, `WAYLAND_DISPLAY=...`) when none of them accepts a
    connection, else None. Qt falls back from one platform to the other, so one is enough.
    A stale DISPLAY (an ended session, an SSH login without X forwarding) ended the launch
    after the server had started, with Qt's misleading "xcb-cursor0 ... is needed" and
    "Reinstalling the application may fix this problem"."""
    x11 = os.environ.get("DISPLAY")
    wayland = os.environ.get("WAYLAND_DISPLAY")
    if (x11 and _x11_reachable(x11)) or (wayland and _wayland_reachable(wayland)):
        return None
    named = (("DISPLAY", x11), ("WAYLAND_DISPLAY", wayland))
    return ", ".join(f"{name}={value}" for name, value in named if value)


def problem() -> str | None:
    """One line saying what to install or set for the window to open, or None when all is there."""
    if sys.platform.startswith("linux"):
        if not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            return (
                "opscraft: no display for the desktop window (DISPLAY and WAYLAND_DISPLAY are unset): "
                "start it from a desktop session, or run `opscraft serve` and use a browser"
            )
    for module in MODULES:
        try:
            found = importlib.util.find_spec(module) is not None
        except ImportError:
            found = False
        if not found:
            return f"opscraft: the desktop window needs pywebview and Qt WebEngine ({module}): {INSTALL_HINT}"
    if sys.platform.startswith("linux"):
        missing = _missing_libraries()
        if missing:
            return (
                "opscraft: the desktop window needs system libraries: "
                f"apt-get install {' '.join(missing)} (Debian/Ubuntu package names)"
            )
        unreachable = unreachable_display()
        if unreachable:
            return (
                f"opscraft: cannot connect to the display for the desktop window ({unreachable}): "
                "start it from a running desktop session, or run `opscraft serve` and use a browser"
            )
    return None


def prepare_environment() -> None:
    """Environment the window process inherits: PySide6 for qtpy, and as root no Chromium sandbox.
    Call before the window process (and multiprocessing's resource tracker) is started.

    Qt WebEngine (Chromium) refuses to start as root with its sandbox on; root has nothing left
    to sandbox the renderer from, so only then is it turned off (never for a normal user).
    """
    os.environ.setdefault("QT_API", "pyside6")
    # NiceGUI ends native mode with os._exit(), so its window queues' semaphores are left for
    # multiprocessing's resource tracker to remove, which it does, with a warning per exit.
    os.environ.setdefault("PYTHONWARNINGS", "ignore:resource_tracker:UserWarning")
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        os.environ["QTWEBENGINE_DISABLE_SANDBOX"] = "1"
