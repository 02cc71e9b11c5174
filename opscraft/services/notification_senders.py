"""Transports for notifications: generic webhook (JSON, optionally HMAC-signed), Slack incoming
webhook, email over SMTP. Pure I/O: which message goes where is decided in `notifications`.

Each `send_*` raises `SendError` with a message that is safe to log and show to admins (it
never contains the credential, the URL's secret path or the message body), ends within
`DEADLINE_SECONDS` however slowly the receiver answers, and reads a bounded answer however long
the receiver's is (`ANSWER_BODY_BYTES` of an HTTP body, only a refusal's; `REPLY_BYTES` of an
SMTP reply).

Formats:
- generic webhook: `POST <url>` with the message as JSON (`Content-Type: application/json`);
  with a signing key, `X-OpsCraft-Timestamp: <unix seconds>` and
  `X-OpsCraft-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` (the scheme of
  GitHub's `X-Hub-Signature-256`, with Stripe's timestamp binding against replays);
- Slack: `POST <incoming webhook URL>` with `{"text": ...}`
  (https://api.slack.com/messaging/webhooks);
- email: RFC 5322 message over SMTP (RFC 5321) with `security` none, `starttls` (RFC 3207) or
  `ssl` (implicit TLS, RFC 8314), login when a username is given (over `none` only when
  `OPSCRAFT_SMTP_PLAINTEXT_LOGIN` allows it); certificates are verified against the system's CA
  store.

Where a send may connect (`OPSCRAFT_NOTIFY_NETWORKS`, `check_addresses`): the host is resolved
at send time, every address it resolves to must be public or in an allowed network, and the
connection goes to the address checked (never a second look-up, which a DNS rebinding answers
differently); TLS still verifies the certificate against the host name. An IPv6 address standing
for an IPv4 one (mapped, NAT64, 6to4, Teredo: `ipv4_within`) is judged as that one. A channel
whose host is a refused address in any spelling (`literal_address`: `0xa9fea9fe`, `127.1`,
`[::ffff:127.0.0.1]`, `169.254.169.254.`...) is refused when saved too (`host_refusal`). A
redirect is never followed, and webhooks ignore HTTP_PROXY, HTTPS_PROXY and ALL_PROXY: a proxy
would make the connection from where it runs, out of the check's sight (a server that reaches the
Internet only through a proxy sends webhooks to receivers on its own networks only).

A `SendError` is `permanent` when sending again cannot help (a 4xx other than 408 and 429, a
redirect, an address refused, an SMTP 5xx reply): the delivery fails at once instead of being
retried; a 429's `Retry-After` is its `retry_after`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import os
import re
import smtplib
import socket
import ssl
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, make_msgid, parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
from email_validator import EmailNotValidError, validate_email

from opscraft.db.types import utcnow

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
    """The receiver refused or could not be reached; the message is safe to store and show.
    `permanent`: sending again cannot help (not retried); `retry_after`: seconds the receiver
    asked to wait (a 429's `Retry-After`), None when it did not say; `details`: the channel's
    fields at fault, as a `ServiceError`'s (`{"field", "message"}`: a stored setting that cannot
    be read or that today's rules refuse), [] when the fault is the receiver's."""

    def __init__(
        self,
        message: str,
        *,
        permanent: bool = False,
        retry_after: float | None = None,
        details: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.retry_after = retry_after
        self.details = details or []


class PartlyDelivered(SendError):
    """The message went to some recipients and the server refused the others (named, with its
    reply): sending again would repeat it to those who have it, so it is not retried."""


@dataclass(frozen=True)
class EmailSettings:
    """How an email channel sends: SMTP host and port, security (none, starttls or ssl), sender and
    recipients, optional login, and the networks its host may be in.
    """

    host: str
    port: int
    security: str
    sender: str
    recipients: list[str]
    username: str | None = None
    password: str | None = None
    # OPSCRAFT_NOTIFY_NETWORKS and OPSCRAFT_SMTP_PLAINTEXT_LOGIN (config.Settings)
    networks: frozenset[str] = frozenset({"private"})
    plaintext_login: bool = False


PLAINTEXT_LOGIN = (
    "a login needs an encrypted connection (security starttls or ssl): over security none the "
    "password crosses the network in clear text (set OPSCRAFT_SMTP_PLAINTEXT_LOGIN=true to allow it)"
)


# --- where a send may connect ------------------------------------------------------------------

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata services outside 169.254/16: AWS's IPv6 one (a ULA), Alibaba's (in 100.64/10)
_METADATA = frozenset(ipaddress.ip_address(a) for a in ("fd00:ec2::254", "100.100.100.200"))
_SHARED = ipaddress.ip_network("100.64.0.0/10")  # RFC 6598, carrier-grade NAT
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")  # 0.0.0.0 reaches this machine on Linux
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052's well-known prefix: the IPv4 address last
# RFC 8215's local-use NAT64 prefix: where in it the IPv4 address sits is the operator's choice
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_COMPATIBLE = ipaddress.ip_network("::/96")  # IPv4-compatible (RFC 4291 2.5.5.1, deprecated)


def ipv4_within(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 `address` stands for, whose network decides where it goes:
    IPv4-mapped (`::ffff:169.254.169.254`: the kernel connects over IPv4), NAT64 with the
    well-known prefix (`64:ff9b::a9fe:a9fe`: a translator connects to 169.254.169.254), 6to4
    (`2002:a9fe:a9fe::`: sent to the 6to4 router at that address) and Teredo (its client's
    address); None for another address."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    return address.teredo[1] if address.teredo is not None else None


def network_of(address: Address) -> str | None:
    """The network `address` is in, as OPSCRAFT_NOTIFY_NETWORKS names them: `public`,
    `private` (with the deprecated IPv6 site-local fec0::/10), `loopback`, `link_local` (with the
    cloud metadata addresses), or None for one no setting allows (unspecified, this network,
    multicast, reserved, documentation, IPv4-compatible `::a.b.c.d`, local-use NAT64
    64:ff9b:1::/48). An IPv6 address standing for an IPv4 one (`ipv4_within`) is in that one's:
    `::ffff:127.0.0.1` is loopback, `2002:a9fe:a9fe::` link-local."""
    address = ipv4_within(address) or address
    v6 = isinstance(address, ipaddress.IPv6Address)
    if v6 and int(address) > 1 and (address in _COMPATIBLE or address in _NAT64_LOCAL):  # not :: or ::1
        return None
    if address in _METADATA or address.is_link_local:
        return "link_local"
    if address.is_loopback:
        return "loopback"
    if address.is_unspecified or address.is_multicast or address.is_reserved:
        return None
    if isinstance(address, ipaddress.IPv4Address) and address in _THIS_NETWORK:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:
        return "private"
    if address.is_global:
        return "public"
    if address.is_private or (isinstance(address, ipaddress.IPv4Address) and address in _SHARED):
        return "private"
    return None


def refusal(host: str, address: Address, networks: frozenset[str]) -> str | None:
    """Why a notification may not go to `address` (what `host` resolved to or spells), e.g.
    `0xa9fea9fe (169.254.169.254): a link-local address, not allowed for notifications
    (OPSCRAFT_NOTIFY_NETWORKS allows: public, private)`; None when it is public or in one of
    `networks`."""
    network = network_of(address)
    if network == "public" or network in networks:
        return None
    named = host if _spells(host, address) else f"{host} ({address})"
    within = ipv4_within(address)
    stands = f" (it stands for {within})" if within is not None else ""
    if network is None:
        return f"{named}: an address notifications never go to{stands} (unspecified, multicast, reserved...)"
    allowed = ", ".join(["public", *sorted(networks)])
    return (
        f"{named}: a {network.replace('_', '-')} address{stands}, not allowed for notifications "
        f"(OPSCRAFT_NOTIFY_NETWORKS allows: {allowed})"
    )


def _spells(host: str, address: Address) -> bool:
    """Whether `host` is `address` in its usual notation (`::ffff:127.0.0.1` for ::ffff:7f00:1)."""
    try:
        return ipaddress.ip_address(host) == address
    except ValueError:
        return False


def check_addresses(host: str, addresses: list[str], networks: frozenset[str], where: str) -> str:
    """The address to connect to (the first) when every one of `addresses` (what `host`
    resolved to) is public or in one of `networks`; else a permanent `SendError` naming the
    host, the address, its network and the setting. Every address, not only the first: a name
    resolving to a public and a metadata address would otherwise reach the second on a retry."""
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # an IPv6 zone id aside
        refused = refusal(host, address, networks)
        if refused is not None:
            raise SendError(f"{where}: refused to connect to {refused}", permanent=True)
    return addresses[0]


def literal_address(host: str) -> Address | None:
    """The address `host` (a URL's host or an SMTP host, as given) spells, in any form the
    resolver reads as one without asking DNS: `169.254.169.254`, `[::ffff:a9fe:a9fe]`, a zone
    id (`fe80::1%eth0`), trailing dots, full-width digits and dots (the IDNA form the look-up
    uses), and the C library's decimal, octal, hex and short forms (`2852039166`,
    `0251.0376.0251.0376`, `0xa9fea9fe`, `127.1`); 127.0.0.1 for `localhost` and `*.localhost`
    (RFC 6761 6.3); None for a host name, which only a look-up when sending can place."""
    if not _no_blank_or_control(host):  # no look-up is made for it (`host_name_problem`)
        return None
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        text = text.split("%", 1)[0].encode("idna").decode("ascii").rstrip(".")
    except UnicodeError:
        return None
    if text.lower() == "localhost" or text.lower().endswith(".localhost"):
        return ipaddress.IPv4Address("127.0.0.1")
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    try:  # no DNS: AI_NUMERICHOST reads the forms inet_aton takes, or fails
        infos = socket.getaddrinfo(text, None, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except (OSError, UnicodeError):
        return None
    return ipaddress.ip_address(str(infos[0][4][0]).split("%", 1)[0])


def host_refusal(host: str, networks: frozenset[str]) -> str | None:
    """Why a channel naming `host` is refused when saved (`refusal`): an address in a network
    `networks` does not allow, in any spelling (`literal_address`); None for a host name, whose
    addresses are checked when each message is sent (DNS answers change)."""
    address = literal_address(host)
    return None if address is None else refusal(host, address, networks)


def url_host(url: str) -> str | None:
    """The host a send to `url` resolves: httpx's reading of it (`127。0。0。1` is `127.0.0.1`
    there); the standard library's when httpx refuses the URL; None when neither parses it."""
    import httpx  # here, not at import: start-up does not need it (docs/benchmarks.md, "Start-up")

    try:
        return httpx.URL(url).raw_host.decode("ascii")
    except (httpx.InvalidURL, TypeError, UnicodeError):
        pass
    try:
        return urlsplit(url).hostname
    except ValueError:
        return None


def _addresses(infos: list[Any]) -> list[str]:
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


async def _allowed_address(
    host: str, port: int, networks: frozenset[str], where: str, deadline: float
) -> str:
    """Resolve `host` now and `check_addresses`; `SendError` (retried) when it does not resolve,
    or not by `deadline` (the event loop's `time()`: the send's `DEADLINE_SECONDS`): a resolver
    that does not answer holds a look-up for its own timeouts and attempts (glibc: 5 s each, per
    name server and address family), past the send's deadline."""
    try:
        async with asyncio.timeout_at(deadline):
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except TimeoutError:
        raise SendError(
            f"{where} unreachable: the host name did not resolve within {DEADLINE_SECONDS:g} s"
        ) from None
    except (OSError, UnicodeError):  # UnicodeError: a host name with no IDNA form
        raise SendError(f"{where} unreachable: the host name does not resolve") from None
    return check_addresses(host, _addresses(infos), networks, where)


def signature(key: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>` of HMAC-SHA256(key, "<timestamp>." + body)."""
    mac = hmac.new(key.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def _no_blank_or_control(text: str) -> bool:
    """Whether `text` holds no whitespace and no control character: neither belongs in a URL or
    a host name, and ASCII ones (tab, CR, LF, space) pass the IDNA codec."""
    return all(c.isprintable() and not c.isspace() for c in text)


BLANK_OR_CONTROL = "holds a space, tab, line break or other invisible or control character"
# RFC 1035 2.3.4 (255 octets on the wire: 253 characters written, without the root's dot).
MAX_HOST_NAME_CHARS = 253


def host_name_problem(host: str) -> str | None:
    """Why `host` cannot be looked up at all, as a predicate for "its host name ..." that never
    repeats it, or None. It must hold no whitespace or control character, have an IDNA (ASCII)
    form and be at most `MAX_HOST_NAME_CHARS` in that form. A host name holding a bidi character
    (`\u202e`) has none, and a send to it raised UnicodeError (a 500 on **Test**) instead of
    failing as an unreachable receiver; one holding CR LF (`smtp.example\r\nX: y`) was saved and
    shown as two lines; one of 300 characters (labels of at most 63 pass the IDNA codec) was
    saved and could never resolve."""
    if not _no_blank_or_control(host):
        return BLANK_OR_CONTROL
    try:
        ascii_form = host.encode("idna")
    except UnicodeError:
        return "has no IDNA (ASCII) form"
    if len(ascii_form.rstrip(b".")) > MAX_HOST_NAME_CHARS:
        return f"is longer than {MAX_HOST_NAME_CHARS} characters (the limit of a DNS name)"
    return None


def http_url_problem(url: str) -> str | None:
    """Why `url` is no http(s) URL a send can try, in words that never repeat it (it may be a
    credential), or None: it needs a scheme, a host with an IDNA form (an IPv6 address in
    brackets: `http://fd00::1/` was "its port must be a number") and a port in 1-65535 (or
    none), and no whitespace or control character anywhere (urlsplit drops a tab or newline,
    httpx refuses it). `http://[::1`, port 99999 and `http://a<TAB>b.example/` were 500s (saving
    a channel, or a Slack URL from the vault on **Test**): urlsplit and httpx raise on them, not
    HTTPError. httpx must read it too: `http://0251.0376.0251.0376/` (octal) passed urlsplit,
    and httpx's InvalidURL on sending was a 500. Each refusal said only "must be an http:// or
    https:// URL", which left a wrong port or a pasted space to be guessed."""
    import httpx  # here, not at import: start-up does not need it (docs/benchmarks.md, "Start-up")

    if not _no_blank_or_control(url):
        return f"it {BLANK_OR_CONTROL}"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "it does not parse (an unclosed [ of an IPv6 address?)"
    if parts.scheme not in ("http", "https"):
        return "it must start with http:// or https://"
    if parts.netloc.rpartition("@")[2].count(":") > 1 and "[" not in parts.netloc:
        return "an IPv6 address must be in brackets (http://[fd00::1]:8080/...)"
    try:
        port = parts.port
    except ValueError:
        port = 0
    if port == 0:
        return "its port must be a number in 1-65535"
    host = parts.hostname or ""
    if not host:
        return "it names no host"
    problem = host_name_problem(host)
    if problem:
        return f"its host name {problem}"
    try:
        httpx.URL(url)
    except httpx.InvalidURL:
        return "its host is not a name or address an HTTP client reads"
    return None


def _where(url: str) -> str:
    """Scheme and host of a URL: enough to say where, without a secret path or query ("an
    invalid URL" for one that does not parse: never the URL itself, which may be a secret).
    An IPv6 address keeps its brackets (`http://[fd00::1]:8080`, RFC 3986 3.2.2): without them
    it was no URL, and its port could not be told from the address."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        if ":" in host:
            host = f"[{host}]"
        return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")
    except ValueError:
        return "an invalid URL"


# What stands for a masked URL's path and query (`masked_url`).
MASK_PATH = "/…"


def masked_url(url: str) -> str:
    """What is shown of a webhook URL: scheme, host and port, and `/…` when it has anything
    more (a path or query, which often hold a token), e.g. `https://hooks.example/…`."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "an invalid URL"
    rest = parts.path not in ("", "/") or bool(parts.query) or bool(parts.fragment)
    return _where(url) + (MASK_PATH if rest else "")


# Slack's refusals are one error code in the body (`no_service`, `channel_is_archived`,
# `invalid_token`...: https://api.slack.com/messaging/webhooks#handling_errors), the only clue to
# what is wrong. Only a body of this shape is repeated: nothing a receiver echoes is.
_ERROR_CODE = re.compile(r"[a-z][a-z0-9_]{0,63}")
# The most of a receiver's answer body read (bytes), and only of a refusal, for its error code:
# the whole body was read into memory, so a receiver answering with an endless body (a 200 of
# gigabytes streamed at once) grew the server process by gigabytes within the deadline, and held
# the event loop past it. An answer's status is all a delivery needs.
ANSWER_BODY_BYTES = 4096


# Answers worth sending again: a timeout, too many requests; and every 5xx
_RETRIED_STATUSES = frozenset({408, 429})
MAX_RETRY_AFTER_SECONDS = 3600.0


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A `Retry-After` header's wait in seconds (RFC 9110 10.2.3: delay-seconds or an HTTP
    date), at least 0; None when absent or unreadable. The caller bounds it."""
    if not value:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text[:12])
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)


def _redirect_target(url: Any, location: str) -> str:
    """Where a redirect from `url` (an httpx.URL) to `location` goes, as `_where` says it."""
    try:
        return _where(str(url.join(location)))
    except Exception:  # httpx.InvalidURL and the like: the receiver's words, never shown
        return "an invalid URL"


_CONTEXTS: dict[str, tuple[tuple[Any, ...], ssl.SSLContext]] = {}
_CONTEXTS_LOCK = threading.Lock()


def _stamp(path: str | None) -> tuple[str | None, int | None]:
    """`path` and its modification time (None when unset or unreadable)."""
    if not path:
        return path, None
    try:
        return path, os.stat(path).st_mtime_ns
    except OSError:
        return path, None


def _reused_context(kind: str, make: Any) -> ssl.SSLContext:
    """The TLS context `make()` built for `kind` while `SSL_CERT_FILE` and `SSL_CERT_DIR` (and
    the files they name) are unchanged: building one reads the whole CA bundle, about 40 ms of
    CPU, which every send paid. A context is safe to share between connections and threads; a
    CA file replaced or an environment changed builds a new one at the next send."""
    trust = (_stamp(os.environ.get("SSL_CERT_FILE")), _stamp(os.environ.get("SSL_CERT_DIR")))
    if kind == "smtp":  # OpenSSL's default store, when the environment names none
        default = ssl.get_default_verify_paths()
        trust += (_stamp(default.openssl_cafile), _stamp(default.openssl_capath))
    with _CONTEXTS_LOCK:
        built = _CONTEXTS.get(kind)
        if built is None or built[0] != trust:  # only the current one of each kind is kept
            built = _CONTEXTS[kind] = (trust, make())
        return built[1]


def _tls_context() -> ssl.SSLContext:
    """The CA certificates a webhook's TLS is verified against: `SSL_CERT_FILE` or `SSL_CERT_DIR`
    when set, else certifi's (httpx's choice, kept while the client ignores the rest of the
    environment: `trust_env=False`, so no HTTP_PROXY, HTTPS_PROXY or ALL_PROXY)."""
    import httpx

    return _reused_context("webhook", lambda: httpx.create_ssl_context(trust_env=True))


def _smtp_tls_context() -> ssl.SSLContext:
    """The CA certificates an SMTP server's TLS is verified against: OpenSSL's default store
    (`SSL_CERT_FILE` or `SSL_CERT_DIR` when set)."""
    return _reused_context("smtp", ssl.create_default_context)


async def _post_json(
    url: str, body: bytes, headers: dict[str, str], networks: frozenset[str], *, error_code: bool = False
) -> None:
    """POST `body` to the address `url`'s host resolves to now (`check_addresses` with
    `networks`), directly (never through a proxy from the environment); SendError unless a 2xx
    answers, permanent for a 3xx (never followed) or a 4xx other than 408 and 429, with the
    429's `Retry-After`. `error_code`: a refusal's body that is an error code
    (`_ERROR_CODE`, Slack's form) is named in the error."""
    import httpx  # here, not at import: start-up does not need it (docs/benchmarks.md, "Start-up")

    problem = http_url_problem(url)
    if problem:
        raise SendError(f"{_where(url)}: not a valid http:// or https:// URL: {problem}", permanent=True)

    target = httpx.URL(url)
    host = target.raw_host.decode("ascii")
    port = target.port or (443 if target.scheme == "https" else 80)
    deadline = asyncio.get_running_loop().time() + DEADLINE_SECONDS  # the whole send's
    address = await _allowed_address(host, port, networks, _where(url), deadline)
    # To the address checked, under the host's name: Host header and TLS (SNI, certificate)
    named = f"[{host}]" if ":" in host else host
    pinned = target.copy_with(host=address)
    sent = {
        "Content-Type": "application/json",
        "Accept-Encoding": "identity",  # an answer's body is read as sent (`_answer_start`)
        **headers,
        "Host": named + (f":{target.port}" if target.port else ""),
    }
    try:
        async with (
            asyncio.timeout_at(deadline),
            httpx.AsyncClient(
                timeout=TIMEOUT_SECONDS, follow_redirects=False, trust_env=False, verify=_tls_context()
            ) as client,
        ):
            request = client.build_request(
                "POST", pinned, content=body, headers=sent, extensions={"sni_hostname": host}
            )
            response = await client.send(request, stream=True)
            try:
                status = response.status_code
                answer = await _answer_start(response) if error_code and not 200 <= status < 300 else b""
            finally:
                await response.aclose()  # the rest of the body unread: the connection is dropped
    except TimeoutError:
        raise SendError(f"{_where(url)} did not answer within {DEADLINE_SECONDS:g} s") from None
    except httpx.HTTPError as exc:
        raise SendError(f"{_where(url)} unreachable: {type(exc).__name__}") from None
    if not 200 <= status < 300:
        code = answer.decode("utf-8", "replace").strip()
        said = f" ({code})" if _ERROR_CODE.fullmatch(code) else ""
        location = response.headers.get("location")
        if 300 <= status < 400 and location:
            # Never followed (the message, and its signature, would go where the receiver says);
            # where to, without the path or query, which may hold a secret
            went = _redirect_target(target, location)
            said = f" (a redirect to {went}, not followed: save the URL it points to)"
        permanent = status < 500 and status not in _RETRIED_STATUSES
        wait = retry_after_seconds(response.headers.get("retry-after")) if status == 429 else None
        raise SendError(f"{_where(url)} answered HTTP {status}{said}", permanent=permanent, retry_after=wait)


async def _answer_start(response: Any) -> bytes:
    """The first bytes of a streamed httpx `response`'s body as sent, at most
    `ANSWER_BODY_BYTES`; b"" when the body is longer (no error code is that long). Never
    decompressed (the request asks for `identity`): a small compressed body can stand for
    gigabytes."""
    read = bytearray()
    async for chunk in response.aiter_raw():
        read += chunk
        if len(read) > ANSWER_BODY_BYTES:
            return b""
    return bytes(read)


async def send_webhook(
    url: str, message: dict[str, Any], networks: frozenset[str], signing_key: str | None = None
) -> None:
    """POST `message` as JSON to `url` (its host's addresses within `networks`); signed when
    `signing_key` is given. Raises SendError."""
    body = orjson.dumps(message)
    headers: dict[str, str] = {"User-Agent": "OpsCraft-Notifications"}
    if signing_key:
        timestamp = str(int(utcnow().timestamp()))  # the database's clock, as every stored time
        headers["X-OpsCraft-Timestamp"] = timestamp
        headers["X-OpsCraft-Signature"] = signature(signing_key, timestamp, body)
    await _post_json(url, body, headers, networks)


def slack_escaped(text: str) -> str:
    """`text` with `&`, `<` and `>` as Slack requires them (`&amp;`, `&lt;`, `&gt;`: "Escaping
    text", https://api.slack.com/reference/surfaces/formatting): else a run's output or a
    script name holding `<!channel>` notified the whole channel, and `<https://x|label>` showed
    a link under another name. Ours is plain text: Slack reads none of it as a control sequence."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def send_slack(url: str, text: str, networks: frozenset[str]) -> None:
    """POST `{"text": text}` (escaped: `slack_escaped`) to a Slack incoming webhook (its host's
    addresses within `networks`). Raises SendError."""
    body = orjson.dumps({"text": slack_escaped(text)})
    await _post_json(url, body, {"User-Agent": "OpsCraft-Notifications"}, networks, error_code=True)


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
    where = f"SMTP {settings.host}:{settings.port}"
    if settings.username and settings.security == "none" and not settings.plaintext_login:
        raise SendError(f"{where}: refused: {PLAINTEXT_LOGIN}", permanent=True)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_SECONDS  # the whole send's, the host name's look-up too
    address = await _allowed_address(settings.host, settings.port, settings.networks, where, deadline)
    await loop.run_in_executor(_SMTP_THREADS, _smtp_send, settings, message, address, deadline - loop.time())


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


# The longest SMTP reply read (bytes, all its lines): an EHLO reply, the longest a server sends,
# is a few hundred. smtplib caps each line (8 KiB) but not their number: a server answering an
# endless multi-line reply (`220-...` line after line) grew the server process by gigabytes
# within the deadline, every line kept until the reply's last.
REPLY_BYTES = 65536


class ReplyTooLong(Exception):
    """An SMTP server's reply went past `REPLY_BYTES`; the connection is closed. No OSError
    (smtplib's errors are): `getreply` takes those for a lost connection."""


class _ReplyReader:
    """The SMTP connection's file (`makefile("rb")`) for one reply at a time: `readline` raises
    `ReplyTooLong` once the reply's lines pass `REPLY_BYTES` (`start` begins each reply)."""

    def __init__(self, file: Any) -> None:
        self._file = file
        self._left = REPLY_BYTES

    def start(self) -> None:
        self._left = REPLY_BYTES

    def readline(self, limit: int = -1) -> bytes:
        line: bytes = self._file.readline(limit)
        self._left -= len(line)
        if self._left < 0:
            raise ReplyTooLong(f"the server's reply was longer than {REPLY_BYTES} bytes")
        return line

    def close(self) -> None:
        self._file.close()


class _Watched:
    """An SMTP client under a `_Deadline` from its construction on (its connection and greeting
    happen in the constructor), connecting to `address` (checked: `check_addresses`) while it
    names the host as given (TLS verifies the certificate against it), and reading replies of at
    most `REPLY_BYTES` (`ReplyTooLong`, the connection closed)."""

    sock: Any
    file: Any

    def __init__(self, *args: Any, deadline: _Deadline, address: str, **kwargs: Any) -> None:
        self._address = address
        deadline.watch(self)  # mixed into smtplib.SMTP below
        super().__init__(*args, **kwargs)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return super()._get_socket(self._address, port, timeout)  # type: ignore[misc]

    def getreply(self) -> tuple[int, bytes]:
        if self.file is None and self.sock is not None:  # smtplib's own start (and after STARTTLS)
            self.file = _ReplyReader(self.sock.makefile("rb"))
        if isinstance(self.file, _ReplyReader):
            self.file.start()
        try:
            return super().getreply()  # type: ignore[misc,no-any-return]
        except ReplyTooLong:
            self.close()  # type: ignore[attr-defined]  # smtplib.SMTP's: QUIT is not sent then
            raise


class _SMTP(_Watched, smtplib.SMTP):
    pass


class _SMTPSSL(_Watched, smtplib.SMTP_SSL):
    pass


def _smtp_send(settings: EmailSettings, message: EmailMessage, address: str, seconds: float) -> None:
    """Send `message` through the server at `address` (its host name resolved and checked:
    `_allowed_address`) within `seconds` (what is left of `DEADLINE_SECONDS`). Raises SendError."""
    deadline = _Deadline(seconds)
    try:
        _smtp_session(settings, message, address, deadline)
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


# Added to a refused login when the vault secret's value begins or ends with a blank or line break
# (a value read from a file keeps its last line break): it is sent as part of the password.
PASSWORD_BLANK_EDGES = (
    ": its value begins or ends with a blank or line break (read from a file?), which is sent as "
    "part of the password; edit the secret's value to remove it unless the password has it"
)


def _smtp_session(settings: EmailSettings, message: EmailMessage, address: str, deadline: _Deadline) -> None:
    where = f"SMTP {settings.host}:{settings.port}"
    context = _smtp_tls_context()
    session = {"timeout": TIMEOUT_SECONDS, "deadline": deadline, "address": address}
    try:
        if settings.security == "ssl":
            smtp: smtplib.SMTP = _SMTPSSL(settings.host, settings.port, context=context, **session)
        else:
            smtp = _SMTP(settings.host, settings.port, **session)
        with smtp:
            if settings.security == "starttls":
                smtp.starttls(context=context)
            if settings.username:
                smtp.login(settings.username, settings.password or "")
            refused = _send_message(smtp, message)
    except smtplib.SMTPAuthenticationError as exc:
        password = settings.password or ""
        raise SendError(
            f"{where}: authentication failed (check the username and the vault secret"
            + (PASSWORD_BLANK_EDGES if password != password.strip() else "")
            + ")",
            permanent=exc.smtp_code >= 500,
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:  # every recipient
        permanent = all(code >= 500 for code, _ in exc.recipients.values())
        raise SendError(f"{where}: {_refusals(exc.recipients)}", permanent=permanent) from None
    except smtplib.SMTPResponseException as exc:  # the sender or the message refused, a greeting...
        answer = _reply(exc.smtp_code, exc.smtp_error)
        # 5yz: a permanent negative reply (RFC 5321 4.2.1), 4yz a transient one
        raise SendError(
            f"{where}: {type(exc).__name__}: the server answered {answer}", permanent=exc.smtp_code >= 500
        ) from None
    except smtplib.SMTPNotSupportedError as exc:
        # smtplib's own fixed text: the extension the server lacks (STARTTLS, AUTH, or SMTPUTF8,
        # which a non-ASCII address needs: RFC 6531). Its configuration, which no retry changes.
        raise SendError(
            f"{where}: the server does not offer what this channel needs: {exc}", permanent=True
        ) from None
    except smtplib.SMTPServerDisconnected:
        raise SendError(f"{where}: the server closed the connection before it answered") from None
    except ReplyTooLong as exc:
        raise SendError(f"{where}: {exc}") from None
    except smtplib.SMTPException as exc:
        raise SendError(f"{where}: {type(exc).__name__}") from None
    except ssl.SSLError as exc:
        raise SendError(f"{where}: TLS failed ({exc.reason or type(exc).__name__})") from None
    except (OSError, UnicodeError) as exc:  # UnicodeError: a host name with no IDNA form
        raise SendError(f"{where} unreachable: {type(exc).__name__}") from None
    if refused:  # smtplib raises only when every recipient is refused
        raise PartlyDelivered(f"{where}: {_refusals(refused)}; sent to the other recipients")


def _send_message(smtp: smtplib.SMTP, message: EmailMessage) -> dict[str, tuple[int, bytes]]:
    """`smtp.send_message(message)` without mbox's "From " quoting: smtplib flattens an ASCII
    message with a generator that writes every body line starting with `From ` as `>From `
    (a mailbox file's convention; SMTP needs none: RFC 5321 4.5.2 has its own dot-stuffing,
    which `sendmail` does), so a script's output line `From here on...` arrived changed. Sent
    from `From` to every `To` address; an address that is not ASCII needs the server's
    SMTPUTF8 (RFC 6531), else `smtplib.SMTPNotSupportedError` as smtplib raises it. Returns the
    recipients the server refused (`sendmail`'s answer); raises what `sendmail` raises."""
    sender = message["From"]
    recipients = [address for _, address in getaddresses(message.get_all("To", []))]
    international = not "".join([sender, *recipients]).isascii()
    options: tuple[str, ...] = ()
    if international:
        smtp.ehlo_or_helo_if_needed()
        if not smtp.has_extn("smtputf8"):
            raise smtplib.SMTPNotSupportedError(
                "One or more source or delivery addresses require internationalized email "
                "support, but the server does not advertise the required SMTPUTF8 capability"
            )
        options = ("SMTPUTF8", "BODY=8BITMIME")
    data = message.as_bytes(policy=message.policy.clone(linesep="\r\n", utf8=international))
    return smtp.sendmail(sender, recipients, data, options)


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
