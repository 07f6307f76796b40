"""Request bodies on the built-in server: limits from the blueprint tree, ``100 Continue`` only
once the application reads, back-pressure on a handler that reads slowly, and what becomes of
a body the handler did not read."""

from __future__ import annotations

import asyncio
import gzip
from typing import Any

import pytest

from helpers import IO_TIMEOUT, SIMPLE_GET, RawClient
from kyoukai import HTTPRequestContext, Kyoukai
from kyoukai.backends._inbound import BodyStream
from kyoukai.backends._server import KyoukaiServer
from kyoukai.backends.httptools_ import KyoukaiProtocol
from uploads import KiB, MiB, build_upload_app, head, response_to

TOO_LARGE = b"HTTP/1.1 413 Request Entity Too Large"
EXPECT = "Expect: 100-continue"


@pytest.fixture
def seen() -> list[str]:
    """The handlers that ran."""
    return []


@pytest.fixture
def upload_app(seen: list[str]) -> Kyoukai:
    app = build_upload_app(seen)
    held: dict[str, Any] = {}
    app.held = held  # type: ignore[attr-defined]

    @app.route("/slow", methods=["POST"], stream_body=True, max_body_size=64 * MiB)
    async def slow(ctx: HTTPRequestContext) -> str:
        held["stream"] = ctx.request.environ["kyoukai.body"]
        size = len(await ctx.request.read_async(to_end=False))
        await held["go"].wait()
        async for chunk in ctx.request.iter_body():
            size += len(chunk)
        return f"{size} bytes"

    @app.route("/sync-first", methods=["POST"], stream_body=True)
    async def sync_first(ctx: HTTPRequestContext) -> str:
        try:
            ctx.request.get_data()
        except RuntimeError as exc:
            return str(exc)
        return "read"

    @app.route("/loaded", methods=["POST"], stream_body=True)
    async def loaded(ctx: HTTPRequestContext) -> str:
        whole = await ctx.request.read_async()
        return f"{len(whole)} {ctx.request.form['a']} {ctx.request.content_length}"

    @app.route("/pieces", methods=["POST"], stream_body=True)
    async def pieces(ctx: HTTPRequestContext) -> str:
        sizes = []
        while piece := await ctx.request.read_async(to_end=False):
            sizes.append(len(piece))
        return f"{sum(sizes)} {await ctx.request.read_async(to_end=False)!r}"

    return app


@pytest.fixture
async def upload_server(start, upload_app: Kyoukai) -> KyoukaiServer:
    return await start(app=upload_app)


async def expect_answer(port: int, request: bytes) -> tuple[bytes, bytes]:
    """Send a head that expects 100 Continue; return the first status line and the body."""
    async with await RawClient.connect(port) as client:
        response = await response_to(client, request)
        assert response.header("connection") == "close"  # the body is never read
        await client.assert_closed()
    return response.status_line, response.body


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/nowhere", b"HTTP/1.1 404 Not Found"),
        ("/only-get", b"HTTP/1.1 405 Method Not Allowed"),
        ("/small", TOO_LARGE),
        ("/private/upload", b"HTTP/1.1 401 Unauthorized"),
    ],
)
async def test_expect_gets_final_answer_without_100(
    upload_server: KyoukaiServer, seen: list[str], path: str, status: bytes
) -> None:
    request = head(path, f"Content-Length: {8 * MiB}", EXPECT)  # under the server's 16 MiB
    assert (await expect_answer(upload_server.port, request))[0] == status
    assert seen == []


async def test_expect_gets_100_once_hooks_pass(
    upload_server: KyoukaiServer, seen: list[str]
) -> None:
    request = head("/private/upload", "Content-Length: 5", EXPECT, "Authorization: Bearer ok")
    async with await RawClient.connect(upload_server.port) as client:
        await client.send(request)
        interim, _ = await client.read_head()
        assert interim == b"HTTP/1.1 100 Continue"
        response = await response_to(client, b"hello")
        assert response.body == b"5 bytes"
        assert (await response_to(client, SIMPLE_GET)).status_line == b"HTTP/1.1 404 Not Found"
    assert seen == ["private"]


async def test_declared_length_over_route_limit_gets_413_and_close(
    upload_server: KyoukaiServer, seen: list[str]
) -> None:
    async with await RawClient.connect(upload_server.port) as client:
        response = await response_to(client, head("/small", f"Content-Length: {MiB + 1}"))
        await client.send(b"x" * 64 * KiB)  # a client that does not wait: discarded
        await client.assert_closed()
    assert response.status_line == TOO_LARGE
    assert seen == []


@pytest.mark.parametrize(
    ("path", "size", "answer"),
    [
        ("/tight/inherits", KiB, b"1024 bytes"),  # the blueprint's 1 KiB, not the app's 1 MiB
        ("/tight/inherits", KiB + 1, b"too large for tight"),
        ("/tight/own", 8 * KiB, b"8192 bytes"),  # the route's own 8 KiB, not its blueprint's
        ("/tight/own", 8 * KiB + 1, b"too large for tight"),
        ("/small", MiB, b"1048576 bytes"),  # the application's 1 MiB, not the server's 16 MiB
    ],
)
async def test_nearest_limit_in_the_tree_wins(
    upload_server: KyoukaiServer, path: str, size: int, answer: bytes
) -> None:
    request = head(path, f"Content-Length: {size}") + b"x" * size
    async with await RawClient.connect(upload_server.port) as client:
        assert (await response_to(client, request)).body == answer


async def test_chunked_body_over_route_limit_gets_blueprint_413(
    upload_server: KyoukaiServer,
) -> None:
    chunks = (b"200\r\n" + b"x" * 512 + b"\r\n") * 3 + b"0\r\n\r\n"
    request = head("/tight/stream", "Transfer-Encoding: chunked")
    async with await RawClient.connect(upload_server.port) as client:
        # Read whole with its head: refused after routing; the body is read, the connection kept.
        response = await response_to(client, request + chunks)
        assert (response.status_line, response.body) == (TOO_LARGE, b"too large for tight")
        assert (await response_to(client, SIMPLE_GET)).status_line == b"HTTP/1.1 404 Not Found"
    async with await RawClient.connect(upload_server.port) as client:
        # Streamed to the handler: stopped as it passes the limit, and the connection closed.
        await client.send(request.replace(b"\r\n\r\n", f"\r\n{EXPECT}\r\n\r\n".encode()))
        assert (await client.read_head())[0] == b"HTTP/1.1 100 Continue"
        response = await response_to(client, chunks)
        await client.assert_closed()
    assert (response.status_line, response.body) == (TOO_LARGE, b"too large for tight")


@pytest.mark.parametrize(("size", "answer"), [(KiB, b"1024 bytes"), (64 * KiB, None)])
async def test_decoded_body_is_held_to_route_limit(
    upload_server: KyoukaiServer, size: int, answer: bytes | None
) -> None:
    data = gzip.compress(bytes(size))
    request = head("/tight/stream", "Content-Encoding: gzip", f"Content-Length: {len(data)}")
    async with await RawClient.connect(upload_server.port) as client:
        response = await response_to(client, request + data)
    assert len(data) < KiB
    assert response.body == (answer or b"too large for tight")


async def test_server_bound_caps_route_limit(start, upload_app: Kyoukai, seen: list[str]) -> None:
    server = await start(app=upload_app, max_body_size=64 * KiB)
    request = head("/hash", f"Content-Length: {64 * KiB + 1}")  # the route takes 2 GiB
    async with await RawClient.connect(server.port) as client:
        response = await response_to(client, request)
    assert response.body == b"413 Request Entity Too Large: body too large\n"  # before routing
    assert seen == []


async def test_slow_handler_stops_the_server_reading(
    start, upload_app: Kyoukai, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = upload_app.held  # type: ignore[attr-defined]
    held["go"] = asyncio.Event()
    paused = asyncio.Event()
    flow = KyoukaiProtocol.body_flow

    def body_flow(self: KyoukaiProtocol, stream: BodyStream, pause: bool) -> None:
        flow(self, stream, pause)
        if pause:
            paused.set()

    monkeypatch.setattr(KyoukaiProtocol, "body_flow", body_flow)
    server = await start(app=upload_app, body_buffer_size=64 * KiB, max_body_size=64 * MiB)
    size = 32 * MiB
    async with await RawClient.connect(server.port) as client:
        client.writer.write(head("/slow", f"Content-Length: {size}"))
        sending = asyncio.ensure_future(client.writer.drain())
        for _ in range(size // MiB):
            client.writer.write(bytes(MiB))  # buffered in the client: the server reads slowly
        async with asyncio.timeout(IO_TIMEOUT):
            await paused.wait()
        stream: BodyStream = held["stream"]
        # The server holds its buffer and one read at most; the rest waits in the client.
        assert stream.received < 64 * KiB + 512 * KiB
        assert not sending.done()
        held["go"].set()
        async with asyncio.timeout(IO_TIMEOUT * 4):
            await sending
            response = await client.read_response()
    assert response.body == b"%d bytes" % size


async def test_unread_body_is_drained_and_connection_kept(upload_server: KyoukaiServer) -> None:
    request = head("/only-get", "Content-Length: 5") + b"hello"
    async with await RawClient.connect(upload_server.port) as client:
        assert (await response_to(client, request)).status_line.startswith(b"HTTP/1.1 405")
        response = await response_to(client, b"GET /only-get HTTP/1.1\r\nHost: x\r\n\r\n")
    assert response.body == b"get"


async def test_sync_api_on_streaming_route_says_how_to_load(upload_server: KyoukaiServer) -> None:
    async with await RawClient.connect(upload_server.port) as client:
        response = await response_to(client, head("/sync-first", "Content-Length: 2") + b"ab")
    assert b"await ctx.request.read_async()" in response.body


async def test_read_async_loads_body_for_sync_api(upload_server: KyoukaiServer) -> None:
    request = head(
        "/loaded", "Content-Type: application/x-www-form-urlencoded", "Transfer-Encoding: chunked"
    )
    async with await RawClient.connect(upload_server.port) as client:
        response = await response_to(client, request + b"3\r\na=b\r\n0\r\n\r\n")
    assert response.body == b"3 b 3"


async def test_read_async_gives_pieces_then_empty(upload_server: KyoukaiServer) -> None:
    async with await RawClient.connect(upload_server.port) as client:
        await client.send(head("/pieces", "Content-Length: 6") + b"abc")
        response = await response_to(client, b"def")
    assert response.body == b"6 b''"
