"""The protocol fed bytes directly (no socket): every request whole, byte by byte, and split.

A fake transport collects what the server writes, and a stand-in application records the
environs it receives, so the parsing and its limits are checked independently of timing.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from asphalt.core import Context
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.wrappers import Request, Response

from kyoukai import Kyoukai
from kyoukai.backends._server import _Holder
from kyoukai.backends._settings import ServerSettings
from kyoukai.backends._state import ServerState
from kyoukai.backends.httptools_ import KyoukaiProtocol
from kyoukai.websocket import WebSocket
from ws_helpers import frame

PIPELINE = (
    b"POST /a?x=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello"
    b"POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3;ext=1\r\nabc\r\n0\r\nTrailer: t\r\n\r\n"
    b"GET /c%20d HTTP/1.1\r\nHost: h\r\nCookie: a=1\r\nCookie: b=2\r\nX-A: 1\r\nX-A: 2\r\n\r\n"
)


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = bytearray()
        self.closed = False
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += data

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("10.0.0.1", 5555), "sockname": ("10.0.0.2", 80)}.get(name, default)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def can_write_eof(self) -> bool:
        return False

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True


class RecordingApp(Kyoukai):
    def __init__(self) -> None:
        super().__init__("recording")
        self.seen: list[tuple[str, str, str, bytes, dict[str, str]]] = []

    async def process_request(self, request: Request, parent_context: Any) -> Response:
        env = request.environ
        headers = {k: v for k, v in env.items() if k.startswith("HTTP_") or k.startswith("CONT")}
        body = request.get_data()
        self.seen.append(
            (env["REQUEST_METHOD"], env["PATH_INFO"], env["QUERY_STRING"], body, headers)
        )
        return Response(b"ok")


def make_protocol(
    transport: FakeTransport | None = None, **options: Any
) -> tuple[KyoukaiProtocol, FakeTransport, RecordingApp]:
    app = RecordingApp()
    server_settings = ServerSettings(**options)
    context = Context()
    state = ServerState(app, server_settings, context)
    protocol = KyoukaiProtocol(
        _Holder(app, server_settings, None), context, "10.0.0.2", 80, state=state
    )
    transport = FakeTransport() if transport is None else transport
    protocol.connection_made(transport)
    return protocol, transport, app


async def settle(protocol: KyoukaiProtocol) -> None:
    """Let every handler task run and write."""
    async with asyncio.timeout(5):
        while protocol.pending_tasks():
            await asyncio.wait(protocol.pending_tasks())


EXPECTED = [
    ("POST", "/a", "x=1", b"hello", {"HTTP_HOST": "h", "CONTENT_LENGTH": "5"}),
    ("POST", "/b", "", b"abc", {"HTTP_HOST": "h", "CONTENT_LENGTH": "3"}),
    (
        "GET",
        "/c d",
        "",
        b"",
        {"HTTP_HOST": "h", "HTTP_COOKIE": "a=1; b=2", "HTTP_X_A": "1,2"},
    ),
]


async def feed_in_pieces(pieces: list[bytes], **options: Any) -> tuple[bytes, RecordingApp]:
    protocol, transport, app = make_protocol(**options)
    for piece in pieces:
        protocol.data_received(piece)
    await settle(protocol)
    protocol.connection_lost(None)
    return bytes(transport.written), app


async def test_pipeline_fed_whole() -> None:
    written, app = await feed_in_pieces([PIPELINE])
    assert app.seen == EXPECTED
    assert written.count(b"HTTP/1.1 200 OK\r\n") == 3


async def test_pipeline_fed_byte_by_byte() -> None:
    written, app = await feed_in_pieces([PIPELINE[i : i + 1] for i in range(len(PIPELINE))])
    assert app.seen == EXPECTED
    assert written.count(b"HTTP/1.1 200 OK\r\n") == 3


async def test_pipeline_split_at_every_offset() -> None:
    for offset in range(1, len(PIPELINE)):
        _, app = await feed_in_pieces([PIPELINE[:offset], PIPELINE[offset:]])
        assert app.seen == EXPECTED, offset


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.integers(1, 60), min_size=1, max_size=30))
def test_pipeline_split_anywhere(sizes: list[int]) -> None:
    pieces, pos = [], 0
    for size in sizes:
        pieces.append(PIPELINE[pos : pos + size])
        pos += size
    pieces.append(PIPELINE[pos:])
    _, app = asyncio.run(feed_in_pieces([p for p in pieces if p]))
    assert app.seen == EXPECTED


@pytest.mark.parametrize("step", [1, 7, 1000, 100_000])
async def test_head_limit_holds_for_any_read_size(step: int) -> None:
    limit = 2048
    request = b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"v" * 5000 + b"\r\n\r\n"
    pieces = [request[i : i + step] for i in range(0, len(request), step)]
    written, app = await feed_in_pieces(pieces, max_head_size=limit, max_header_line_size=10_000)
    assert written.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert app.seen == []


@pytest.mark.parametrize("step", [1, 13, 100_000])
async def test_head_just_under_limit_after_a_body_is_accepted(step: int) -> None:
    # The second head starts in the same read as the first request's body ends: only its own
    # bytes may count towards its limit.
    first = b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 1500\r\n\r\n" + b"b" * 1500
    second_head = b"GET /b HTTP/1.1\r\nHost: h\r\nX-Pad: "
    second = second_head + b"p" * (2000 - len(second_head) - 4) + b"\r\n\r\n"
    assert len(second) == 2000
    data = first + second
    pieces = [data[i : i + step] for i in range(0, len(data), step)]
    written, app = await feed_in_pieces(pieces, max_head_size=2048)
    assert [entry[1] for entry in app.seen] == ["/a", "/b"]
    assert b"431" not in written


async def test_trailer_section_is_bounded() -> None:
    head = b"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n"
    trailer = b"X-Endless: " + b"t" * 100_000
    pieces = [head] + [trailer[i : i + 500] for i in range(0, len(trailer), 500)]
    written, app = await feed_in_pieces(pieces, max_head_size=4096, max_header_line_size=10**6)
    assert written.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert app.seen == []


async def test_pipeline_limit_pauses_reading_and_resumes() -> None:
    protocol, transport, app = make_protocol(max_pipelined_requests=2)
    request = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    # More than one parse slice, so reading stops with bytes left unparsed.
    protocol.data_received(request * 2000)
    assert not transport.reading
    assert protocol._unparsed is not None
    await settle(protocol)
    while protocol._unparsed is not None or protocol.pending_tasks():
        await settle(protocol)
    assert len(app.seen) == 2000
    assert transport.written.count(b"HTTP/1.1 200 OK\r\n") == 2000
    protocol.connection_lost(None)


async def test_too_many_trailer_fields_get_431() -> None:
    trailers = b"".join(b"T-%d: 1\r\n" % index for index in range(11))
    request = b"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + trailers
    written, app = await feed_in_pieces([request + b"\r\n"], max_header_count=10)
    assert written.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert app.seen == []


class PeerGoneTransport(FakeTransport):
    """A socket whose peer is already gone: shutting down its writing side fails, as
    ``shutdown(SHUT_WR)`` does on a connection the client reset (ENOTCONN)."""

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        raise OSError(107, "Transport endpoint is not connected")


async def test_lingering_close_on_a_socket_whose_peer_is_gone_just_closes() -> None:
    transport = PeerGoneTransport()
    protocol, _, _ = make_protocol(transport)
    protocol.data_received(b"NOT HTTP\r\n\r\n")  # refused: the server answers and lingers
    assert transport.written.startswith(b"HTTP/1.1 400 ")
    assert transport.closed


class WatchedTransport(FakeTransport):
    """Says when the server wrote something; takes the protocol an upgrade switches to."""

    def __init__(self) -> None:
        super().__init__()
        self.wrote = asyncio.Event()
        self.protocol: asyncio.BaseProtocol | None = None

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol

    def write(self, data: bytes | bytearray | memoryview) -> None:
        super().write(data)
        self.wrote.set()


async def test_a_websocket_fragment_whose_header_ends_a_read_keeps_its_payload() -> None:
    """Each ``data_received`` is one read. A fragment goes to the full protocol; when a read
    ends right after its header and mask, the protocol holds no bytes but still waits for
    the payload, which must reach it rather than be read as the next frame."""
    app = Kyoukai("ws-feeding")

    @app.websocket("/ws")
    async def echo(ctx: Any, ws: WebSocket) -> None:
        await ws.accept()
        async for message in ws:
            await ws.send(message)

    server_settings = ServerSettings()
    context = Context()
    protocol = KyoukaiProtocol(
        _Holder(app, server_settings, None),
        context,
        "10.0.0.2",
        80,
        state=ServerState(app, server_settings, context),
    )
    transport = WatchedTransport()
    transport.set_protocol(protocol)
    protocol.connection_made(transport)
    protocol.data_received(
        b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )

    async def written(expected: bytes) -> None:
        async with asyncio.timeout(5):
            while expected not in transport.written:
                transport.wrote.clear()
                await transport.wrote.wait()

    await written(b"HTTP/1.1 101 ")
    # Its payload, masked with a zero key, starts like a whole binary frame of "hello".
    payload = frame(0x2, b"hello", key=bytes(4)) + b"f" * 289
    first = frame(0x2, payload, fin=False, key=bytes(4))  # 2 + 2 + 4 bytes of header
    ping = frame(0x9, b"p" * 10)  # 2 + 4
    session = transport.get_protocol()
    assert isinstance(session, asyncio.Protocol) and session is not protocol  # upgraded
    for piece in (first[:8], first[8:], ping[:6], ping[6:], frame(0x0, b"g" * 10)):
        session.data_received(piece)
    await written(b"\x8a\x0a" + b"p" * 10)  # the pong
    await written(b"\x82\x7e\x01\x36" + payload + b"g" * 10)  # the whole message echoed
    session.connection_lost(None)
