"""HTTP/2 under attack: every known flood ends with the right code, bounded memory, and a
healthy server for the next client."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import Iterator

import pytest
from h2client import PREFACE, H2Client
from hpack import Encoder
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from conftest import Gates, StartServer
from kyoukai.backends._server import KyoukaiServer

NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR = 0, 1, 2, 3
FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, ENHANCE_YOUR_CALM = 6, 7, 8, 11


@pytest.fixture
def memory() -> Iterator[list[int]]:
    """The peak of memory allocated during the test, in bytes, read after it ran."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    peak: list[int] = []
    try:
        yield peak
    finally:
        peak.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()


def peak_now() -> int:
    return tracemalloc.get_traced_memory()[1]


async def healthy(server: KyoukaiServer) -> None:
    """A second client is served as if nothing happened."""
    async with await H2Client.connect(server.port) as client:
        response = await client.get("/")
        assert (response.status, response.body) == (200, b"hello")


async def test_rapid_reset_cancels_handlers_and_ends_in_goaway(
    start: StartServer, gates: Gates, memory: list[int]
) -> None:
    server = await start(http2=True, h2_max_resets=100)
    async with await H2Client.connect(server.port) as client:
        frames = []
        for index in range(300):
            stream = 2 * index + 1
            frames.append(client.headers_frame(stream, client.request_headers("/forever")))
            frames.append(RstStreamFrame(stream, CANCEL))
        await client.send(b"".join(f.serialize() for f in frames))
        goaway = await client.wait_goaway()
        assert goaway is not None and goaway.error_code == ENHANCE_YOUR_CALM
        await client.wait_closed()
    assert peak_now() < 8 * 2**20
    await asyncio.sleep(0)  # let the cancelled handlers finish
    assert [t for t in asyncio.all_tasks() if t.get_name() == "kyoukai h2 request"] == []
    await healthy(server)


async def test_made_you_reset_counts_server_resets(
    start: StartServer, gates: Gates, memory: list[int]
) -> None:
    # A WINDOW_UPDATE that overflows a stream's window makes the server reset it.
    server = await start(http2=True, h2_max_resets=50)
    async with await H2Client.connect(server.port) as client:
        await client.send(client.headers_frame(1, client.request_headers("/forever")).serialize())
        await asyncio.wait_for(gates["forever-started"].wait(), 5)
        overflow = WindowUpdateFrame(1, 2**31 - 1).serialize()
        await client.send(overflow * 2)
        assert (await client.response(1)).reset == FLOW_CONTROL_ERROR
        await asyncio.wait_for(gates["forever-ended"].wait(), 5)  # the handler was cancelled
        frames = []
        for index in range(1, 200):
            stream = 2 * index + 1
            frames.append(client.headers_frame(stream, client.request_headers("/")).serialize())
            frames.append(overflow * 2)
        await client.send(b"".join(frames))
        goaway = await client.wait_goaway()
        assert goaway is not None and goaway.error_code == ENHANCE_YOUR_CALM
    assert peak_now() < 8 * 2**20
    await healthy(server)


async def test_continuation_flood_is_stopped_before_decoding(
    start: StartServer, memory: list[int]
) -> None:
    server = await start(http2=True)
    async with await H2Client.connect(server.port) as client:
        first = client.headers_frame(1, client.request_headers("/"), end_headers=False)
        await client.send(first.serialize())
        piece = ContinuationFrame(1, b"\x00" * 16000).serialize()
        try:
            for _ in range(200):  # 3.2 MB if the server kept reading
                await client.send(piece)
        except ConnectionError:
            pass
        goaway = await client.wait_goaway()
        assert goaway is not None and goaway.error_code == ENHANCE_YOUR_CALM
    assert peak_now() < 8 * 2**20
    await healthy(server)


async def test_hpack_bomb_header_count_gets_431(
    start: StartServer, gates: Gates, memory: list[int]
) -> None:
    server = await start(http2=True)
    async with await H2Client.connect(server.port) as client:
        encoder = Encoder()
        block = encoder.encode([*client.request_headers("/wait/bomb"), ("x", "y")])
        # One byte per repetition of the "x: y" entry now in the dynamic table.
        block += bytes([0x80 | 62]) * 1800
        frame = HeadersFrame(1, block)
        frame.flags.add("END_HEADERS")
        frame.flags.add("END_STREAM")
        await client.send(frame.serialize())
        response = await client.response(1)
        assert response.status == 431
        assert not gates["bomb-started"].is_set()
    assert peak_now() < 8 * 2**20
    await healthy(server)


@pytest.mark.parametrize("kind", ["ping", "settings", "empty-data", "window-update", "priority"])
async def test_control_frame_floods_end_in_goaway(
    start: StartServer, memory: list[int], kind: str
) -> None:
    server = await start(http2=True, h2_max_control_frames=2000)
    # The client sends and never reads: its small receive buffer fills with the answers.
    client = await H2Client.connect(server.port, rcvbuf=4096)
    try:
        if kind == "empty-data":
            await client.send(
                client.headers_frame(
                    1, client.request_headers("/wait/x"), end_stream=False
                ).serialize()
            )
        frame = {
            "ping": PingFrame(0, b"12345678"),
            "settings": SettingsFrame(0),
            "empty-data": DataFrame(1, b""),
            "window-update": WindowUpdateFrame(0, 1),
            "priority": PriorityFrame(3, depends_on=0, stream_weight=1),
        }[kind].serialize()

        async def flood() -> None:
            for _ in range(50):
                client.writer.write(frame * 1000)
                await client.writer.drain()

        try:
            await asyncio.wait_for(flood(), 5)
        except (ConnectionError, TimeoutError):
            pass
        goaway = await client.wait_goaway()
        assert goaway is not None and goaway.error_code == ENHANCE_YOUR_CALM
    finally:
        await client.close()
    assert peak_now() < 16 * 2**20
    await healthy(server)


async def test_zero_window_stream_is_reset_after_write_timeout(
    start: StartServer, memory: list[int]
) -> None:
    server = await start(http2=True, write_timeout=0.3)
    # INITIAL_WINDOW_SIZE 0: the server may send headers but no body.
    async with await H2Client.connect(server.port, settings={0x4: 0}) as client:
        streams = [await client.request("/big-stream/50") for _ in range(20)]
        for stream in streams:
            response = await client.response(stream)
            assert response.status == 200 and response.body == b""
            assert response.reset == CANCEL
    # 20 streams of 3.2 MB bodies: the server held a piece each, not the bodies.
    assert peak_now() < 16 * 2**20
    await healthy(server)


async def test_oversized_frame_is_refused_before_it_is_buffered(start: StartServer) -> None:
    server = await start(http2=True)
    async with await H2Client.connect(server.port) as client:
        await client.send(
            client.headers_frame(
                1, client.request_headers("/echo", "POST"), end_stream=False
            ).serialize()
        )
        # A DATA frame header announcing 16 MiB - 1 bytes; only its header is sent.
        await client.send(b"\xff\xff\xff\x00\x00\x00\x00\x00\x01")
        goaway = await client.wait_goaway()
        assert goaway is not None and goaway.error_code == FRAME_SIZE_ERROR
    await healthy(server)


async def test_graceful_shutdown_finishes_streams_and_refuses_new(
    start: StartServer, gates: Gates
) -> None:
    server = await start(http2=True)
    async with await H2Client.connect(server.port) as client:
        first = await client.request("/wait/slow")
        await asyncio.wait_for(gates["slow-started"].wait(), 5)
        stopping = asyncio.create_task(server.stop(grace=5))
        goaway = await client.wait_goaway()
        assert goaway is not None
        assert (goaway.error_code, goaway.last_stream_id) == (NO_ERROR, first)
        late = await client.request("/")
        assert (await client.response(late)).reset == REFUSED_STREAM
        gates["slow"].set()
        response = await client.response(first)
        assert (response.status, response.body) == (200, b"waited slow")
        await client.wait_closed()  # the server's side: written to the end
        await client.close()
        await asyncio.wait_for(stopping, 5)


async def test_requests_per_connection_then_goaway(start: StartServer) -> None:
    server = await start(http2=True, h2_max_requests=3)
    async with await H2Client.connect(server.port) as client:
        streams = [await client.request("/") for _ in range(4)]
        goaway = await client.wait_goaway()
        assert goaway is not None and (goaway.error_code, goaway.last_stream_id) == (NO_ERROR, 5)
        for stream in streams[:3]:
            assert (await client.response(stream)).body == b"hello"
        assert (await client.response(streams[3])).reset == REFUSED_STREAM
        await client.wait_closed()
    await healthy(server)


async def test_concurrent_streams_are_counted_as_running_handlers(
    start: StartServer, gates: Gates
) -> None:
    server = await start(http2=True, h2_max_concurrent_streams=2)
    async with await H2Client.connect(server.port) as client:
        held = [await client.request(f"/wait/{name}") for name in ("a", "b")]
        await asyncio.wait_for(gates["b-started"].wait(), 5)
        extra = await client.request("/")
        assert (await client.response(extra)).reset == REFUSED_STREAM
        gates["a"].set()
        assert (await client.response(held[0])).status == 200
        assert (await client.get("/")).status == 200
        gates["b"].set()
        assert (await client.response(held[1])).status == 200
    assert client.server_settings[0x3] == 2


async def test_idle_connection_is_closed_with_goaway(start: StartServer) -> None:
    server = await start(http2=True, keep_alive_timeout=0.2)
    async with await H2Client.connect(server.port) as client:
        assert (await client.get("/")).status == 200
        goaway = await client.wait_goaway()
        assert goaway is not None and (goaway.error_code, goaway.last_stream_id) == (NO_ERROR, 1)
        await client.wait_closed()


async def test_body_over_the_limit_gets_413(start: StartServer) -> None:
    server = await start(http2=True, max_body_size=1000)
    async with await H2Client.connect(server.port) as client:
        stream = await client.request("/echo", "POST", body=b"x" * 2000)
        assert (await client.response(stream)).status == 413
        # Refused on its headers, before the body comes: then the stream is reset.
        headers = client.request_headers("/echo", "POST", [("content-length", "5000")])
        await client.send(client.headers_frame(3, headers, end_stream=False).serialize())
        refused = await client.response(3)
        assert refused.status == 413
        while refused.reset is None and await client.read_frame() is not None:
            pass
        assert refused.reset == NO_ERROR
    await healthy(server)


async def test_preface_garbage_is_a_protocol_error(start: StartServer) -> None:
    server = await start(http2=True)
    client = await H2Client.connect(server.port, preface=False)
    async with client:
        await client.send(PREFACE + b"\x00\x00\x01\x04\x00\x00\x00\x00\x00\x00")
        goaway = await client.wait_goaway()
        assert goaway is not None and goaway.error_code == FRAME_SIZE_ERROR


async def test_stalled_request_body_gets_408_then_the_idle_connection_closes(
    start: StartServer,
) -> None:
    server = await start(http2=True, body_timeout=0.2, keep_alive_timeout=0.2)
    async with await H2Client.connect(server.port) as client:
        headers = client.request_headers("/echo", "POST")
        await client.send(client.headers_frame(1, headers, end_stream=False).serialize())
        await client.send(DataFrame(1, b"part").serialize())
        response = await client.response(1)
        assert response.status == 408
        goaway = await client.wait_goaway()
        assert goaway is not None and goaway.error_code == NO_ERROR
    await healthy(server)
