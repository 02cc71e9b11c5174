"""The HTTP protocol `opscraft serve` runs: uvicorn's own (httptools when installed, else h11, as
uvicorn's `http="auto"` picks: `AutoHTTPProtocol`), answering a request it cannot read with the
API's error body instead of uvicorn's plain text.

uvicorn refuses a request whose request line or headers its parser cannot read (malformed, or
past the parser's limit: httptools takes a request line of about 64 KiB, h11 16 KiB of headers
still arriving) before any application sees it, with `400` and the text `Invalid HTTP request
received.`: the one answer of the server whose body was not `{detail, errors}` (docs/api.md,
*Errors*). Its protocol classes send that answer from one method, `send_400_response`, which this
subclass overrides; nothing of uvicorn is patched, and the connection is closed after it as
uvicorn closes it.
"""

from __future__ import annotations

import asyncio
import json

from uvicorn.protocols.http.auto import AutoHTTPProtocol

BAD_REQUEST_DETAIL = (
    "invalid HTTP request: the server could not read its request line or headers (malformed, or "
    "longer than the server reads: a request line holds at most about 64 KiB, the address "
    "included; send long values in a JSON body)"
)


def bad_request_answer(default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """The whole HTTP/1.1 answer to a request that could not be read: `400`, `default_headers`
    (uvicorn's `date` and `server`), the API's `{"detail", "errors"}` body, `connection: close`."""
    body = json.dumps({"detail": BAD_REQUEST_DETAIL, "errors": []}).encode()
    head = [b"HTTP/1.1 400 Bad Request\r\n"]
    head += [name + b": " + value + b"\r\n" for name, value in default_headers]
    head += [
        b"content-type: application/json\r\n",
        b"content-length: " + str(len(body)).encode() + b"\r\n",
        b"connection: close\r\n\r\n",
    ]
    return b"".join(head) + body


class JsonErrorHTTPProtocol(AutoHTTPProtocol):  # type: ignore[misc, valid-type]
    """uvicorn's HTTP protocol (`AutoHTTPProtocol`) whose `400` for a request it cannot read has
    the API's JSON error body (`bad_request_answer`)."""

    transport: asyncio.Transport

    def send_400_response(self, msg: str) -> None:
        """Send `bad_request_answer` and close the connection (uvicorn logged `msg` already)."""
        self.transport.write(bad_request_answer(list(self.server_state.default_headers)))
        self.transport.close()
