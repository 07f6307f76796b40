"""WebSockets on the built-in HTTP/1.1 server, with the ``websockets`` client and raw frames."""

from __future__ import annotations

import asyncio
import functools
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from conftest import StartServer
from helpers import IO_TIMEOUT, RawClient
from kyoukai.backends._flow import FlowControl
from kyoukai.backends._server import KyoukaiServer
from ws_helpers import (
    HANDSHAKE,
    Record,
    build_ws_app,
    frame,
    raw_websocket,
    read_close,
    read_frame,
)

pytestmark = pytest.mark.timeout(20)

Connect = Callable[..., Awaitable[ClientConnection]]


@pytest.fixture
def record() -> Record:
    return Record()


@pytest.fixture
def ws_server(start: StartServer, record: Record) -> StartServer:
    """Start a server of the WebSocket application (each stopped at the end)."""
    return functools.partial(start, app=build_ws_app(record))


@pytest.fixture
async def port(ws_server: Callable[..., Awaitable[KyoukaiServer]]) -> int:
    return (await ws_server()).port


@pytest.fixture
async def client(port: int) -> AsyncIterator[Connect]:
    opened: list[ClientConnection] = []

    async def open_client(path: str = "/echo", **kwargs: Any) -> ClientConnection:
        async with asyncio.timeout(IO_TIMEOUT):
            ws = await connect(f"ws://127.0.0.1:{port}{path}", **kwargs)
        opened.append(ws)
        return ws

    try:
        yield open_client
    finally:
        for ws in opened:
            async with asyncio.timeout(IO_TIMEOUT):
                await ws.close()


async def echo(ws: ClientConnection, message: str | bytes | list[str]) -> str | bytes:
    async with asyncio.timeout(IO_TIMEOUT):
        await ws.send(message)
        return await ws.recv()


async def test_text_binary_and_fragmented_messages_echo(client: Connect) -> None:
    ws = await client(compression=None)
    assert await echo(ws, "héllo") == "héllo"
    assert await echo(ws, b"\x00\x01\xff") == b"\x00\x01\xff"
    assert await echo(ws, ["frag", "men", "ted"]) == "fragmented"
    big = bytes(range(256)) * 2048  # 512 KiB, within the 1 MiB limit
    assert await echo(ws, big) == big


async def test_permessage_deflate_is_negotiated(client: Connect) -> None:
    ws = await client()  # the client offers permessage-deflate by default
    assert [type(ext).__name__ for ext in ws.protocol.extensions] == ["PerMessageDeflate"]
    text = "compressible " * 10_000
    assert await echo(ws, text) == text


async def test_compressed_message_over_the_limit_closes_with_1009(client: Connect) -> None:
    ws = await client()
    async with asyncio.timeout(IO_TIMEOUT):
        await ws.send(b"\x00" * (8 * 1024 * 1024))  # a few KiB compressed, 8 MiB inflated
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    assert await echo(await client(), "still serving") == "still serving"


async def test_message_over_the_limit_closes_with_1009(client: Connect) -> None:
    ws = await client(compression=None, max_size=None)
    async with asyncio.timeout(IO_TIMEOUT):
        await ws.send(b"x" * (1024 * 1024 + 1))
        with pytest.raises(ConnectionClosed) as info:
            await ws.recv()
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009


async def test_client_ping_gets_a_pong(client: Connect) -> None:
    ws = await client()
    async with asyncio.timeout(IO_TIMEOUT):
        latency = await (await ws.ping(b"are you there"))
    assert latency >= 0


async def test_subprotocol_is_chosen_by_the_handler(client: Connect) -> None:
    ws = await client("/proto", subprotocols=["chat.v2", "chat.v1"])
    assert ws.subprotocol == "chat.v1"
    async with asyncio.timeout(IO_TIMEOUT):
        assert await ws.recv() == "chat.v2,chat.v1"


async def test_client_close_code_reaches_the_handler(client: Connect, record: Record) -> None:
    ws = await client()
    async with asyncio.timeout(IO_TIMEOUT):
        await ws.close(4000, "client says bye")
        await record.closed.wait()
    assert record.closes == [(4000, "client says bye")]


@pytest.mark.parametrize("code", [1000, 1008, 4001])
async def test_server_close_code_reaches_the_client(client: Connect, code: int) -> None:
    ws = await client(f"/close/{code}")
    async with asyncio.timeout(IO_TIMEOUT):
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert (ws.close_code, ws.close_reason) == (code, "server says bye")


async def test_handler_error_closes_with_1011(client: Connect, caplog: Any) -> None:
    ws = await client("/boom")
    async with asyncio.timeout(IO_TIMEOUT):
        await ws.send("trigger")
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert ws.close_code == 1011
    assert len([r for r in caplog.records if r.exc_info]) == 1


async def test_hook_refuses_the_handshake_with_403(client: Connect) -> None:
    with pytest.raises(InvalidStatus) as info:
        await client("/private")
    assert info.value.response.status_code == 403
    ws = await client("/private", additional_headers={"Authorization": "Bearer yes"})
    async with asyncio.timeout(IO_TIMEOUT):
        assert await ws.recv() == "secret"


@pytest.mark.parametrize(("path", "status"), [("/nowhere", 404), ("/", 404)])
async def test_handshake_to_no_websocket_route_is_refused(
    client: Connect, path: str, status: int
) -> None:
    with pytest.raises(InvalidStatus) as info:
        await client(path)
    assert info.value.response.status_code == status


async def test_plain_http_to_a_websocket_route_is_426(port: int) -> None:
    async with await RawClient.connect(port) as client:
        await client.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
        response = await client.read_response()
    assert response.status_line == b"HTTP/1.1 426 Upgrade Required"
    assert response.header("upgrade") == "websocket"


async def test_handshake_pipelined_behind_a_request_is_answered_as_http(port: int) -> None:
    async with await RawClient.connect(port) as client:
        await client.send(
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + HANDSHAKE.format(path="/echo").encode()
        )
        assert (await client.read_response()).body == b"http"
        assert (await client.read_response()).status_line == b"HTTP/1.1 426 Upgrade Required"


async def test_refused_handshake_closes_the_connection(port: int) -> None:
    async with await RawClient.connect(port) as client:
        await client.send(HANDSHAKE.format(path="/private").encode())
        response = await client.read_response()
        assert response.status_line.startswith(b"HTTP/1.1 403")
        await client.assert_closed()


@pytest.mark.parametrize(
    ("data", "code"),
    [
        pytest.param(frame(0x1, b"unmasked", mask=False), 1002, id="unmasked"),
        pytest.param(frame(0x1, b"\xff\xfe invalid utf-8"), 1007, id="bad-utf8"),
        pytest.param(
            frame(0x1, b"\xf0\x9f", fin=False) + frame(0x0, b"\x98"), 1007, id="split-bad-utf8"
        ),
        pytest.param(frame(0x9, b"p" * 126), 1002, id="long-ping"),
        pytest.param(frame(0x9, b"ping", fin=False), 1002, id="fragmented-ping"),
        pytest.param(frame(0x8, struct.pack("!H", 1005)), 1002, id="close-1005"),
        pytest.param(frame(0x8, struct.pack("!H", 999)), 1002, id="close-999"),
        pytest.param(frame(0x8, b"\x03"), 1002, id="close-one-byte"),
        pytest.param(frame(0x1, b"x", rsv=4), 1002, id="reserved-bit"),
        pytest.param(frame(0x3, b"x"), 1002, id="reserved-opcode"),
        pytest.param(frame(0x0, b"x"), 1002, id="stray-continuation"),
        pytest.param(
            frame(0x1, b"a", fin=False) + frame(0x1, b"b"), 1002, id="interleaved-message"
        ),
    ],
)
async def test_protocol_violation_closes_with_the_rfc_code(
    port: int, client: Connect, data: bytes, code: int
) -> None:
    async with await raw_websocket(port) as raw:
        await raw.send(data)
        assert await read_close(raw) == code
    assert await echo(await client(), "fine") == "fine"


async def test_frames_split_across_reads_and_mixed_with_control_frames(port: int) -> None:
    data = frame(0x1, b"one") + frame(0x9, b"ping") + frame(0x2, b"two" * 50, fin=False)
    data += frame(0x0, b"!") + frame(0x1, b"three")
    async with await raw_websocket(port) as raw:
        for index in range(len(data)):  # one byte per write
            await raw.send(data[index : index + 1])
        received = [await read_frame(raw) for _ in range(4)]
    received.remove((0xA, b"ping"))  # the pong goes out as soon as the ping is read
    assert received == [(0x1, b"one"), (0x2, b"two" * 50 + b"!"), (0x1, b"three")]


async def test_large_frames_cut_across_writes_with_control_frames_between_fragments(
    port: int,
) -> None:
    big = frame(0x2, b"B" * 200_000)  # a 14-byte header
    fragments = [frame(0x2, b"f" * 70_000, fin=False), frame(0x9, b"ping")]
    fragments += [frame(0x0, b"g" * 70_000, fin=False), frame(0xA, b"pong")]
    fragments += [frame(0x0, b"h" * 10)]
    async with await raw_websocket(port) as raw:
        for cut in (1, 2, 9, 13, 14, 15, 100_000, len(big) - 1):
            await raw.send(big[:cut])
            await raw.send(big[cut:])
        for piece in fragments:
            await raw.send(piece[:5])
            await raw.send(piece[5:])
        await raw.send(big[:7] + big[7:] + big[:20])
        await raw.send(big[20:])
        received = [await read_frame(raw) for _ in range(12)]
    received.remove((0xA, b"ping"))
    assert received[:8] == [(0x2, b"B" * 200_000)] * 8
    assert received[8] == (0x2, b"f" * 70_000 + b"g" * 70_000 + b"h" * 10)
    assert received[9:] == [(0x2, b"B" * 200_000)] * 2


async def test_frame_over_the_limit_is_refused_before_its_payload_arrives(port: int) -> None:
    oversized = frame(0x2, b"x" * (2 * 1024 * 1024))
    async with await raw_websocket(port) as raw:
        await raw.send(oversized[:9])
        await raw.send(oversized[9:100_000])  # the rest never comes
        assert await read_close(raw) == 1009


async def test_dead_peer_is_closed_with_1011(
    ws_server: Callable[..., Awaitable[KyoukaiServer]],
) -> None:
    server = await ws_server(websocket_ping_interval=0.05, websocket_ping_timeout=0.05)
    async with await raw_websocket(server.port) as raw:  # never answers the pings
        assert await read_close(raw) == 1011


async def test_pings_keep_a_live_peer_open(
    ws_server: Callable[..., Awaitable[KyoukaiServer]],
) -> None:
    server = await ws_server(websocket_ping_interval=0.05, websocket_ping_timeout=0.05)
    async with await raw_websocket(server.port) as raw:
        for _ in range(3):  # each ping answered in time: well past one ping timeout in all
            opcode, payload = await read_frame(raw)
            assert opcode == 0x9
            await raw.send(frame(0xA, payload))
        await raw.send(frame(0x1, b"alive"))
        while (opcode_payload := await read_frame(raw))[0] == 0x9:
            await raw.send(frame(0xA, opcode_payload[1]))
    assert opcode_payload == (0x1, b"alive")


async def test_slow_consumer_stops_the_server_reading(
    ws_server: Callable[..., Awaitable[KyoukaiServer]],
    record: Record,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    paused = asyncio.Event()
    original = FlowControl.pause_reading

    def pause_reading(self: FlowControl) -> None:
        paused.set()
        original(self)

    monkeypatch.setattr(FlowControl, "pause_reading", pause_reading)
    server = await ws_server(websocket_max_queue=4)
    message = b"m" * 65536
    async with connect(f"ws://127.0.0.1:{server.port}/slow", compression=None) as ws:

        async def flood() -> None:
            for _ in range(200):  # 12.5 MiB, far more than the socket buffers hold
                await ws.send(message)
            await ws.close()

        sender = asyncio.ensure_future(flood())
        async with asyncio.timeout(IO_TIMEOUT):
            await paused.wait()
        paused.clear()
        assert not sender.done()
        record.gate.set()
        async with asyncio.timeout(IO_TIMEOUT):
            await sender
            await record.closed.wait()
    queued, received = record.queued
    assert queued <= 4 + 4  # the queue bound, plus what one read of the socket can hold
    assert received == 200


async def test_graceful_shutdown_closes_websockets_with_1001(
    ws_server: Callable[..., Awaitable[KyoukaiServer]], record: Record
) -> None:
    server = await ws_server()
    async with connect(f"ws://127.0.0.1:{server.port}/echo") as ws:
        assert await echo(ws, "before") == "before"
        stopping = asyncio.ensure_future(server.stop(grace=0.1))
        async with asyncio.timeout(IO_TIMEOUT):
            with pytest.raises(ConnectionClosed):
                await ws.recv()
            await stopping
    assert ws.close_code == 1001
    assert record.closes == [(1001, "server shutting down")]


async def test_websocket_cap_refuses_with_503(
    ws_server: Callable[..., Awaitable[KyoukaiServer]],
) -> None:
    server = await ws_server(max_websockets=1)
    async with connect(f"ws://127.0.0.1:{server.port}/echo") as first:
        with pytest.raises(InvalidStatus) as info:
            await connect(f"ws://127.0.0.1:{server.port}/echo")
        assert info.value.response.status_code == 503
        assert await echo(first, "kept") == "kept"


async def test_http_requests_still_work_next_to_websockets(port: int, client: Connect) -> None:
    ws = await client()
    async with await RawClient.connect(port) as raw:
        await raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await raw.read_response()).body == b"http"
    assert await echo(ws, "both") == "both"


def test_deflate_bomb_fixture_is_small() -> None:
    # The 8 MiB message of the 1009 test travels as a few KiB.
    assert len(zlib.compress(b"\x00" * (8 * 1024 * 1024))) < 16 * 1024
