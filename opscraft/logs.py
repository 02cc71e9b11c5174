"""Log set-up: human-readable lines (`LOG_FORMAT=text`) or one JSON object per line (`json`).

Every record is one line: in text, a record's further lines (a multi-line message, a traceback)
are indented (`folded`), so only a record's first line starts at the first column; in JSON, line
breaks are escaped.

Engine code marks what it works on with `engine_context(worker_id=..., execution_id=...)`; every
record logged inside carries those fields (`ContextFilter`), so in JSON each engine line has
`execution_id` and `worker_id`, and a text line ends with them.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

_FIELDS = ("worker_id", "execution_id")
QUIET_LOGGERS = ("httpx", "httpcore", "aiosqlite", "websockets")
"""Libraries whose INFO and DEBUG lines carry credentials: WARNING and up only. httpx and httpcore
log the URLs of outgoing requests (a Slack webhook's URL is a secret); aiosqlite logs every SQL
statement with its bound values at DEBUG (password hashes, sealed secrets, token ids); websockets
logs every header and frame at DEBUG (`NoWireDebug`)."""
CHATTY_LOGGERS = ("alembic.runtime.plugins",)
"""Libraries whose INFO lines say nothing an operator acts on: WARNING and up unless `LOG_LEVEL` is
DEBUG. Alembic's plugin registry logs `setup plugin alembic.autogenerate...` seven times on each
start that migrates (Alembic 1.17+), before the `Running upgrade` lines that matter."""
_context: contextvars.ContextVar[dict[str, object] | None] = contextvars.ContextVar(
    "opscraft_log_context", default=None
)


@contextmanager
def engine_context(**fields: object) -> Iterator[None]:
    """Within the block (this thread or task), log records carry `fields` (worker_id, execution_id)."""
    token = _context.set({**(_context.get() or {}), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the `engine_context` fields onto each record (None when not set)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Set the record's `worker_id` and `execution_id` from the current context (None when unset)
        unless it has them; keeps every record.
        """
        current = _context.get() or {}
        for name in _FIELDS:
            if not hasattr(record, name):
                setattr(record, name, current.get(name))
        return True


def _spelled(literal: str) -> str:
    """A pattern for `literal` with any of its characters percent-encoded (`%2F` or `%2f` for
    `/`, `%74` for `t`): the router reads the decoded path and query, while uvicorn's access log
    prints them as the client sent them. An escape's hex digits match in either case (RFC 3986
    2.1): the patterns compiled without `re.I` (a token's prefix is case-sensitive) took only
    upper case, so `ocp%5f...` or `%6fcp_...` (a client encoding with lower-case hex) was
    logged in clear."""
    return "".join(f"(?:{re.escape(ch)}|%{_either_case(f'{ord(ch):02X}')})" for ch in literal)


def _either_case(hex_digits: str) -> str:
    """A pattern for `hex_digits` (upper case) with each letter in either case: `5F` -> `5[Ff]`."""
    return "".join(f"[{d}{d.lower()}]" if d.isalpha() else d for d in hex_digits)


# One character of a token (base64url, RFC 4648 section 5) as a URL may carry it: itself or %XX.
_TOKEN_CHAR = r"(?:[A-Za-z0-9_-]|%[0-9A-Fa-f]{2})"
# A path separator as the access log may print it: `/`, or `%2F` (the router decodes it).
_SEP = r"(?:/|%2[Ff])"
# Where a query parameter starts (`?`, `&`, `;`), also inside a URL carried in one (`%3F`, `%26`).
_PARAM_START = r"(?:[?&;]|%3[Ff]|%26|%3[Bb])"
# One character of a parameter's name as a URL may carry it: not an escaped `?`, `&`, `;` or `=`,
# which end it (a name read across them made a 9 KB line of `%3F`s a second of the log's CPU).
_NAME_CHAR = r"(?:[A-Za-z0-9_.-]|%(?!3[FfBbDd]|26)[0-9A-Fa-f]{2})"
# A parameter whose name holds one of these words carries a credential, whatever its shape:
# `token`, `access_token`, `password`, `passwd`, `client_secret`, `api_key`.
_SECRET_WORDS = "|".join(_spelled(word) for word in ("token", "pass", "secret", "api_key", "apikey"))
# The ids a browser page's socket joins its page with (NiceGUI's `/_nicegui_ws/socket.io/?client_id=
# ...&tab_id=...`): whoever holds them joins that signed-in page's socket (its updates, its events).
_PAGE_IDS = "|".join(_spelled(name) for name in ("client", "old_tab", "tab", "document"))
# Where a credential's prefix starts a word: not inside one (`epoch_`), but after any escape
# (`%2F`, `%3D`, `%20`: a URL or `Bearer ` in a parameter), whose last hex digit is no letter of it.
_WORD_START = r"(?:(?<![A-Za-z0-9_-])|(?<=%[0-9A-Fa-f]{2}))"
# Where an access or refresh token (a JWT: base64url of `{"...`) starts.
_JWT_START = rf"{_WORD_START}{_spelled('eyJ')}"


class RedactCredentials(logging.Filter):
    """Keeps the credentials a request line carries out of log lines, each becoming `***` however
    percent-encoded the URL that carries them (`_spelled`):

    - the value of a query parameter whose name holds `token`, `pass`, `secret` or `api_key`
      (`_SECRET_WORDS`: the WebSocket's JWT, the desktop window's sign-in secret, a password
      a client sent as `?password=`, whatever shape it has), and the
      `client_id`, `tab_id`, `old_tab_id` and `document_id` of a page's socket (`_PAGE_IDS`),
      also inside a URL carried in a parameter (`?next=%2Fws%3Ftoken%3D...`);
    - whatever follows an inbound webhook's `hooks/{id}/` (its token, services/webhooks.py
      `hook_path`), also in a URL the router does not take (`/api//v1/hooks/...`, a base URL
      ending in `/`; dot segments; the id left out): the token in it is still the webhook's;
    - a credential by its shape, wherever it is: a webhook token (`och_...`,
      services/webhooks.py `TOKEN_PREFIX`), a personal access token (`ocp_...`,
      security/tokens.py `PAT_PREFIX`) and an access or refresh token (a JWT, `eyJ...`), so a
      misspelt parameter (`?tokens=`, `?api_key=`) does not print one either, nor one after a
      percent-encoded separator (`?q=Bearer%20ocp_...`, `%22`, `%2C`: `_WORD_START`).

    On uvicorn's access and error loggers and on the root handler (the API's "unhandled error in
    POST <path>")."""

    # Each pattern with what replaces its match: the part before the credential is kept. Each reads
    # a request line in time linear in its length (a client sends it before signing in): a name
    # is read whole once it holds a secret word, and a JWT from the last `eyJ` starting a word
    # before its first dot. `?` and 64 KiB of `token`, or of `eyJ%3F`, took minutes, read again
    # from each word.
    _patterns = (
        (
            re.compile(
                rf"({_PARAM_START}(?={_NAME_CHAR}*?(?:{_SECRET_WORDS})){_NAME_CHAR}*+{_spelled('=')})[^&\s\"']+",
                re.I,
            ),
            r"\1***",
        ),
        (re.compile(rf"({_SEP}{_spelled('hooks')}{_SEP}+(?:\d+{_SEP}+)?)[^\s\"'?&]+", re.I), r"\1***"),
        (re.compile(rf"((?:{_PAGE_IDS}){_spelled('_id=')})[^&\s\"']+", re.I), r"\1***"),
        (re.compile(rf"{_WORD_START}({_spelled('och_')}|{_spelled('ocp_')}){_TOKEN_CHAR}{{8,}}"), r"\1***"),
        (
            re.compile(
                rf"{_JWT_START}(?:(?!{_JWT_START}){_TOKEN_CHAR})+(?:\.|%2[Ee]){_TOKEN_CHAR}+(?:\.|%2[Ee]){_TOKEN_CHAR}*"
            ),
            "***",
        ),
    )

    @classmethod
    def redact(cls, text: str) -> str:
        """`text` with every credential replaced by `***`."""
        for pattern, replacement in cls._patterns:
            text = pattern.sub(replacement, text)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        """Replace the credentials in the record's message, as its arguments complete it
        (`token=` query values, webhook tokens in URLs), with `***`; keeps every record. The
        message and its arguments were redacted apart: a credential split between them (`?token=%s`
        with the token as argument) was missed, or its `%s` replaced, and the record, no longer
        formattable, was lost to a "--- Logging error ---" traceback on standard error."""
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit: the handler reports it
            return True
        record.msg, record.args = self.redact(message), None
        return True


class NoWireDebug(logging.Filter):
    """Keeps the records of `uvicorn.error` below INFO out of the log, whatever `LOG_LEVEL` says.
    uvicorn's WebSocket protocols hand that logger to the `websockets` library, whose DEBUG records
    are the wire itself: every handshake header (the `session` cookie of a signed-in browser, an
    `Authorization` header) and the start and end of every frame (NiceGUI's socket carries what is
    typed on a page: a password at the login, a secret's value in its dialog). uvicorn's own
    records there are INFO and up (its TRACE level is never set: `LOG_LEVEL` has no `TRACE`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Keep INFO and up."""
        return record.levelno >= logging.INFO


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC ISO 8601), level, logger, message, worker_id,
    execution_id (when set), exception (when any). A line break inside a value is escaped
    (`\n`, and with `ensure_ascii` U+2028 and U+2029 too), so each record stays one line."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON object per record: time (ISO 8601 UTC, milliseconds), level, logger, message, the
        context ids that are set and the traceback.
        """
        data: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in _FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                data[name] = value
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


#: What starts each continuation line of a text record (`folded`).
CONTINUATION = "    "


def folded(text: str) -> str:
    """`text` as one record of a text log: its first line as it is, every further line indented
    by `CONTINUATION`, whatever broke it (`\n`, `\r\n`, a lone `\r`, `\v`, `\f`, U+0085, U+2028,
    U+2029: `str.splitlines`). So a line of the log that starts at its first column is a record's
    start: a multi-line message (an Alembic migration's description, a run's stderr relayed into
    an exception's message) broke a record into lines that read as records of their own, a lone
    `\r` overwrote the line on a terminal, and text after a break could forge a record."""
    lines = text.splitlines() or [""]
    return f"\n{CONTINUATION}".join(lines)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message [worker=... execution=...]`, one record a line plus indented
    continuation lines (`folded`: a multi-line message, a traceback)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """The standard text line, followed by `[worker=... execution=...]` for the context ids that are
        set; its continuation lines indented (`folded`).
        """
        line = super().format(record)
        tags = [
            f"{name.removesuffix('_id')}={getattr(record, name)}"
            for name in _FIELDS
            if getattr(record, name, None)
        ]
        return folded(f"{line} [{' '.join(tags)}]" if tags else line)


def prepared(handler: logging.Handler, log_format: str) -> logging.Handler:
    """`handler` with the format of `LOG_FORMAT` (`text` or `json`), the context ids
    (`ContextFilter`) and the credentials redacted (`RedactCredentials`): what every destination
    of the log (standard error, the desktop's log file) writes."""
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(ContextFilter())
    handler.addFilter(RedactCredentials())
    return handler


def configure(level: str, log_format: str = "text") -> None:
    """Set up the root logger once for a command (`LOG_LEVEL`, `LOG_FORMAT`): standard error."""
    root = logging.getLogger()
    root.handlers[:] = [prepared(logging.StreamHandler(), log_format)]
    root.setLevel(level)
    # httpx logs every request's full URL at INFO (httpcore its steps at DEBUG), and a URL
    # OpsCraft calls can be a vault secret: a Slack incoming webhook's URL is the credential;
    # aiosqlite logs each statement's bound values at DEBUG.
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING if root.level > logging.DEBUG else logging.NOTSET)
