"""Real receivers on loopback for notification tests: an HTTP server (stdlib `http.server`) and an
SMTP server (aiosmtpd), optionally with TLS from a self-signed certificate trusted through
`SSL_CERT_FILE` (the sender verifies certificates against the system's CA store)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.waiting import until


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class HttpReceiver:
    """Records every POST; `statuses` (popped per request, then 200), `answer` (the body of
    every answer), `headers` (of every answer) and `delay` shape answers."""

    url: str
    requests: list[Received] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    answer: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)

    async def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        """Wait (without blocking the event loop, where the sender runs) for `count` requests."""
        await until(lambda: len(self.requests) >= count, f"{count} requests", timeout)
        return self.requests


# How often a receiver's serving thread checks whether it is asked to stop (`serve_forever`).
POLL_SECONDS = 0.02


@contextmanager
def http_receiver() -> Iterator[HttpReceiver]:
    receiver = HttpReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if receiver.delay:
                time.sleep(receiver.delay)
            receiver.requests.append(
                Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            status = receiver.statuses.pop(0) if receiver.statuses else 200
            self.send_response(status)
            for name, value in receiver.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(receiver.answer)))
            self.end_headers()
            self.wfile.write(receiver.answer)

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}"
    # `shutdown` waits for the serving loop to look at its flag, which it does every
    # `poll_interval` (0.5 s by default: half a second at the end of every test using a receiver).
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": POLL_SECONDS}, daemon=True
    )
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class SmtpReceiver:
    host: str
    port: int
    messages: list[Message] = field(default_factory=list)
    envelopes: list[Any] = field(default_factory=list)

    async def wait_for(self, count: int, timeout: float = 30) -> list[Message]:
        """Wait (without blocking the event loop) for `count` emails."""
        await until(lambda: len(self.messages) >= count, f"{count} emails", timeout)
        return self.messages


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and localhost: (certificate PEM, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


LoginCheck = Callable[[bytes, bytes], bool]


@contextmanager
def smtp_receiver(
    *,
    tls: str = "none",
    cert: tuple[Path, Path] | None = None,
    login: tuple[str, str] | None = None,
    smtputf8: bool = False,
    refuse: frozenset[str] = frozenset(),
    data_reply: str | None = None,
    hang_up_in_data: bool = False,
) -> Iterator[SmtpReceiver]:
    """aiosmtpd on 127.0.0.1: `tls` none, starttls (required) or ssl (implicit); `login` requires AUTH;
    `smtputf8` offers the SMTPUTF8 extension (RFC 6531, non-ASCII addresses); the recipients in
    `refuse` are refused (550 user unknown); `data_reply`, when given, refuses the message with it;
    `hang_up_in_data` closes the connection once the message is in, before answering."""
    from tests.conftest import free_port

    port = free_port()
    receiver = SmtpReceiver("127.0.0.1", port)

    class Handler:
        async def handle_RCPT(
            self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: Any
        ) -> str:
            if address in refuse:
                return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
            envelope.rcpt_tos.append(address)
            return "250 OK"

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            if hang_up_in_data:
                server.transport.close()
                return "250 OK"  # never reaches the client
            if data_reply is not None:
                return data_reply
            receiver.envelopes.append(envelope)
            receiver.messages.append(message_from_bytes(envelope.content, policy=policy.default))
            return "250 OK"

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
        ok = login is not None and (auth_data.login, auth_data.password) == (
            login[0].encode(),
            login[1].encode(),
        )
        return AuthResult(success=ok, handled=False)

    context = None
    if cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    kwargs: dict[str, Any] = {"enable_SMTPUTF8": smtputf8}
    if tls == "starttls":
        kwargs |= {"tls_context": context, "require_starttls": True}
    elif tls == "ssl":
        # aiosmtpd does not count implicit TLS as TLS for AUTH: the connection is encrypted anyway
        kwargs |= {"ssl_context": context, "server_hostname": "localhost", "auth_require_tls": False}
    if login is not None:
        kwargs |= {"authenticator": authenticator, "auth_required": True}
        if tls == "none":  # a server offering AUTH in clear text (what a channel must not use)
            kwargs |= {"auth_require_tls": False}
    controller = Controller(Handler(), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    try:
        yield receiver
    finally:
        controller.stop()


@dataclass
class DripServer:
    """Where a `drip_server` listens, and how many connections it took."""

    host: str
    port: int
    connections: int = 0


@contextmanager
def drip_server(
    first: bytes, then: bytes, *, interval: float = 0.5, cert: tuple[Path, Path] | None = None
) -> Iterator[DripServer]:
    """A receiver too slow for any total time but quick enough for every read's timeout: each
    connection gets `first`, then `then` every `interval` seconds until the client hangs up (an
    HTTP status line then header after header; an SMTP greeting of endless `220-` lines). The
    request is never read. With `cert`, each connection is implicit TLS first."""
    context = None
    if cert is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    server = DripServer("127.0.0.1", listener.getsockname()[1])
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        try:
            if context is not None:
                conn = context.wrap_socket(conn, server_side=True)
            conn.sendall(first)
            while not stop.wait(interval):
                conn.sendall(then)
        except OSError:  # the client hung up
            pass
        finally:
            conn.close()

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(None)
            server.connections += 1
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join()
        listener.close()
