"""The desktop window's log file: what the launch logs, its refusals and a crash's traceback,
also in `<data dir>/desktop.log` (rotating, `MAX_BYTES` a file, `BACKUPS` old files kept).

Started from a launcher (a `.desktop` file, the packaged binary double-clicked), a launch's
standard error goes nowhere: its one-line refusals (no display, the data directory in use, a
damaged database) and every log line were lost. Standard error keeps them too. The file gets
what standard error gets, in `LOG_FORMAT`, credentials redacted (`logs.prepared`: the window's
sign-in URL reads `token=***`), private to the user (the data directory's umask)."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Callable
from logging.handlers import RotatingFileHandler
from pathlib import Path
from types import TracebackType

from opscraft import logs
from opscraft.data_dir import write_failure

FILE_NAME = "desktop.log"
MAX_BYTES = 1_000_000
"""A log file rotates past this size (`desktop.log` -> `desktop.log.1`)."""
BACKUPS = 3
"""Old files kept (`desktop.log.1` to `.3`): at most 4 MB in all."""

#: `sys.excepthook`'s shape.
ExceptHook = Callable[[type[BaseException], BaseException, TracebackType | None], object]
log = logging.getLogger(__name__)


class _LogFile(RotatingFileHandler):
    """The rotating file, given up at its first failed write (a full disk, a data directory
    made read-only): one line on standard error says so, and standard error carries on alone.
    logging's own report was a "--- Logging error ---" traceback at every record."""

    def handleError(self, record: logging.LogRecord) -> None:
        """Detach this handler and say why in one line."""
        global _handler
        failed = sys.exc_info()[1]
        reason = write_failure(failed) if isinstance(failed, OSError) else str(failed)
        logging.getLogger().removeHandler(self)
        _handler = None
        sys.stderr.write(f"opscraft: cannot write the desktop log file {self.baseFilename}: {reason}\n")
        with contextlib.suppress(OSError):
            self.close()


_handler: _LogFile | None = None


def path(data_dir: Path) -> Path:
    """Where the desktop's log file of `data_dir` is."""
    return data_dir / FILE_NAME


def start(data_dir: Path, log_format: str) -> None:
    """Log into `path(data_dir)` too, from now on in this process, and write an uncaught
    exception's traceback there. A file that cannot be opened (a data directory that is not
    writable, a full disk) leaves standard error alone, saying so there."""
    global _handler
    try:
        handler = _LogFile(path(data_dir), maxBytes=MAX_BYTES, backupCount=BACKUPS, encoding="utf-8")
    except OSError as exc:
        log.warning("no desktop log file %s: %s", path(data_dir), write_failure(exc))
        return
    logging.getLogger().addHandler(logs.prepared(handler, log_format))
    _handler = handler
    sys.excepthook = _logged_then(sys.excepthook)


def refusal(line: str) -> str:
    """Write a refusal's one `line` (`opscraft: no display ...`) into the log file only (the
    caller prints it on standard error) and return it naming the file: `<line> (logged in
    <path>)`; `line` itself when there is no log file."""
    if _handler is not None:
        _handler.handle(logging.LogRecord(__name__, logging.ERROR, __file__, 0, "%s", (line,), None))
    return line if _handler is None else f"{line} (logged in {_handler.baseFilename})"


def _logged_then(hook: ExceptHook) -> ExceptHook:
    """An excepthook writing the traceback into the log file, then calling `hook` (which prints it)."""

    def logged(kind: type[BaseException], exc: BaseException, tb: TracebackType | None) -> None:
        if _handler is not None and not issubclass(kind, KeyboardInterrupt):
            failed = (kind, exc, tb)
            _handler.handle(logging.LogRecord(__name__, logging.CRITICAL, __file__, 0, "failed", (), failed))
        hook(kind, exc, tb)

    return logged
