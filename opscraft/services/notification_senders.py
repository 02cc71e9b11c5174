"""Transports for notifications: generic webhook (JSON, optionally HMAC-signed), Slack incoming
webhook, email over SMTP. Pure I/O: which message goes where is decided in `notifications`.

Each `send_*` raises `SendError` with a message that is safe to log and show to admins (it
never contains the credential, the URL's secret path or the message body), and ends within
`DEADLINE_SECONDS` however slowly the receiver answers.

Formats:
- generic webhook: `POST <url>` with the message as JSON (`Content-Type: application/json`);
  with a signing key, `X-OpsCraft-Timestamp: <unix seconds>` and
  `X-OpsCraft-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` (the scheme of
  GitHub's `X-Hub-Signature-256`, with Stripe's timestamp binding against replays);
- Slack: `POST <incoming webhook URL>` with `{"text": ...}`
  (https://api.slack.com/messaging/webhooks);
- email: RFC 5322 message over SMTP (RFC 5321) with `security` none, `starttls` (RFC 3207) or
  `ssl` (implicit TLS, RFC 8314), login when a username is given; certificates are verified
  against the system's CA store.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import re
import smtplib
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any
from urllib.parse import urlsplit

import orjson
from email_validator import EmailNotValidError, validate_email

TIMEOUT_SECONDS = 10.0
# The whole of one send, however the receiver paces its answer: the transports' timeouts are per
# read, so a receiver dripping a byte every few seconds (or an SMTP server sending one line of a
# long reply at a time) held a send, and with it the sender loop's whole round and the **Test**
# button, for ever; past the delivery lease (`notifications.LEASE`, 60 s) another process claimed
# the row again and sent it a second time, and again each minute.
DEADLINE_SECONDS = 30.0
SMTP_SECURITY = ("none", "starttls", "ssl")


# smtplib blocks, so each email is sent on a thread: these, not the event loop's default pool,
# which sign-ins share to check passwords (`services.auth`). A round of emails to a slow server
# took every default thread (min(32, CPUs + 4)) and signing in waited for them, and an email
# queued behind the others started late, perhaps after its claim on the delivery had ended
# (`notifications.LEASE`). A sender round is `notifications.BATCH` (20) sends; the rest leaves
# room for **Test** clicks. Threads start when first needed.
SMTP_THREADS = 32
_SMTP_THREADS = ThreadPoolExecutor(max_workers=SMTP_THREADS, thread_name_prefix="opscraft-smtp")


class SendError(Exception):
    """The receiver refused or could not be reached; the message is safe to store and show."""


class PartlyDelivered(SendError):
    """The message went to some recipients and the server refused the others (named, with its
    reply): sending again would repeat it to those who have it, so it is not retried."""


@dataclass(frozen=True)
class EmailSettings:
    host: str
    port: int
    security: str
    sender: str
    recipients: list[str]
    username: str | None = None
    password: str | None = None


def signature(key: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(key, "<timestamp>." + body)."""
    mac = hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _no_blank_or_control(text: str) -> bool:
    """Whether `text` holds no whitespace and no control character: neither belongs in a URL or
    a host name, and ASCII ones (tab, CR, LF, space) pass the IDNA codec."""
    return all(c.isprintable() and not c.isspace() for c in text)


def host_name_ok(host: str) -> bool:
    """Whether `host` can be looked up at all: it has no whitespace or control character and has
    an IDNA (ASCII) form. A host name holding a bidi character (`\u202e`) has none, and a send
    to it raised UnicodeError (a 500 on **Test**) instead of failing as an unreachable receiver;
    one holding CR LF (`smtp.example\r\nX: y`) was saved and shown as two lines."""
    if not _no_blank_or_control(host):
        return False
    try:
        host.encode("idna")
    except UnicodeError:
        return False
    return True


def valid_http_url(url: str) -> bool:
    """Whether `url` is an http(s) URL a send can try: a scheme, a host with an IDNA form and a
    port in 1-65535 (or none), and no whitespace or control character anywhere (urlsplit drops a
    tab or newline, httpx refuses it). `http://[::1`, port 99999 and `http://a<TAB>b.example/`
    were 500s (saving a channel, or a Slack URL from the vault on **Test**): urlsplit and httpx
    raise on them, not HTTPError."""
    if not _no_blank_or_control(url):
        return False
    try:
        parts = urlsplit(url)
        port_ok = parts.port != 0
    except ValueError:
        return False
    host = parts.hostname or ""
    return parts.scheme in ("http", "https") and bool(host) and port_ok and host_name_ok(host)


def _where(url: str) -> str:
    """Scheme and host of a URL: enough to say where, without a secret path or query ("an
    invalid URL" for one that does not parse: never the URL itself, which may be a secret)."""
    try:
        parts = urlsplit(url)
        return f"{parts.scheme}://{parts.hostname or '?'}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "an invalid URL"


# Slack's refusals are one error code in the body (`no_service`, `channel_is_archived`,
# `invalid_token`...: https://api.slack.com/messaging/webhooks#handling_errors), the only clue to
# what is wrong. Only a body of this shape is repeated: nothing a receiver echoes is.
_ERROR_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")


async def _post_json(url: str, body: bytes, headers: dict[str, str], *, error_code: bool = False) -> None:
    """POST `body`; SendError unless a 2xx answers. `error_code`: a refusal's body that is an
    error code (`_ERROR_CODE`, Slack's form) is named in the error."""
    import httpx  # here, not at import: start-up does not need it (docs/benchmarks.md, "Start-up")

    if not valid_http_url(url):
        raise SendError(f"{_where(url)}: not a valid http:// or https:// URL")

    try:
        async with (
            asyncio.timeout(DEADLINE_SECONDS),
            httpx.AsyncClient(timeout=TIMEOUT_SECONDS, follow_redirects=False) as client,
        ):
            response = await client.post(
                url, content=body, headers={"Content-Type": "application/json", **headers}
            )
    except TimeoutError:
        raise SendError(f"{_where(url)} did not answer within {DEADLINE_SECONDS:g} s") from None
    except httpx.HTTPError as exc:
        raise SendError(f"{_where(url)} unreachable: {type(exc).__name__}") from None
    if not 200 <= response.status_code < 300:
        code = response.text.strip() if error_code else ""
        said = f" ({code})" if _ERROR_CODE.fullmatch(code) else ""
        if response.next_request is not None:  # a redirect (httpx resolved and checked its target)
            # Never followed (the message, and its signature, would go where the receiver says);
            # where to, without the path or query, which may hold a secret
            target = _where(str(response.next_request.url))
            said = f" (a redirect to {target}, not followed: save the URL it points to)"
        raise SendError(f"{_where(url)} answered HTTP {response.status_code}{said}")


async def send_webhook(url: str, message: dict[str, Any], signing_key: str | None = None) -> None:
    """POST `message` as JSON; signed when `signing_key` is given. Raises SendError."""
    body = orjson.dumps(message)
    headers: dict[str, str] = {"User-Agent": "OpsCraft-Notifications"}
    if signing_key:
        timestamp = str(int(time.time()))
        headers["X-OpsCraft-Timestamp"] = timestamp
        headers["X-OpsCraft-Signature"] = signature(signing_key, timestamp, body)
    await _post_json(url, body, headers)


def slack_escaped(text: str) -> str:
    """`text` with `&`, `<` and `>` as Slack requires them (`&amp;`, `&lt;`, `&gt;`: "Escaping
    text", https://api.slack.com/reference/surfaces/formatting): else a run's output or a
    script name holding `<!channel>` notified the whole channel, and `<https://x|label>` showed
    a link under another name. Ours is plain text: Slack reads none of it as a control sequence."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def send_slack(url: str, text: str) -> None:
    """POST `{"text": text}` (escaped: `slack_escaped`) to a Slack incoming webhook. Raises
    SendError."""
    body = orjson.dumps({"text": slack_escaped(text)})
    await _post_json(url, body, {"User-Agent": "OpsCraft-Notifications"}, error_code=True)


async def send_email(settings: EmailSettings, subject: str, text: str) -> None:
    """Send a plain-text email. Raises SendError."""
    message = EmailMessage()
    message["From"] = _ascii_if_possible(settings.sender)
    message["To"] = ", ".join(_ascii_if_possible(r) for r in settings.recipients)
    message["Subject"] = subject
    # RFC 5322 3.6: Date is required, Message-ID expected; smtplib adds neither, and receivers
    # such as Gmail refuse a message without a Message-ID (550 5.7.1).
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid("opscraft", _id_domain(settings.sender))
    # Quoted-printable when the text is not ASCII: the email package chose raw 8bit for short
    # lines, sent without BODY=8BITMIME to servers that may not offer it (RFC 6152 forbids both;
    # a relay limited to 7 bits mangles it), and base64 for long ones, which spam filters score
    # as disguised text (SpamAssassin's MIME_BASE64_TEXT).
    message.set_content(text, cte=None if text.isascii() else "quoted-printable")
    await asyncio.get_running_loop().run_in_executor(_SMTP_THREADS, _smtp_send, settings, message)


def _ascii_if_possible(address: str) -> str:
    """`address` with its domain in its ASCII (IDNA 2008) form when its local part is ASCII:
    `ops@bücher.example` is sent as `ops@xn--bcher-kva.example`, which every SMTP server takes.
    As stored (Unicode, as people read it), smtplib asked the server for SMTPUTF8 (RFC 6531) and
    a server without it refused every message to such an address. A non-ASCII local part
    (`jürgen@...`) has no ASCII form: it still needs SMTPUTF8. Addresses were checked when the
    channel was saved; one that no longer passes is sent as it is (the server says no)."""
    try:
        checked = validate_email(address, check_deliverability=False)
    except EmailNotValidError:
        return address
    return checked.ascii_email or address


def _id_domain(sender: str) -> str:
    """The right side of a Message-ID: the sender address's domain in its ASCII (IDNA) form, so
    that `make_msgid` needs no look-up of this machine's name (`socket.getfqdn`, which waits on
    DNS)."""
    try:
        return sender.rpartition("@")[2].encode("idna").decode("ascii")
    except UnicodeError:
        return "opscraft.invalid"


class _Deadline:
    """Cuts an SMTP session's connection `seconds` after it starts (a timer thread shuts its
    socket down, which wakes the blocked read with an error): smtplib's timeout is per read,
    never for the whole session. `expired` says afterwards whether it did."""

    def __init__(self, seconds: float) -> None:
        self.expired = threading.Event()
        self._client: Any = None
        self._timer = threading.Timer(seconds, self._cut)
        self._timer.daemon = True

    def watch(self, client: Any) -> None:
        """Start counting, for `client` (before it connects: the greeting counts too)."""
        self._client = client
        self._timer.start()

    def stop(self) -> None:
        self._timer.cancel()

    def _cut(self) -> None:
        self.expired.set()
        sock = self._client.sock if self._client is not None else None
        if sock is not None:
            # the plain socket's shutdown, also under TLS: it needs no TLS record, and wakes a
            # read blocked in another thread
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watched:
    """An SMTP client under a `_Deadline` from its construction on (its connection and greeting
    happen in the constructor)."""

    def __init__(self, *args: Any, deadline: _Deadline, **kwargs: Any) -> None:
        deadline.watch(self)  # mixed into smtplib.SMTP below
        super().__init__(*args, **kwargs)


class _SMTP(_Watched, smtplib.SMTP):
    pass


class _SMTPSSL(_Watched, smtplib.SMTP_SSL):
    pass


def _smtp_send(settings: EmailSettings, message: EmailMessage) -> None:
    """Send `message` within `DEADLINE_SECONDS`. Raises SendError."""
    deadline = _Deadline(DEADLINE_SECONDS)
    try:
        _smtp_session(settings, message, deadline)
    except PartlyDelivered:  # the message went through: said as it is, never sent again
        raise
    except SendError:
        if deadline.expired.is_set():
            raise SendError(
                f"SMTP {settings.host}:{settings.port}: the server did not finish within "
                f"{DEADLINE_SECONDS:g} s"
            ) from None
        raise
    finally:
        deadline.stop()


def _smtp_session(settings: EmailSettings, message: EmailMessage, deadline: _Deadline) -> None:
    where = f"SMTP {settings.host}:{settings.port}"
    context = ssl.create_default_context()
    try:
        if settings.security == "ssl":
            smtp: smtplib.SMTP = _SMTPSSL(
                settings.host, settings.port, timeout=TIMEOUT_SECONDS, context=context, deadline=deadline
            )
        else:
            smtp = _SMTP(settings.host, settings.port, timeout=TIMEOUT_SECONDS, deadline=deadline)
        with smtp:
            if settings.security == "starttls":
                smtp.starttls(context=context)
            if settings.username:
                smtp.login(settings.username, settings.password or "")
            refused = smtp.send_message(message)
    except smtplib.SMTPAuthenticationError:
        raise SendError(f"{where}: authentication failed (check the username and the vault secret)") from None
    except smtplib.SMTPRecipientsRefused as exc:  # every recipient
        raise SendError(f"{where}: {_refusals(exc.recipients)}") from None
    except smtplib.SMTPResponseException as exc:  # the sender or the message refused, a greeting...
        answer = _reply(exc.smtp_code, exc.smtp_error)
        raise SendError(f"{where}: {type(exc).__name__}: the server answered {answer}") from None
    except smtplib.SMTPNotSupportedError as exc:
        # smtplib's own fixed text: the extension the server lacks (STARTTLS, AUTH, or SMTPUTF8,
        # which a non-ASCII address needs: RFC 6531)
        raise SendError(f"{where}: the server does not offer what this channel needs: {exc}") from None
    except smtplib.SMTPServerDisconnected:
        raise SendError(f"{where}: the server closed the connection before it answered") from None
    except smtplib.SMTPException as exc:
        raise SendError(f"{where}: {type(exc).__name__}") from None
    except ssl.SSLError as exc:
        raise SendError(f"{where}: TLS failed ({exc.reason or type(exc).__name__})") from None
    except (OSError, UnicodeError) as exc:  # UnicodeError: a host name with no IDNA form
        raise SendError(f"{where} unreachable: {type(exc).__name__}") from None
    if refused:  # smtplib raises only when every recipient is refused
        raise PartlyDelivered(f"{where}: {_refusals(refused)}; sent to the other recipients")


REPLY_CHARS = 200


def _reply(code: int, text: bytes | str) -> str:
    """An SMTP reply as `550 5.1.1 user unknown`: one line (a multi-line reply's lines joined,
    control characters dropped), at most `REPLY_CHARS` characters. The server's own words: never
    the password (a refused login is said without them) nor the message."""
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
    line = " ".join("".join(c if c.isprintable() else " " for c in words).split())
    return f"{code} {line}"[:REPLY_CHARS]


def _refusals(refused: dict[str, tuple[int, bytes]]) -> str:
    """`refused a@example.com (550 ...), b@example.com (...)`: the recipients the server refused,
    each with its reply."""
    return "refused " + ", ".join(f"{address} ({_reply(*reply)})" for address, reply in refused.items())
