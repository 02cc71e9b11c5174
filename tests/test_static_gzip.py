"""NiceGUI's versioned files are compressed once and the compressed body sent again
(`opscraft.static_gzip`), with the headers they had: gzip, `Content-Length`, NiceGUI's immutable
`Cache-Control`, the security headers. A real server for the headers; the middleware alone (a
Starlette app) to count compressions."""

from __future__ import annotations

import gzip
from pathlib import Path

import httpx
import nicegui
from nicegui.version import __version__
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from opscraft.app import GZIP_MIN_BYTES
from opscraft.static_gzip import CachingGZipMiddleware, CompressedBodies
from tests.conftest import LiveServer

STATIC = Path(nicegui.__file__).parent / "static"


def test_a_static_file_is_sent_gzipped_with_its_headers(live_server: LiveServer) -> None:
    url = f"{live_server.url}/_nicegui/{__version__}/static/quasar.umd.prod.js"
    raw = (STATIC / "quasar.umd.prod.js").read_bytes()
    with httpx.Client(headers={"Accept-Encoding": "gzip"}) as client:
        for _ in range(2):  # compressed, then from the cache: the same answer
            with client.stream("GET", url) as answer:
                sent = b"".join(answer.iter_raw())
            assert answer.status_code == 200
            assert answer.headers["content-encoding"] == "gzip"
            assert int(answer.headers["content-length"]) == len(sent) < len(raw) // 2
            assert gzip.decompress(sent) == raw
            assert answer.headers["cache-control"] == (
                "public, max-age=31536000, immutable, stale-while-revalidate=31536000"
            )
            assert "Accept-Encoding" in answer.headers["vary"]
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["content-security-policy"].startswith("default-src 'self'")
            assert answer.headers["content-type"].startswith("text/javascript")
        # A client that does not accept gzip gets the file as it is.
        plain = client.get(url, headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert plain.content == raw
        # Conditional and range requests keep Starlette's answers.
        etag = plain.headers["etag"]
        assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
        part = client.get(url, headers={"Range": "bytes=0-99"})
        assert part.status_code == 206
        assert part.content == raw[:100]


BODY = {"text": "console.log('hello');\n" * 200}


async def _file(_: object) -> Response:
    return PlainTextResponse(BODY["text"], media_type="text/javascript")


def _client(bodies: CompressedBodies) -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/_nicegui/1.0/static/app.js", _file), Route("/page", _file)])
    middleware = CachingGZipMiddleware(app, GZIP_MIN_BYTES, immutable_prefix="/_nicegui/1.0/", bodies=bodies)
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=middleware),
        base_url="http://test",
        headers={"Accept-Encoding": "gzip"},
    )


async def test_a_compressed_body_is_reused_and_a_changed_one_compressed_again() -> None:
    bodies = CompressedBodies()
    BODY["text"] = "console.log('hello');\n" * 200
    async with _client(bodies) as client:
        first = await client.get("/_nicegui/1.0/static/app.js")
        second = await client.get("/_nicegui/1.0/static/app.js")
        assert first.content == second.content == BODY["text"].encode()  # httpx decoded them
        assert first.headers["content-encoding"] == "gzip"
        assert bodies.compressions == 1
        # Another body at the same path (a file replaced): compressed anew, never the old one.
        BODY["text"] = "console.log('changed');\n" * 200
        third = await client.get("/_nicegui/1.0/static/app.js")
        assert third.content == BODY["text"].encode()
        assert bodies.compressions == 2
        # Paths outside the prefix are compressed by Starlette on each request, not kept.
        page = await client.get("/page")
        assert page.headers["content-encoding"] == "gzip"
        assert bodies.compressions == 2
        assert len(bodies.entries) == 2


async def test_the_cache_keeps_at_most_its_bound() -> None:
    bodies = CompressedBodies(max_bytes=1)  # every compressed body is larger: none is kept
    async with _client(bodies) as client:
        for _ in range(2):
            assert (await client.get("/_nicegui/1.0/static/app.js")).headers["content-encoding"] == "gzip"
    assert bodies.compressions == 2
    assert bodies.size == 0 and not bodies.entries
