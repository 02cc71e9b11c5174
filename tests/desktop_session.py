"""A virtual X display (Xvfb) and the few X11 calls the desktop tests need.

The window is found by its title with `xdotool`, photographed with ImageMagick's `import`, and
closed the way a window manager's close button does it: a WM_DELETE_WINDOW client message
(sent here through libX11 with ctypes, since Xvfb runs without a window manager).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

TOOLS = ("Xvfb", "xdotool", "xwininfo", "import", "identify", "convert")


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


@contextmanager
def xvfb(width: int = 1600, height: int = 1000) -> Iterator[str]:
    """A fresh Xvfb server; yields its DISPLAY (`:N`, a number Xvfb picks itself).

    `-noreset`: by default an X server regenerates itself when its last client disconnects, and
    the tests' clients come and go (the toolkit probe, xdotool, a window closing), so the next one
    could try to connect during a reset: a CI run's desktop launch failed with "could not connect
    to display" right after the probe had succeeded."""
    read_fd, write_fd = os.pipe()
    screen = f"{width}x{height}x24"
    args = ["-displayfd", str(write_fd), "-screen", "0", screen, "-nolisten", "tcp", "-noreset"]
    process = subprocess.Popen(
        ["Xvfb", *args],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as pipe:
            number = pipe.readline().strip()  # written once the server accepts connections
        if not number:
            raise RuntimeError("Xvfb did not start")
        yield f":{number}"
    finally:
        process.terminate()
        process.wait(timeout=10)


def unused_x_display() -> int:
    """A display number no X server on this machine has (no socket in /tmp/.X11-unix)."""
    return next(n for n in range(500, 1000) if not Path(f"/tmp/.X11-unix/X{n}").exists())


@dataclass
class Window:
    display: str
    id: int

    def _env(self) -> dict[str, str]:
        return {**os.environ, "DISPLAY": self.display}

    def title(self) -> str:
        return subprocess.run(
            ["xdotool", "getwindowname", str(self.id)], capture_output=True, text=True, env=self._env()
        ).stdout.strip()

    def size(self) -> tuple[int, int]:
        """(width, height) in pixels, from `xwininfo`."""
        info = subprocess.run(
            ["xwininfo", "-id", str(self.id)], capture_output=True, text=True, env=self._env(), check=True
        ).stdout
        fields = dict(line.strip().split(":", 1) for line in info.splitlines() if ":" in line)
        return int(fields["Width"]), int(fields["Height"])

    def resize(self, width: int, height: int) -> None:
        subprocess.run(
            ["xdotool", "windowsize", str(self.id), str(width), str(height)], env=self._env(), check=True
        )

    def screenshot(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["import", "-window", str(self.id), str(path)], env=self._env(), check=True)
        return path

    def close(self) -> None:
        """Ask the window to close, as a window manager's close button does."""
        x11 = ctypes.CDLL("libX11.so.6")
        x11.XOpenDisplay.restype = ctypes.c_void_p
        x11.XOpenDisplay.argtypes = [ctypes.c_char_p]
        x11.XInternAtom.restype = ctypes.c_ulong
        x11.XInternAtom.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        x11.XSendEvent.argtypes = [
            ctypes.c_void_p,
            ctypes.c_ulong,
            ctypes.c_int,
            ctypes.c_long,
            ctypes.c_void_p,
        ]
        x11.XFlush.argtypes = [ctypes.c_void_p]
        x11.XCloseDisplay.argtypes = [ctypes.c_void_p]

        class ClientMessage(ctypes.Structure):
            _fields_ = [
                ("type", ctypes.c_int),
                ("serial", ctypes.c_ulong),
                ("send_event", ctypes.c_int),
                ("display", ctypes.c_void_p),
                ("window", ctypes.c_ulong),
                ("message_type", ctypes.c_ulong),
                ("format", ctypes.c_int),
                ("data", ctypes.c_long * 5),
            ]

        class XEvent(ctypes.Union):
            _fields_ = [("xclient", ClientMessage), ("pad", ctypes.c_long * 24)]

        dpy = x11.XOpenDisplay(self.display.encode())
        if not dpy:
            raise RuntimeError(f"cannot open display {self.display}")
        try:
            event = XEvent()
            event.xclient.type = 33  # ClientMessage
            event.xclient.window = self.id
            event.xclient.message_type = x11.XInternAtom(dpy, b"WM_PROTOCOLS", 0)
            event.xclient.format = 32
            event.xclient.data[0] = x11.XInternAtom(dpy, b"WM_DELETE_WINDOW", 0)
            x11.XSendEvent(dpy, self.id, 0, 0, ctypes.byref(event))
            x11.XFlush(dpy)
        finally:
            x11.XCloseDisplay(dpy)


def find_window(display: str, title: str, deadline: float, alive: subprocess.Popen[bytes]) -> Window:
    """The visible window titled exactly `title`; waits until time.monotonic() passes `deadline`
    or the process `alive` ends (RuntimeError)."""
    env = {**os.environ, "DISPLAY": display}
    while time.monotonic() < deadline:
        if alive.poll() is not None:
            raise RuntimeError(f"the process ended (exit {alive.returncode}) before its window appeared")
        found = subprocess.run(
            ["xdotool", "search", "--onlyvisible", "--name", f"^{title}$"],
            capture_output=True,
            text=True,
            env=env,
        ).stdout.split()
        if found:
            return Window(display, int(found[0]))
        time.sleep(0.2)
    raise RuntimeError(f"no window titled {title!r} appeared")


# --- an OpsCraft desktop process ---------------------------------------------------------------


@dataclass
class DesktopProcess:
    """A running `opscraft desktop` (source or binary) with its window and its page."""

    process: subprocess.Popen[bytes]
    window: Window
    page: Any
    url: str
    log_path: Path
    started_in: float  # seconds from launch until the window was mapped
    ready_in: float  # seconds from launch until the window showed the signed-in dashboard

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def close(self, timeout: float = 60) -> int:
        """Close the window like a user; returns the exit code once the process has ended."""
        self.window.close()
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(self.process)
            raise AssertionError(
                f"still running {timeout} s after its window was closed:\n{self.log()}"
            ) from None

    def kill(self) -> None:
        """Kill the launch and everything it started (window process, Qt helpers)."""
        _kill_group(self.process)


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the process group the launch leads (its own session), so no window is left over."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def launch_desktop(
    command: list[str], env: dict[str, str], display: str, log_path: Path, cwd: Path
) -> DesktopProcess:
    """Start `command` (a desktop launch) on `display` and wait for its window and signed-in page.

    The page is read through Qt WebEngine's DevTools endpoint on a free loopback port
    (QTWEBENGINE_REMOTE_DEBUGGING, a test-only switch); the server's URL is the page's origin.
    """
    from tests.app_journey import WindowPage
    from tests.conftest import free_port

    devtools = free_port()
    environ = {**env, "DISPLAY": display, "QTWEBENGINE_REMOTE_DEBUGGING": f"127.0.0.1:{devtools}"}
    environ.pop("WAYLAND_DISPLAY", None)
    start = time.monotonic()
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command, env=environ, cwd=cwd, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        window = find_window(display, "OpsCraft", time.monotonic() + 180, process)
        started_in = time.monotonic() - start
        page = WindowPage(devtools)
        page.wait_for_text("Welcome, Desktop (local administrator)", timeout=120)
        ready_in = time.monotonic() - start
        origin = page.evaluate("window.location.origin")
    except Exception as exc:
        _kill_group(process)
        log = log_path.read_text(errors="replace")
        raise RuntimeError(f"the desktop window did not come up ({exc}):\n{log}") from None
    return DesktopProcess(process, window, page, str(origin), log_path, started_in, ready_in)


def assert_not_blank(png: Path) -> None:
    """The screenshot shows a rendered page: many colours, not one flat fill (ImageMagick)."""
    colours = subprocess.run(
        ["identify", "-format", "%k", str(png)], capture_output=True, text=True, check=True
    ).stdout.strip()
    deviation = subprocess.run(
        ["convert", str(png), "-colorspace", "Gray", "-format", "%[fx:standard_deviation]", "info:"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert int(colours) > 50 and float(deviation) > 0.05, f"{png}: {colours} colours, deviation {deviation}"
