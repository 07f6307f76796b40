"""Connections over time: back-pressure, disconnects, many clients, shutdown, signals."""

from __future__ import annotations

import asyncio
import gc
import logging
import socket
import struct
import weakref

import pytest
from asphalt.core import Context

from helpers import SIMPLE_GET, RawClient
from kyoukai.backends._server import KyoukaiServer
from kyoukai.backends._settings import ServerSettings
from kyoukai.backends.httptools_ import KyoukaiProtocol


def only_connection(server: KyoukaiServer) -> KyoukaiProtocol:
    (protocol,) = server._state.connections  # type: ignore[attr-defined]
    assert isinstance(protocol, KyoukaiProtocol)
    return protocol


async def test_slow_reader_keeps_server_buffer_bounded(start, server_app, gates) -> None:
    paused = asyncio.Event()
    connected: asyncio.Future[KyoukaiProtocol] = asyncio.get_running_loop().create_future()
    server_app.connection_made.connect(lambda event: connected.set_result(event.protocol))
    server = await start()
    async with await RawClient.connect(server.port, rcvbuf=32768) as client:
        async with asyncio.timeout(5):
            protocol = await connected
        pause_writing = protocol.pause_writing

        def observed_pause() -> None:
            pause_writing()
            paused.set()

        protocol.pause_writing = observed_pause  # type: ignore[method-assign]
        await client.send(b"GET /big-stream/200 HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(5):
            await paused.wait()
        produced = gates.produced
        # The generator is not pulled while the client does not read: far fewer than 200
        # chunks of 64 KiB are out, and the server holds at most one chunk over its mark.
        assert len(produced) < 100
        assert max(produced) <= 64 * 1024 + 65536 + 4096
        response = await client.read_response()
    assert len(response.body) == 200 * 65536
    assert max(gates.produced) <= 64 * 1024 + 65536 + 4096


async def test_client_disconnect_mid_response_is_quiet(
    server: KyoukaiServer, gates, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kyoukai")
    client = await RawClient.connect(server.port, rcvbuf=16384)
    await client.send(b"GET /big-stream/1000 HTTP/1.1\r\nHost: x\r\n\r\n")
    await client.read_head()
    # An abortive close (RST) while the server is still streaming.
    sock = client.writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.writer.transport.abort()
    async with asyncio.timeout(5):
        await gates["big-stream-closed"].wait()
    async with await RawClient.connect(server.port) as other:
        await other.send(SIMPLE_GET)
        assert (await other.read_response()).body == b"hello"
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]
    assert server.connections <= 1  # the other client may not be reaped yet


async def test_client_disconnect_cancels_running_handler(server: KyoukaiServer, gates) -> None:
    client = await RawClient.connect(server.port)
    await client.send(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
    async with asyncio.timeout(5):
        await gates["forever-started"].wait()
    await client.close()
    async with asyncio.timeout(5):
        await gates["forever-ended"].wait()


async def test_half_close_after_response_closes_connection(server: KyoukaiServer) -> None:
    async with await RawClient.connect(server.port) as client:
        await client.send(SIMPLE_GET)
        assert (await client.read_response()).body == b"hello"
        client.writer.write_eof()
        await client.assert_closed()


async def test_disconnect_mid_request_body_is_quiet(
    server: KyoukaiServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kyoukai")
    client = await RawClient.connect(server.port)
    await client.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
    await client.close()
    async with await RawClient.connect(server.port) as other:
        await other.send(SIMPLE_GET)
        assert (await other.read_response()).body == b"hello"
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]


async def test_broken_stream_aborts_connection(server: KyoukaiServer) -> None:
    async with await RawClient.connect(server.port) as client:
        await client.send(b"GET /broken-stream HTTP/1.1\r\nHost: x\r\n\r\n")
        status_line, _ = await client.read_head()
        assert status_line == b"HTTP/1.1 200 OK"
        # The body cannot complete: the chunked stream never gets its last chunk.
        try:
            data = await client.read_until_closed()
        except ConnectionResetError:
            data = b""
        assert not data.endswith(b"0\r\n\r\n")
    async with await RawClient.connect(server.port) as other:
        await other.send(SIMPLE_GET)
        assert (await other.read_response()).body == b"hello"


async def test_500_concurrent_connections_are_all_served(server: KyoukaiServer) -> None:
    async def one() -> bytes:
        async with await RawClient.connect(server.port) as client:
            await client.send(SIMPLE_GET)
            return (await client.read_response()).body

    async with asyncio.timeout(30):
        bodies = await asyncio.gather(*(one() for _ in range(500)))
    assert bodies == [b"hello"] * 500


async def test_write_stall_drops_connection(start, gates) -> None:
    server = await start(write_timeout=0.3)
    async with await RawClient.connect(server.port, rcvbuf=16384) as client:
        await client.send(b"GET /big-stream/1000 HTTP/1.1\r\nHost: x\r\n\r\n")
        # Never read: the server must give up on its own and close the generator.
        async with asyncio.timeout(5):
            await gates["big-stream-closed"].wait()
    assert len(gates.produced) < 1000


async def test_graceful_shutdown_finishes_in_flight_request(start, gates) -> None:
    server = await start()
    async with await RawClient.connect(server.port) as busy:
        async with await RawClient.connect(server.port) as idle:
            await idle.send(SIMPLE_GET)
            assert (await idle.read_response()).body == b"hello"
            await busy.send(b"GET /wait/s HTTP/1.1\r\nHost: x\r\n\r\n")
            async with asyncio.timeout(5):
                await gates["s-started"].wait()
            stopping = asyncio.create_task(server.stop(grace=5))
            await idle.assert_closed()  # idle keep-alive connections close at once
            with pytest.raises(OSError):
                await RawClient.connect(server.port)  # no longer accepting
            assert not stopping.done()
            gates["s"].set()
            response = await busy.read_response()
            assert response.body == b"waited s"
            assert response.header("connection") == "close"
            await busy.assert_closed()
            async with asyncio.timeout(5):
                await stopping


async def test_shutdown_grace_expiry_cancels_handler(start, gates) -> None:
    server = await start()
    async with await RawClient.connect(server.port) as client:
        await client.send(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(5):
            await gates["forever-started"].wait()
            await server.stop(grace=0.1)
            await gates["forever-ended"].wait()
        await client.assert_closed()


async def test_connection_signals_dispatch_to_listeners(start, server_app) -> None:
    made: list[object] = []
    lost = asyncio.Event()
    server_app.connection_made.connect(lambda event: made.append(event.protocol))
    server_app.connection_lost.connect(lambda event: lost.set())
    server = await start()
    async with await RawClient.connect(server.port) as client:
        await client.send(SIMPLE_GET)
        await client.read_response()
    async with asyncio.timeout(5):
        await lost.wait()
    assert len(made) == 1
    assert isinstance(made[0], KyoukaiProtocol)


async def test_base_context_is_parent_of_request_contexts(start, server_app) -> None:
    base = Context()
    seen: list[object] = []

    @server_app.route("/parent")
    async def parent(ctx) -> str:
        seen.append(ctx.parent)
        return "ok"

    server = await start(base_context=base)
    async with await RawClient.connect(server.port) as client:
        await client.send(b"GET /parent HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await client.read_response()).body == b"ok"
    assert seen == [base]


async def test_disconnected_connection_leaves_nothing_behind(start, server_app, gates) -> None:
    refs: list[weakref.ref[KyoukaiProtocol]] = []
    lost = asyncio.Event()
    server_app.connection_made.connect(lambda event: refs.append(weakref.ref(event.protocol)))
    server_app.connection_lost.connect(lambda event: lost.set())
    server = await start()
    client = await RawClient.connect(server.port, rcvbuf=16384)
    await client.send(b"GET /big-stream/1000 HTTP/1.1\r\nHost: x\r\n\r\n")
    await client.read_head()
    protocol = refs[0]()
    assert protocol is not None
    tasks = protocol.pending_tasks()
    del protocol
    client.writer.transport.abort()
    async with asyncio.timeout(5):
        await gates["big-stream-closed"].wait()
        await lost.wait()
        await asyncio.wait(tasks)
    del tasks
    await client.close()
    gc.collect()
    assert [ref() for ref in refs] == [None]
    assert server.connections == 0


async def test_protocol_built_from_a_component_alone(server_app) -> None:
    class Component:
        app = server_app
        settings = ServerSettings(keep_alive_timeout=1.0)

    component = Component()
    server_app.finalize()
    context = Context()
    loop = asyncio.get_running_loop()
    protocols: list[KyoukaiProtocol] = []

    def make() -> KyoukaiProtocol:
        protocols.append(KyoukaiProtocol(component, context, "127.0.0.1", 0))
        return protocols[-1]

    listener = await loop.create_server(make, "127.0.0.1", 0)
    try:
        port = listener.sockets[0].getsockname()[1]
        async with await RawClient.connect(port) as client:
            await client.send(SIMPLE_GET)
            assert (await client.read_response()).body == b"hello"
    finally:
        listener.close()
        for protocol in protocols:
            protocol.abort()


async def test_cancelled_serve_forever_stops_the_server(start) -> None:
    server = await start()
    serving = asyncio.create_task(server.serve_forever())
    async with await RawClient.connect(server.port) as client:
        await client.send(SIMPLE_GET)
        assert (await client.read_response()).body == b"hello"
        serving.cancel()
        with pytest.raises(asyncio.CancelledError):
            await serving
        await client.assert_closed()
    async with asyncio.timeout(5):
        await server.wait_closed()


async def test_server_handle_as_context_manager(server_app) -> None:
    base = ServerSettings(max_body_size=10)
    component = type("Component", (), {"app": server_app, "settings": base})()
    async with await server_app.start(
        "127.0.0.1", 0, component=component, keep_alive_timeout=2.0
    ) as server:
        assert server.settings == ServerSettings(max_body_size=10, keep_alive_timeout=2.0)
        assert len(server.sockets) == 1
        async with await RawClient.connect(server.port) as client:
            await client.send(SIMPLE_GET)
            assert (await client.read_response()).body == b"hello"
    async with asyncio.timeout(5):
        await server.wait_closed()
    with pytest.raises(TypeError, match="max_bodysize"):
        await server_app.start("127.0.0.1", 0, component=component, max_bodysize=1)


async def test_replace_hands_the_connection_to_another_protocol(start, server_app) -> None:
    received: asyncio.Queue[bytes] = asyncio.Queue()

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            received.put_nowait(data)
            self.transport.write(data.upper())  # type: ignore[attr-defined]

    @server_app.route("/switch")
    async def switch(ctx) -> str:
        ctx.proto.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\n\r\n")
        ctx.proto.replace(Echo)
        return "never sent"

    server = await start()
    async with await RawClient.connect(server.port) as client:
        await client.send(b"GET /switch HTTP/1.1\r\nHost: x\r\n\r\n")
        status_line, _ = await client.read_head()
        assert status_line == b"HTTP/1.1 101 Switching Protocols"
        await client.send(b"ping")
        async with asyncio.timeout(5):
            assert await received.get() == b"ping"
            assert await client.reader.readexactly(4) == b"PING"


async def test_event_stream_client_leaving_closes_the_generator(
    server: KyoukaiServer, gates, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="kyoukai")
    client = await RawClient.connect(server.port)
    await client.send(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")
    status_line, _ = await client.read_head()
    assert status_line == b"HTTP/1.1 200 OK"
    async with asyncio.timeout(5):
        first = b"d\r\ndata: first\n\n\r\n"  # one chunk of 13 bytes
        assert await client.reader.readexactly(len(first)) == first
    await client.close()
    async with asyncio.timeout(5):
        await gates["events-closed"].wait()
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.WARNING]
