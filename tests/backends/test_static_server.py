"""Static files, compression and event streams on the built-in server, over real sockets."""

from __future__ import annotations

import asyncio
import gzip
import io
import shutil
import zlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import brotli
import pytest
from werkzeug.wrappers import Response

from asgi_helpers import Exchange, call, http_scope, request_messages
from helpers import IO_TIMEOUT, RawClient, RawResponse
from kyoukai import Blueprint, HTTPRequestContext, Kyoukai
from kyoukai.backends._server import KyoukaiServer
from kyoukai.compression import Compress
from kyoukai.sse import EventStream, ServerSentEvent
from kyoukai.util import send_file
from static_helpers import CSS, TRAVERSALS, make_tree

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BIG = 8 * 1024 * 1024


class TrackedFile(io.FileIO):
    """A file that tells the test when it is closed."""

    def __init__(self, path: Path, closed: asyncio.Event) -> None:
        super().__init__(path, "rb")
        self._closed_event = closed

    def close(self) -> None:
        super().close()
        self._closed_event.set()


def build_app(root: Path, gates: Any) -> Kyoukai:
    app = Kyoukai("static-server")
    app.add_static("/static", root, index="index.html")
    app.add_static("/tutorial", EXAMPLES / "tutorial" / "static", endpoint="tutorial")

    @app.route("/tracked")
    async def tracked(ctx: HTTPRequestContext) -> Response:
        file = TrackedFile(root / "big.bin", gates["tracked-closed"])
        return send_file(ctx, file, mimetype="application/octet-stream")

    @app.route("/events")
    async def events(ctx: HTTPRequestContext) -> EventStream:
        async def generate() -> AsyncIterator[ServerSentEvent]:
            try:
                for index in range(3):
                    yield ServerSentEvent(f"event {index}", id=str(index))
                    await gates[f"event-{index}-read"].wait()
                await asyncio.Event().wait()
            finally:
                gates["events-closed"].set()

        return EventStream(generate())

    compressed = app.root.add_child(Blueprint("compressed", prefix="/z"))
    compressed.after_request(Compress())
    compressed.add_static("/static", root, endpoint="zstatic")
    compressed.route("/events")(events.callable)
    return app


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = make_tree(tmp_path)
    with (root / "big.bin").open("wb") as file:
        file.truncate(BIG)  # sparse: no disk is used
    return root


@pytest.fixture
async def static_server(start: Any, root: Path, gates: Any) -> KyoukaiServer:
    return await start(app=build_app(root, gates))


async def fetch(port: int, target: str, *headers: str, method: str = "GET") -> RawResponse:
    head = [f"{method} {target} HTTP/1.1", "Host: example.org", *headers, "", ""]
    async with await RawClient.connect(port) as client:
        await client.send("\r\n".join(head).encode("latin-1"))
        return await client.read_response(head_request=method == "HEAD")


# -- files ----------------------------------------------------------------------------------------


async def test_file_with_validators_then_304(static_server: KyoukaiServer) -> None:
    response = await fetch(static_server.port, "/static/css/site.css")
    assert response.status_line == b"HTTP/1.1 200 OK"
    assert response.header("content-type") == "text/css; charset=utf-8"
    assert response.body == CSS
    etag = response.header("etag")
    again = await fetch(static_server.port, "/static/css/site.css", f"If-None-Match: {etag}")
    assert again.status_line == b"HTTP/1.1 304 Not Modified"
    assert again.body == b""


async def test_range_and_unsatisfiable_range(static_server: KyoukaiServer) -> None:
    response = await fetch(static_server.port, "/static/data.bin", "Range: bytes=-3")
    assert response.status_line == b"HTTP/1.1 206 Partial Content"
    assert response.header("content-range") == "bytes 253-255/256"
    assert response.body == bytes([253, 254, 255])
    response = await fetch(static_server.port, "/static/data.bin", "Range: bytes=999-")
    assert response.status_line == b"HTTP/1.1 416 Requested Range Not Satisfiable"
    assert response.header("content-range") == "bytes */256"


async def test_head_sends_no_body_and_closes_the_file(
    static_server: KyoukaiServer, gates: Any
) -> None:
    async with await RawClient.connect(static_server.port) as client:
        await client.send(b"HEAD /tracked HTTP/1.1\r\nHost: x\r\n\r\n")
        response = await client.read_response(head_request=True)
        assert response.status_line == b"HTTP/1.1 200 OK"
        await client.send(b"GET /static/app.js HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await client.read_response()).body == b"console.log('identity');\n"
    async with asyncio.timeout(IO_TIMEOUT):
        await gates["tracked-closed"].wait()


async def test_precompressed_sibling_over_the_wire(static_server: KyoukaiServer) -> None:
    response = await fetch(static_server.port, "/static/app.js", "Accept-Encoding: gzip, br")
    assert response.header("content-encoding") == "br"
    assert response.header("vary") == "Accept-Encoding"
    assert response.body == b"brotli bytes"


async def test_traversal_catalogue_over_the_wire(static_server: KyoukaiServer) -> None:
    for target in TRAVERSALS:
        response = await fetch(static_server.port, target)
        assert response.status_line == b"HTTP/1.1 404 Not Found", target
        assert b"canary" not in response.body


async def test_tutorial_static_files_served(static_server: KyoukaiServer) -> None:
    response = await fetch(static_server.port, "/tutorial/style.css")
    assert response.status_line == b"HTTP/1.1 200 OK"
    assert response.body == (EXAMPLES / "tutorial" / "static" / "style.css").read_bytes()


async def test_large_file_streams_in_order(static_server: KyoukaiServer) -> None:
    response = await fetch(static_server.port, "/static/big.bin")
    assert response.header("content-length") == str(BIG)
    assert len(response.body) == BIG and response.body.count(0) == BIG


async def test_client_leaving_mid_file_closes_it(static_server: KyoukaiServer, gates: Any) -> None:
    client = await RawClient.connect(static_server.port, rcvbuf=4096)
    await client.send(b"GET /tracked HTTP/1.1\r\nHost: x\r\n\r\n")
    status_line, _ = await client.read_head()
    assert status_line == b"HTTP/1.1 200 OK"
    async with asyncio.timeout(IO_TIMEOUT):
        await client.reader.readexactly(65536)
    client.writer.transport.abort()  # gone without reading the rest
    async with asyncio.timeout(IO_TIMEOUT):
        await gates["tracked-closed"].wait()


# -- compression and event streams ---------------------------------------------------------------


async def test_compressed_static_file_is_chunked(static_server: KyoukaiServer) -> None:
    response = await fetch(static_server.port, "/z/static/css/site.css", "Accept-Encoding: gzip")
    assert response.header("content-encoding") == "gzip"
    assert response.header("transfer-encoding") == "chunked"
    assert response.header("content-length") is None
    assert gzip.decompress(response.body) == CSS
    plain = await fetch(static_server.port, "/static/css/site.css", "Accept-Encoding: gzip")
    assert plain.header("content-encoding") is None  # outside the compressed blueprint


async def read_chunk(client: RawClient) -> bytes:
    async with asyncio.timeout(IO_TIMEOUT):
        size = int((await client.reader.readuntil(b"\r\n")).split(b";")[0], 16)
        data = await client.reader.readexactly(size)
        assert await client.reader.readexactly(2) == b"\r\n"
    return data


@pytest.mark.parametrize("coding", ["gzip", "br"])
async def test_compressed_event_stream_arrives_event_by_event(
    static_server: KyoukaiServer, gates: Any, coding: str
) -> None:
    client = await RawClient.connect(static_server.port)
    await client.send(
        f"GET /z/events HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {coding}\r\n\r\n".encode()
    )
    status_line, headers = await client.read_head()
    assert status_line == b"HTTP/1.1 200 OK"
    assert (b"Content-Encoding", coding.encode()) in headers
    decoded = (
        zlib.decompressobj(16 + zlib.MAX_WBITS).decompress
        if coding == "gzip"
        else brotli.Decompressor().process
    )
    for index in range(3):
        # The generator waits until the test has read the event: it came on its own.
        assert decoded(await read_chunk(client)) == f"id: {index}\ndata: event {index}\n\n".encode()
        gates[f"event-{index}-read"].set()
    await client.close()
    async with asyncio.timeout(IO_TIMEOUT):
        await gates["events-closed"].wait()


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl (Debian package curl)")
async def test_curl_compressed_reads_the_event_stream_event_by_event(
    static_server: KyoukaiServer, gates: Any
) -> None:
    url = f"http://127.0.0.1:{static_server.port}/z/events"
    curl = await asyncio.create_subprocess_exec(
        "curl", "--compressed", "-N", "-s", "-i", "--max-time", "30", url,
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert curl.stdout is not None
    try:
        async with asyncio.timeout(IO_TIMEOUT):
            head = (await curl.stdout.readuntil(b"\r\n\r\n")).lower()
            assert b"content-encoding: " in head and b"text/event-stream" in head
            for index in range(3):
                expected = f"id: {index}\ndata: event {index}\n\n".encode()
                assert await curl.stdout.readexactly(len(expected)) == expected
                gates[f"event-{index}-read"].set()
    finally:
        curl.kill()
        await curl.wait()
    async with asyncio.timeout(IO_TIMEOUT):
        await gates["events-closed"].wait()


# -- under ASGI -----------------------------------------------------------------------------------


async def test_static_file_under_asgi(root: Path, gates: Any) -> None:
    app = build_app(root, gates)
    exchange = await call(app, http_scope("/static/data.bin", headers=[(b"range", b"bytes=0-1")]))
    assert exchange.status == 206 and exchange.body == bytes([0, 1])
    exchange = await call(app, http_scope("/static/%2e%2e/canary.txt"))
    assert exchange.status == 404


async def test_compressed_event_stream_under_asgi_event_by_event(root: Path, gates: Any) -> None:
    app = build_app(root, gates)
    exchange = Exchange(request_messages())
    scope = http_scope("/z/events", headers=[(b"accept-encoding", b"gzip")])
    task = asyncio.create_task(app(scope, exchange.receive, exchange.send))
    decoded = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress
    async with asyncio.timeout(IO_TIMEOUT):
        for index in range(3):
            while len(exchange.bodies) <= index:
                exchange.sent_one.clear()
                await exchange.sent_one.wait()
            expected = f"id: {index}\ndata: event {index}\n\n".encode()
            assert decoded(exchange.bodies[index]["body"]) == expected
            gates[f"event-{index}-read"].set()
        assert exchange.headers[b"content-encoding"] == b"gzip"
        exchange.leave.set()  # the client goes away while the generator waits
        await gates["events-closed"].wait()
        await task
    assert not exchange.complete
