"""The desktop launch's parts in process: the one-time secret, the remembered window size, the
local administrator account, the toolkit check and the default command."""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
from pathlib import Path

import pytest
from sqlmodel import col, select

from opscraft import bootstrap, runtime
from opscraft.db.models import AuditEvent, Role, User
from opscraft.desktop import log_file, toolkit, window_state
from opscraft.security.one_time import OneTimeSecret
from opscraft.security.tokens import same_secret
from opscraft.services import desktop
from opscraft.services.errors import Forbidden
from tests.desktop_session import unused_x_display


def test_the_secret_opens_once() -> None:
    secret = OneTimeSecret()
    assert not secret.consume("anything")  # nothing issued yet
    value = secret.issue()
    assert len(value) == 43
    assert not secret.consume("")
    assert not secret.consume(None)
    assert not secret.consume(value[:-1] + ("A" if value[-1] != "A" else "B"))
    assert secret.consume(value)  # a wrong guess did not spend it
    assert not secret.consume(value)  # spent


def test_a_candidate_with_non_ascii_text_or_a_lone_surrogate_is_only_wrong() -> None:
    """`same_secret` (every constant-time comparison of a caller's text) answers False for text
    `hmac.compare_digest` or UTF-8 refuses, never raises: a webhook signature or Terraform
    password holding `é` was a 500."""
    secret = OneTimeSecret()
    value = secret.issue()
    for odd in ("é" * 43, value[:-1] + "\ud800", "\uff46"):
        assert not secret.consume(odd)
        assert not same_secret(value, odd) and not same_secret(odd, value)
    assert same_secret("é\ud800", "é\ud800")
    assert secret.consume(value)


def test_the_secret_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = OneTimeSecret(ttl_seconds=60)
    value = secret.issue()
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + 61)
    assert not secret.consume(value)


def test_a_new_secret_replaces_the_old_one() -> None:
    secret = OneTimeSecret()
    old = secret.issue()
    new = secret.issue()
    assert not secret.consume(old) and secret.consume(new)


def test_window_size_is_remembered_within_bounds(tmp_path: Path) -> None:
    assert window_state.load(tmp_path) == window_state.DEFAULT_SIZE
    window_state.save(tmp_path, 1000, 700)
    assert window_state.load(tmp_path) == (1000, 700)
    window_state.save(tmp_path, 10, 99999)
    assert window_state.load(tmp_path) == (window_state.MIN_SIZE[0], window_state.MAX_SIZE[1])
    for broken in ("{", "[]", '{"width": "wide", "height": 3}', '{"width": 800}'):
        (tmp_path / window_state.FILE_NAME).write_text(broken)
        assert window_state.load(tmp_path) == window_state.DEFAULT_SIZE, broken
    assert not list(tmp_path.glob("*.tmp"))
    window_state.save(tmp_path, 900, 600)
    assert json.loads((tmp_path / window_state.FILE_NAME).read_text()) == {"width": 900, "height": 600}


def test_no_arguments_on_a_desktop_opens_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":5")
    assert bootstrap.with_default_command([]) == ["desktop"]
    assert bootstrap.with_default_command(["serve"]) == ["serve"]
    assert bootstrap.extras_for([]) == "desktop"
    assert bootstrap.extras_for(["desktop", "--port", "1"]) == "desktop"
    assert bootstrap.extras_for(["serve"]) == ""
    monkeypatch.delenv("DISPLAY")
    assert bootstrap.with_default_command([]) == []
    assert bootstrap.extras_for([]) == ""


def test_missing_system_libraries_are_named_by_package(monkeypatch: pytest.MonkeyPatch) -> None:
    # Stand-in for a machine without them: sonames no machine has.
    monkeypatch.setenv("DISPLAY", ":5")
    monkeypatch.setattr(toolkit, "MODULES", ("json",))
    monkeypatch.setattr(
        toolkit, "X11_LIBRARIES", {"libnot-there.so.9": "libnot-there9", "libc.so.6": "libc6"}
    )
    assert toolkit.problem() == (
        "opscraft: the desktop window needs system libraries: apt-get install libnot-there9 "
        "(Debian/Ubuntu package names)"
    )


def test_a_display_that_answers_nothing_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A set DISPLAY or WAYLAND_DISPLAY with nothing behind it (an ended session, SSH without X
    forwarding) is refused before the launch starts anything; a live Wayland socket is enough."""
    monkeypatch.setattr(toolkit, "MODULES", ("json",))
    monkeypatch.setattr(toolkit, "X11_LIBRARIES", {"libc.so.6": "libc6"})
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.setenv("DISPLAY", f":{unused_x_display()}")
    monkeypatch.setenv("WAYLAND_DISPLAY", "wayland-7")
    assert toolkit.problem() == (
        f"opscraft: cannot connect to the display for the desktop window (DISPLAY={os.environ['DISPLAY']}, "
        "WAYLAND_DISPLAY=wayland-7): start it from a running desktop session, or run `opscraft serve` "
        "and use a browser"
    )
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as compositor:
        compositor.bind(str(tmp_path / "wayland-7"))
        compositor.listen()
        assert toolkit.problem() is None


def test_the_desktop_log_file_rotates_keeps_a_crash_and_hides_tokens(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The log file (`log_file.start`): what is logged, credentials redacted; bounded (a file
    rotates past MAX_BYTES, BACKUPS old ones kept); an uncaught exception's traceback (the
    window's launch crashing) is in it too, and standard error still gets it."""
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", root.handlers[:])
    monkeypatch.setattr(root, "level", logging.INFO)
    monkeypatch.setattr(root.manager, "disable", logging.NOTSET)
    monkeypatch.setattr(log_file, "_handler", None)
    monkeypatch.setattr(log_file, "MAX_BYTES", 10_000)
    printed: list[str] = []
    monkeypatch.setattr(sys, "excepthook", lambda kind, exc, tb: printed.append(str(exc)))
    log_file.start(tmp_path, "text")
    log = logging.getLogger("opscraft.desktop.test")
    monkeypatch.setattr(log, "level", logging.INFO)
    root.manager._clear_cache()  # `isEnabledFor` caches what the levels said before
    log.info('127.0.0.1:5 - "GET /desktop/sign-in?token=%s HTTP/1.1" 303', "s3cret" * 7)
    try:
        raise RuntimeError("the launch broke")
    except RuntimeError as exc:
        sys.excepthook(RuntimeError, exc, exc.__traceback__)
    first = log_file.path(tmp_path).read_text()
    assert "sign-in?token=*** HTTP/1.1" in first and "s3cret" not in first
    assert "CRITICAL opscraft.desktop.log_file: failed" in first and "RuntimeError: the launch broke" in first
    assert printed == ["the launch broke"]
    for n in range(2_000):
        log.info("line %d %s", n, "x" * 50)
    files = sorted(p.name for p in tmp_path.glob("desktop.log*"))
    assert files == ["desktop.log", "desktop.log.1", "desktop.log.2", "desktop.log.3"]
    assert all(p.stat().st_size <= 10_000 for p in tmp_path.glob("desktop.log*"))


async def test_the_local_admin_is_created_once(rt: runtime.Runtime) -> None:
    async with rt.db.session() as session:
        first = await desktop.local_admin(session)
        again = await desktop.local_admin(session)
        assert first.id == again.id and first.role == Role.admin and first.username == desktop.LOCAL_ADMIN
        users = (await session.exec(select(User))).all()
        assert len(users) == 1
        signed_in = await desktop.sign_in(session, "127.0.0.1")
        assert signed_in.id == first.id
        actions = (await session.exec(select(AuditEvent.action).order_by(col(AuditEvent.id)))).all()
        assert actions == ["user.create", "auth.login"]


async def test_a_disabled_local_admin_is_not_restored(rt: runtime.Runtime) -> None:
    async with rt.db.session() as session:
        user = await desktop.local_admin(session)
        user.is_active = False
        session.add(user)
        await session.commit()
        with pytest.raises(Forbidden, match="disabled or no longer an administrator"):
            await desktop.sign_in(session, None)
        user.is_active, user.role = True, Role.viewer
        session.add(user)
        await session.commit()
        with pytest.raises(Forbidden):
            await desktop.local_admin(session)
