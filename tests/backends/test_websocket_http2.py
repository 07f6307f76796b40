"""WebSockets over HTTP/2 (RFC 8441) on the built-in server, with an h2 client doing extended
CONNECT and the WebSocket frames of ``websockets``' sans-I/O core (``h2ws_client``)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from h2.errors import ErrorCodes
from h2ws_client import TIMEOUT, H2WSConnection, SettingCodes

from conftest import StartServer
from kyoukai import HTTPRequestContext, Kyoukai
from kyoukai.backends._server import KyoukaiServer
from kyoukai.websocket import WebSocket
from ws_helpers import Record, build_ws_app

pytestmark = pytest.mark.timeout(30)

Open = Callable[..., Awaitable[H2WSConnection]]


def build_app(record: Record) -> Kyoukai:
    app = build_ws_app(record)

    @app.websocket("/who")
    async def who(ctx: HTTPRequestContext, ws: WebSocket) -> None:
        await ws.accept(headers={"X-Who": "kyoukai"})
        environ = ctx.request.environ
        await ws.send(f"{environ['SERVER_PROTOCOL']} {ctx.request.method} {ctx.request.path}")
        await ws.receive()

    @app.websocket("/big/<int:size>")
    async def big(ctx: HTTPRequestContext, ws: WebSocket, size: int) -> None:
        await ws.accept()
        await ws.send(b"z" * size)
        await ws.receive()

    return app


@pytest.fixture
def record() -> Record:
    return Record()


@pytest.fixture
def h2_server(start: StartServer, record: Record) -> StartServer:
    """Start a server of the WebSocket application (each stopped at the end)."""
    return functools.partial(start, app=build_app(record), http2=True)


@pytest.fixture
async def connect(h2_server: StartServer) -> AsyncIterator[Open]:
    connections: list[H2WSConnection] = []
    server: list[KyoukaiServer] = []

    async def open_connection(to: KyoukaiServer | None = None, **options: Any) -> H2WSConnection:
        """Connect to ``to``, or to a server with the default settings, started on first use."""
        if to is None:
            if not server:
                server.append(await h2_server())
            to = server[0]
        connection = await H2WSConnection.connect(to.port, **options)
        connections.append(connection)
        return connection

    try:
        yield open_connection
    finally:
        for connection in connections:
            await connection.close()


async def test_settings_advertise_extended_connect(connect: Open) -> None:
    client = await connect()
    assert client.remote_settings[SettingCodes.ENABLE_CONNECT_PROTOCOL] == 1


async def test_echo_text_and_binary_over_a_stream(connect: Open, record: Record) -> None:
    client = await connect()
    ws = await client.open("/echo")
    assert ws.status == 200
    assert ws.header("sec-websocket-accept") is None
    for message in ("hello", "h\u00e9llo \u2713", b"\x00\x01\xff", b""):
        await ws.send(message)
        assert await ws.receive() == message
    assert (await client.get("/")) == (200, b"http")  # another stream, meanwhile
    await ws.close(1000, "done")
    await ws.wait_ended()
    assert ws.reset is None
    assert ws.close_frame == (1000, "done")
    async with asyncio.timeout(TIMEOUT):
        await record.closed.wait()
    assert record.closes == [(1000, "done")]


async def test_the_handler_sees_an_http2_get(connect: Open) -> None:
    ws = await (await connect()).open("/who")
    assert ws.header("x-who") == "kyoukai"
    assert await ws.receive() == "HTTP/2 GET /who"


async def test_many_sockets_on_one_connection(connect: Open) -> None:
    client = await connect()
    sockets = [await client.open("/echo") for _ in range(5)]
    for index, ws in enumerate(sockets):
        await ws.send(f"socket {index}")
    assert [await ws.receive() for ws in sockets] == [f"socket {i}" for i in range(5)]


async def test_large_messages_cross_both_windows(connect: Open) -> None:
    # The client's receive window is small: the server must wait for it many times.
    client = await connect(settings={SettingCodes.INITIAL_WINDOW_SIZE: 16_384})
    ws = await client.open("/echo")
    message = bytes(range(256)) * 3000  # 768,000 bytes: past the server's 256 KiB window too
    await ws.send(message)
    assert await ws.receive() == message
    text = "\u2713" * 200_000
    await ws.send(text)
    assert await ws.receive() == text


async def test_the_server_waits_for_a_closed_window(connect: Open) -> None:
    client = await connect(settings={SettingCodes.INITIAL_WINDOW_SIZE: 1000}, ack=False)
    ws = await client.open("/big/100000")
    await client.wait_until(lambda: len(ws.frames.reader.buffer) >= 990)
    stream = client.conn.streams[ws.stream_id]
    assert stream._inbound_window_manager.current_window_size >= 0  # h2 checks it, too
    assert ws.messages.empty()
    client.ack = True
    client.acknowledge(ws.stream_id, 1000)
    await client.write()
    assert await ws.receive() == b"z" * 100_000


async def test_ping_and_pong(h2_server: StartServer, connect: Open) -> None:
    server = await h2_server(websocket_ping_interval=0.2)
    client = await connect(server)
    ws = await client.open("/echo")
    await ws.ping(b"are you there")
    async with asyncio.timeout(TIMEOUT):
        assert await ws.pongs.get() == b"are you there"
    await client.wait_until(lambda: ws.pings == [b"kyoukai"])  # the server's keep-alive
    await ws.send("still open")
    assert await ws.receive() == "still open"


async def test_a_peer_that_does_not_answer_pings_is_closed_with_1011(
    h2_server: StartServer, record: Record, connect: Open
) -> None:
    server = await h2_server(websocket_ping_interval=0.1, websocket_ping_timeout=0.2)
    client = await connect(server)
    ws = await client.open("/echo")
    ws.auto_answer = False
    await ws.wait_ended()
    assert ws.close_frame == (1011, "keepalive ping timeout")
    async with asyncio.timeout(TIMEOUT):
        await record.closed.wait()
    assert record.closes == [(1011, "keepalive ping timeout")]


@pytest.mark.parametrize("code", [1000, 4002])
async def test_the_server_closes_with_its_code(connect: Open, code: int) -> None:
    client = await connect()
    ws = await client.open(f"/close/{code}")
    await ws.wait_ended()
    assert ws.close_frame == (code, "server says bye")
    assert ws.reset is None  # ended with END_STREAM, not reset


async def test_a_handler_error_closes_with_1011(connect: Open) -> None:
    ws = await (await connect()).open("/boom")
    await ws.send("trigger")
    await ws.wait_ended()
    assert ws.close_frame == (1011, "internal error")


async def test_subprotocol_selection(connect: Open) -> None:
    client = await connect()
    ws = await client.open("/proto", subprotocols=["x", "chat.v1"])
    assert ws.header("sec-websocket-protocol") == "chat.v1"
    assert await ws.receive() == "x,chat.v1"
    plain = await client.open("/proto")
    assert plain.header("sec-websocket-protocol") is None


async def test_permessage_deflate(connect: Open) -> None:
    ws = await (await connect()).open("/echo", deflate=True)
    assert (ws.header("sec-websocket-extensions") or "").startswith("permessage-deflate")
    message = "compress me " * 1000
    await ws.send(message)
    assert await ws.receive() == message


async def test_a_message_over_the_limit_closes_with_1009(
    h2_server: StartServer, connect: Open
) -> None:
    server = await h2_server(websocket_max_message_size=1000)
    client = await connect(server)
    ws = await client.open("/echo")
    await ws.send(b"x" * 1001)
    await ws.wait_ended()
    assert ws.close_frame is not None and ws.close_frame[0] == 1009


@pytest.mark.parametrize(
    ("options", "status"),
    [
        ({"path": "/private"}, 403),  # a hook refuses
        ({"path": "/private", "headers": [("authorization", "Bearer yes")]}, 200),
        ({"path": "/nowhere"}, 404),
        ({"path": "/"}, 404),  # HTTP routes do not answer handshakes
        ({"path": "/echo", "version": "8"}, 426),
        ({"path": "/echo", "version": None}, 426),
        ({"path": "/echo", "protocol": "connect-udp"}, 501),
        ({"protocol": None}, 501),  # a plain CONNECT: this server is no proxy
    ],
)
async def test_handshake_statuses(connect: Open, options: dict[str, Any], status: int) -> None:
    client = await connect()
    ws = await client.open(**options)
    assert ws.status == status
    if status == 200:
        assert await ws.receive() == "secret"
        return
    assert ws.reset == ErrorCodes.NO_ERROR  # the response, then the request stream's end
    if status == 426:
        assert ws.header("sec-websocket-version") == "13"
    assert (await client.get("/")) == (200, b"http")  # the connection carries on


async def test_a_plain_get_to_a_websocket_route_gets_426(connect: Open) -> None:
    assert (await (await connect()).get("/echo"))[0] == 426


async def test_client_reset_reaches_the_handler(
    h2_server: StartServer, record: Record, connect: Open
) -> None:
    server = await h2_server()
    client = await connect(server)
    ws = await client.open("/echo")
    await ws.send("one")
    assert await ws.receive() == "one"
    await ws.reset_stream()
    async with asyncio.timeout(TIMEOUT):
        await record.closed.wait()
    assert record.closes == [(1006, "")]
    assert server._state.websockets == 0
    assert (await client.get("/")) == (200, b"http")


async def test_connection_loss_reaches_the_handler(h2_server: StartServer, record: Record) -> None:
    server = await h2_server()
    client = await H2WSConnection.connect(server.port)
    ws = await client.open("/echo")
    await ws.send("one")
    assert await ws.receive() == "one"
    await client.close()
    async with asyncio.timeout(TIMEOUT):
        await record.closed.wait()
    assert record.closes == [(1006, "")]
    assert server._state.websockets == 0


async def test_a_slow_handler_withholds_only_the_streams_window(
    connect: Open, record: Record
) -> None:
    client = await connect()
    ws = await client.open("/slow")
    # 800,000 bytes: more than the stream's 256 KiB window.
    sending = asyncio.gather(*(ws.send(b"m" * 20_000) for _ in range(40)))
    conn = client.conn
    await client.wait_until(lambda: conn.streams[ws.stream_id].outbound_flow_control_window <= 0)
    assert not sending.done()
    # The connection's window came back: other streams are served meanwhile.
    assert conn.outbound_flow_control_window > 512 * 1024
    assert (await client.get("/")) == (200, b"http")
    record.gate.set()
    async with asyncio.timeout(TIMEOUT):
        await sending
    await ws.close()
    async with asyncio.timeout(TIMEOUT):
        await record.closed.wait()
    # Held: websocket_max_queue messages, and what the stream's window let in after them;
    # the rest waited in the client.
    assert 16 <= record.queued[0] <= 16 + 256 * 1024 // 20_000 + 1
    assert record.queued[1] == 40


async def test_a_client_that_never_opens_its_window_is_reset(
    h2_server: StartServer, connect: Open
) -> None:
    server = await h2_server(write_timeout=0.3)
    client = await connect(server, settings={SettingCodes.INITIAL_WINDOW_SIZE: 100}, ack=False)
    ws = await client.open("/big/10000")
    await ws.wait_ended()
    assert ws.reset == ErrorCodes.CANCEL
    assert server._state.websockets == 0


async def test_shutdown_closes_sockets_with_1001(
    h2_server: StartServer, record: Record, connect: Open
) -> None:
    server = await h2_server()
    client = await connect(server)
    ws = await client.open("/echo")
    await ws.send("before")
    assert await ws.receive() == "before"
    async with asyncio.timeout(TIMEOUT):
        await server.stop(grace=0.1)
    await ws.wait_ended()
    assert ws.close_frame == (1001, "server shutting down")
    assert record.closes == [(1001, "server shutting down")]
