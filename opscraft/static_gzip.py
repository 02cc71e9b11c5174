"""Compression of the web UI's versioned files, done once per file instead of once per request.

A page's first load in a browser fetches about 1 MB of NiceGUI's JS and CSS (Quasar, Vue,
socket.io, the pages' Tailwind CSS; `/_nicegui/<version>/...`). Starlette's `GZipMiddleware`
(NiceGUI's, level 9) compressed them again on every request, in 64 KiB pieces on the event
loop: the largest single cost of a fresh page load on the server (docs/benchmarks.md, session
29). Those files do not change while a version is served (NiceGUI sends them `Cache-Control:
immutable`), so their compressed form is kept here and sent again.

Nothing else changes: the request still goes through every middleware and the app (the file is
read, its headers set, the security headers added...); only the compression of a body already
seen is skipped. The key is the path and a digest of the uncompressed body, so a file that did
change would be compressed anew (never served stale). Other paths (pages, the API) are compressed
as before.
"""

from __future__ import annotations

import hashlib
import zlib
from collections import OrderedDict

import anyio.to_thread
from starlette.datastructures import MutableHeaders
from starlette.middleware.gzip import GZipMiddleware, GZipResponder
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Bodies larger than this (uncompressed) are compressed as they stream, as before, not kept.
MAX_ENTRY_BYTES = 4 * 1024 * 1024
# Compressed bytes kept in all (least recently used first out): NiceGUI 3.18's files a page
# loads compress to about 0.35 MB; every file under its `static/` to about 2.5 MB.
MAX_CACHE_BYTES = 16 * 1024 * 1024
COMPRESS_LEVEL = 9


class CompressedBodies:
    """Compressed bodies by (path, digest of the uncompressed body), at most `max_bytes` of them."""

    def __init__(self, max_bytes: int = MAX_CACHE_BYTES) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.entries: OrderedDict[tuple[str, bytes], bytes] = OrderedDict()
        self.compressions = 0  # how many bodies were compressed (not found): for tests and benches

    @staticmethod
    def key(path: str, body: bytes) -> tuple[str, bytes]:
        """The cache key of a body: its path and a 16-byte BLAKE2b digest of the uncompressed bytes."""
        return path, hashlib.blake2b(body, digest_size=16).digest()

    async def compressed(self, path: str, body: bytes) -> bytes:
        """`body` gzip-compressed (level `COMPRESS_LEVEL`), from the cache or compressed now
        (in a worker thread, as Starlette does for large bodies) and kept."""
        key = self.key(path, body)
        found = self.entries.get(key)
        if found is not None:
            self.entries.move_to_end(key)
            return found
        compressed = await anyio.to_thread.run_sync(gzip_bytes, body)
        self.compressions += 1
        if len(compressed) <= self.max_bytes:
            self.entries[key] = compressed
            self.size += len(compressed)
            while self.size > self.max_bytes:
                _, dropped = self.entries.popitem(last=False)
                self.size -= len(dropped)
        return compressed


def gzip_bytes(body: bytes) -> bytes:
    """One gzip member of `body` (what `gzip.compress` makes, without its header's time)."""
    compressor = zlib.compressobj(COMPRESS_LEVEL, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(body) + compressor.flush()


class CachingGZipResponder(GZipResponder):
    """Starlette's responder for one GET under a versioned prefix: a `200` body is gathered whole
    (up to `MAX_ENTRY_BYTES`) and sent compressed from `bodies`, with its `Content-Length`.
    Anything else (another status, a body already encoded, an excluded type such as fonts, a
    short body, a larger one) goes on as Starlette sends it."""

    def __init__(self, app: ASGIApp, minimum_size: int, bodies: CompressedBodies, path: str) -> None:
        super().__init__(app, minimum_size, compresslevel=COMPRESS_LEVEL)
        self.bodies = bodies
        self.path = path
        self.gathering = True
        self.parts: list[bytes] = []
        self.gathered = 0

    async def send_with_compression(self, message: Message) -> None:
        """Gather a whole 200 response body and send it gzip-compressed from the cache; responses that are
        not 200, already encoded, partial, of an excluded type, or larger than MAX_ENTRY_BYTES stream
        through Starlette's GZip as usual, and bodies under `minimum_size` go uncompressed.
        """
        if message["type"] == "http.response.start":
            self.gathering = message["status"] == 200 and not message.get("trailers", False)
            await super().send_with_compression(message)
            return
        if (
            not self.gathering
            or message["type"] != "http.response.body"
            or self.content_encoding_set
            or self.partial_response
            or self.content_type_is_excluded
        ):
            await super().send_with_compression(message)
            return
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        if self.gathered + len(body) > MAX_ENTRY_BYTES:
            await self.stop_gathering(message)
            return
        self.parts.append(body)
        self.gathered += len(body)
        if more_body:
            return
        whole = b"".join(self.parts)
        if len(whole) < self.minimum_size:
            await super().send_with_compression({"type": "http.response.body", "body": whole})
            return
        compressed = await self.bodies.compressed(self.path, whole)
        headers = MutableHeaders(raw=self.initial_message["headers"])
        headers.add_vary_header("Accept-Encoding")
        headers["Content-Encoding"] = self.content_encoding
        headers["Content-Length"] = str(len(compressed))
        self.started = True
        await self.send(self.initial_message)
        await self.send({"type": "http.response.body", "body": compressed})

    async def stop_gathering(self, message: Message) -> None:
        """Too large to keep: hand what was gathered, then `message`, to Starlette's streaming."""
        self.gathering = False
        if self.parts:
            await super().send_with_compression(
                {"type": "http.response.body", "body": b"".join(self.parts), "more_body": True}
            )
            self.parts = []
        await super().send_with_compression(message)


class CachingGZipMiddleware(GZipMiddleware):
    """Starlette's `GZipMiddleware` (level `COMPRESS_LEVEL`), keeping the compressed bodies of GET
    requests under `immutable_prefix` (NiceGUI's `/_nicegui/<version>/`) except those under one
    of `except_prefixes` (its `dynamic_resources/`, made per request)."""

    def __init__(
        self,
        app: ASGIApp,
        minimum_size: int,
        immutable_prefix: str,
        except_prefixes: tuple[str, ...] = (),
        bodies: CompressedBodies | None = None,
    ) -> None:
        super().__init__(app, minimum_size=minimum_size, compresslevel=COMPRESS_LEVEL)
        self.immutable_prefix = immutable_prefix
        self.except_prefixes = except_prefixes
        self.bodies = bodies or CompressedBodies()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """ASGI entry: serve GETs of immutable (versioned) files that accept gzip through the
        compressed-body cache; every other request takes Starlette's GZipMiddleware.
        """
        path = scope.get("path", "")
        if (
            scope["type"] == "http"
            and scope["method"] == "GET"
            and path.startswith(self.immutable_prefix)
            and not path.startswith(self.except_prefixes)
            and _accepts_gzip(scope)
        ):
            await CachingGZipResponder(self.app, self.minimum_size, self.bodies, path)(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _accepts_gzip(scope: Scope) -> bool:
    """What Starlette's middleware checks: "gzip" in the request's `Accept-Encoding`."""
    for name, value in scope["headers"]:
        if name == b"accept-encoding":
            return b"gzip" in value
    return False
