"""HTTP/2 conformance, section by section as h2spec checks it, over h2c and TLS with ALPN.

Each case sends raw frames (malformed ones included) and checks the server's answer: the
error code, as a stream error (``RST_STREAM``) or a connection error (``GOAWAY``) where RFC
9113 allows either, or the frame that must come back.
"""

from __future__ import annotations

import ssl
import struct
from collections.abc import Awaitable, Callable

import pytest
import trustme
from h2client import H2Client
from hyperframe.frame import (
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from conftest import StartServer
from kyoukai.backends._server import KyoukaiServer

PROTOCOL, FLOW_CONTROL, STREAM_CLOSED, FRAME_SIZE, COMPRESSION = 1, 3, 5, 6, 9

Connect = Callable[..., Awaitable[H2Client]]


def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    """A frame built by hand, so that it can break every rule."""
    return (
        struct.pack(">I", len(payload))[1:]
        + bytes([kind, flags])
        + struct.pack(">I", stream)
        + payload
    )


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(params=["h2c", "tls"])
async def connect(request: pytest.FixtureRequest, start: StartServer, ca: trustme.CA) -> Connect:
    """Connects to a server speaking HTTP/2 on cleartext (prior knowledge) or TLS (ALPN)."""
    if request.param == "h2c":
        server: KyoukaiServer = await start(http2=True)
        return lambda **options: H2Client.connect(server.port, **options)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    server = await start(http2=True, ssl=server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    client_context.set_alpn_protocols(["h2"])
    return lambda **options: H2Client.connect(server.port, ca=client_context, **options)


async def expect_error(client: H2Client, codes: set[int], stream: int | None = None) -> None:
    """Read until the server resets ``stream`` or sends GOAWAY; its code must be in ``codes``."""
    while True:
        got = await client.read_frame()
        assert got is not None, "the connection closed without an error code"
        if isinstance(got, GoAwayFrame):
            assert got.error_code in codes, got
            return
        if isinstance(got, RstStreamFrame) and stream is not None and got.stream_id == stream:
            assert got.error_code in codes, got
            return


async def expect_goaway(client: H2Client, code: int) -> None:
    goaway = await client.wait_goaway()
    assert goaway is not None and goaway.error_code == code, goaway


async def still_works(client: H2Client) -> None:
    response = await client.get("/")
    assert (response.status, response.body) == (200, b"hello")


# -- 3.4/3.5 connection preface -------------------------------------------------------------


async def test_3_5_invalid_preface(connect: Connect) -> None:
    client = await connect(preface=False)
    async with client:
        await client.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + SettingsFrame(0).serialize())
        # Over TLS (ALPN h2) the server ends the connection with PROTOCOL_ERROR; on cleartext
        # bytes that are not the preface are HTTP/1.1, refused as such.
        await client.wait_closed()
        assert client.goaway is None or client.goaway.error_code == PROTOCOL
        assert not [f for f in client.frames if isinstance(f, HeadersFrame | DataFrame)]


async def test_3_5_server_preface_is_settings(connect: Connect) -> None:
    async with await connect() as client:
        first = await client.read_frame()
        assert isinstance(first, SettingsFrame) and "ACK" not in first.flags
        assert client.server_settings[0x3] == 100  # MAX_CONCURRENT_STREAMS
        await still_works(client)


# -- 4 frame format, size, header compression -----------------------------------------------


async def test_4_1_unknown_frame_type_and_flags_are_ignored(connect: Connect) -> None:
    async with await connect() as client:
        await client.send(frame(0x16, 0xFF, 0, b"whatever"))
        await client.send(frame(0x6, 0xF0, 0, b"8 bytes!"))  # PING with unknown flags
        await still_works(client)
        pongs = [f for f in client.frames if isinstance(f, PingFrame)]
        assert pongs and pongs[0].opaque_data == b"8 bytes!"


async def test_4_2_data_over_max_frame_size(connect: Connect) -> None:
    async with await connect() as client:
        await client.send(
            client.headers_frame(
                1, client.request_headers("/echo", "POST"), end_stream=False
            ).serialize()
        )
        await client.send(frame(0x0, 0x1, 1, b"x" * 16385))
        await expect_error(client, {FRAME_SIZE}, 1)


async def test_4_2_headers_over_max_frame_size(connect: Connect) -> None:
    async with await connect() as client:
        await client.send(frame(0x1, 0x5, 1, b"\x00" * 16385))
        await expect_goaway(client, FRAME_SIZE)


async def test_4_3_invalid_header_block(connect: Connect) -> None:
    async with await connect() as client:
        await client.send(frame(0x1, 0x5, 1, b"\xff\xff\xff\xff\xff"))
        await expect_goaway(client, COMPRESSION)


# -- 5.1 stream states and identifiers ------------------------------------------------------


async def test_5_1_data_on_idle_stream(connect: Connect) -> None:
    async with await connect() as client:
        await client.send(DataFrame(1, b"x").serialize())
        await expect_goaway(client, PROTOCOL)


async def test_5_1_headers_on_half_closed_remote_stream(connect: Connect) -> None:
    async with await connect() as client:
        await client.send(client.headers_frame(1, client.request_headers("/forever")).serialize())
        await client.send(client.headers_frame(1, client.request_headers("/")).serialize())
        await expect_error(client, {STREAM_CLOSED}, 1)


async def test_5_1_1_even_stream_id(connect: Connect) -> None:
    async with await connect() as client:
        await client.send(client.headers_frame(2, client.request_headers("/")).serialize())
        await expect_goaway(client, PROTOCOL)


async def test_5_1_1_decreasing_stream_id(connect: Connect) -> None:
    async with await connect() as client:
        await client.send(client.headers_frame(5, client.request_headers("/")).serialize())
        await client.send(client.headers_frame(3, client.request_headers("/")).serialize())
        await expect_goaway(client, PROTOCOL)


async def test_5_3_priority_on_itself(connect: Connect) -> None:
    async with await connect() as client:
        await client.send(frame(0x2, 0, 1, struct.pack(">IB", 1, 16)))
        await expect_error(client, {PROTOCOL}, 1)


async def test_5_5_unknown_frame_inside_a_header_block(connect: Connect) -> None:
    async with await connect() as client:
        first = client.headers_frame(1, client.request_headers("/"), end_headers=False)
        await client.send(first.serialize() + frame(0x16, 0, 0, b"x"))
        await expect_goaway(client, PROTOCOL)


# -- 6 frame definitions ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        pytest.param(frame(0x0, 0x1, 0, b"x"), PROTOCOL, id="6.1 DATA on stream 0"),
        pytest.param(frame(0x1, 0x5, 0, b"\x82"), PROTOCOL, id="6.2 HEADERS on stream 0"),
        pytest.param(frame(0x2, 0, 0, b"\0\0\0\1\x10"), PROTOCOL, id="6.3 PRIORITY on 0"),
        pytest.param(frame(0x2, 0, 1, b"\0\0\0"), FRAME_SIZE, id="6.3 PRIORITY short"),
        pytest.param(frame(0x3, 0, 0, b"\0\0\0\0"), PROTOCOL, id="6.4 RST_STREAM on 0"),
        pytest.param(frame(0x3, 0, 1, b"\0\0\0\0"), PROTOCOL, id="6.4 RST_STREAM idle"),
        pytest.param(frame(0x3, 0, 1, b"\0\0\0"), FRAME_SIZE, id="6.4 RST_STREAM short"),
        pytest.param(frame(0x4, 0x1, 0, b"\0\1\0\0\0\0"), FRAME_SIZE, id="6.5 ACK with data"),
        pytest.param(frame(0x4, 0, 1, b""), PROTOCOL, id="6.5 SETTINGS on stream 1"),
        pytest.param(frame(0x4, 0, 0, b"\0\1\0"), FRAME_SIZE, id="6.5 SETTINGS length"),
        pytest.param(frame(0x4, 0, 0, b"\0\2\0\0\0\2"), PROTOCOL, id="6.5.2 ENABLE_PUSH 2"),
        pytest.param(
            frame(0x4, 0, 0, b"\0\4\x80\0\0\0"), FLOW_CONTROL, id="6.5.2 INITIAL_WINDOW huge"
        ),
        pytest.param(frame(0x4, 0, 0, b"\0\5\0\0\x3f\xff"), PROTOCOL, id="6.5.2 MAX_FRAME small"),
        pytest.param(frame(0x6, 0, 1, b"12345678"), PROTOCOL, id="6.7 PING on stream 1"),
        pytest.param(frame(0x6, 0, 0, b"1234567"), FRAME_SIZE, id="6.7 PING length"),
        pytest.param(frame(0x7, 0, 1, b"\0\0\0\0\0\0\0\0"), PROTOCOL, id="6.8 GOAWAY on 1"),
        pytest.param(frame(0x8, 0, 0, b"\0\0\0\0"), PROTOCOL, id="6.9 WINDOW_UPDATE 0 on 0"),
        pytest.param(frame(0x8, 0, 0, b"\0\0\0"), FRAME_SIZE, id="6.9 WINDOW_UPDATE length"),
        pytest.param(
            WindowUpdateFrame(0, 2**31 - 1).serialize() * 2, FLOW_CONTROL, id="6.9.1 overflow"
        ),
        pytest.param(frame(0x9, 0x4, 1, b"\x82"), PROTOCOL, id="6.10 CONTINUATION alone"),
    ],
)
async def test_6_connection_errors(connect: Connect, data: bytes, code: int) -> None:
    async with await connect() as client:
        await client.send(data)
        await expect_goaway(client, code)


async def test_6_1_data_with_too_much_padding(connect: Connect) -> None:
    async with await connect() as client:
        await client.send(
            client.headers_frame(
                1, client.request_headers("/echo", "POST"), end_stream=False
            ).serialize()
        )
        await client.send(frame(0x0, 0x9, 1, b"\x05abc"))  # PADDED, pad length 5 > payload
        await expect_goaway(client, PROTOCOL)


async def test_6_5_settings_are_acknowledged_and_unknown_ones_ignored(connect: Connect) -> None:
    async with await connect() as client:
        await client.send(frame(0x4, 0, 0, b"\x00\xff\x00\x00\x00\x01"))
        await still_works(client)
        acks = [f for f in client.frames if isinstance(f, SettingsFrame) and "ACK" in f.flags]
        assert len(acks) == 2  # the preface's SETTINGS and this one


async def test_6_7_ping_ack_is_not_answered(connect: Connect) -> None:
    async with await connect() as client:
        await client.send(frame(0x6, 0x1, 0, b"ackackac") + frame(0x6, 0, 0, b"pingping"))
        await still_works(client)
        pongs = [f.opaque_data for f in client.frames if isinstance(f, PingFrame)]
        assert pongs == [b"pingping"]


async def test_6_9_zero_increment_on_a_stream(connect: Connect) -> None:
    async with await connect() as client:
        await client.send(client.headers_frame(1, client.request_headers("/forever")).serialize())
        await client.send(frame(0x8, 0, 1, b"\0\0\0\0"))
        await expect_error(client, {PROTOCOL}, 1)


async def test_6_9_2_initial_window_change_applies_to_open_streams(connect: Connect) -> None:
    async with await connect(settings={0x4: 1}) as client:
        stream = await client.request("/stream")
        response = await client.response(stream)
        assert response.body == b"part 0\npart 1\npart 2\n"
        sizes = [len(f.data) for f in client.frames if isinstance(f, DataFrame) and f.data]
        assert max(sizes) == 1  # never more than the window the client granted


async def test_6_10_continuation_on_another_stream(connect: Connect) -> None:
    async with await connect() as client:
        first = client.headers_frame(1, client.request_headers("/"), end_headers=False)
        await client.send(first.serialize() + frame(0x9, 0x4, 3, b"\x82"))
        await expect_goaway(client, PROTOCOL)


async def test_6_10_continuation_completes_a_header_block(connect: Connect) -> None:
    async with await connect() as client:
        block = client.encoder.encode(client.request_headers("/"))
        head = HeadersFrame(1, block[:3])
        head.flags.add("END_STREAM")
        await client.send(head.serialize() + frame(0x9, 0x4, 1, block[3:]))
        response = await client.response(1)
        assert response.body == b"hello"


# -- 8 HTTP semantics ------------------------------------------------------------------------

BASE = [(":method", "GET"), (":scheme", "https"), (":authority", "a"), (":path", "/")]


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param([*BASE, ("X-Upper", "1")], id="8.2 uppercase name"),
        pytest.param([*BASE, (":unknown", "1")], id="8.3 unknown pseudo-header"),
        pytest.param([*BASE[:3], ("x", "1"), BASE[3]], id="8.3 pseudo after regular"),
        pytest.param(BASE[1:], id="8.3.1 no :method"),
        pytest.param([*BASE, (":path", "/")], id="8.3.1 repeated :path"),
        pytest.param([*BASE[:3], (":path", "")], id="8.3.1 empty :path"),
        pytest.param([*BASE, ("connection", "close")], id="8.2.2 connection header"),
        pytest.param([*BASE, ("te", "gzip")], id="8.2.2 TE other than trailers"),
    ],
)
async def test_8_malformed_requests(connect: Connect, headers: list[tuple[str, str]]) -> None:
    async with await connect() as client:
        head = HeadersFrame(1, client.encoder.encode(headers))
        head.flags.add("END_HEADERS")
        head.flags.add("END_STREAM")
        await client.send(head.serialize())
        await expect_error(client, {PROTOCOL}, 1)


async def test_8_content_length_mismatch(connect: Connect) -> None:
    async with await connect() as client:
        headers = client.request_headers("/echo", "POST", [("content-length", "10")])
        await client.send(client.headers_frame(1, headers, end_stream=False).serialize())
        data = DataFrame(1, b"12345")
        data.flags.add("END_STREAM")
        await client.send(data.serialize())
        await expect_error(client, {PROTOCOL}, 1)


async def test_8_te_trailers_and_trailers_are_accepted(connect: Connect) -> None:
    async with await connect() as client:
        headers = client.request_headers("/echo", "POST", [("te", "trailers")])
        await client.send(client.headers_frame(1, headers, end_stream=False).serialize())
        await client.send(DataFrame(1, b"body").serialize())
        await client.send(client.headers_frame(1, [("x-trailer", "1")]).serialize())
        response = await client.response(1)
        assert (response.status, response.body) == (200, b"body")


async def test_8_priority_is_accepted_and_ignored(connect: Connect) -> None:
    async with await connect() as client:
        await client.send(frame(0x2, 0, 3, b"\x00\x00\x00\x00\x10"))
        head = client.headers_frame(1, client.request_headers("/"))
        head.flags.add("PRIORITY")
        head.depends_on, head.stream_weight = 3, 200
        await client.send(head.serialize())
        assert (await client.response(1)).body == b"hello"


async def test_goaway_from_client_is_honoured(connect: Connect) -> None:
    async with await connect() as client:
        await still_works(client)
        await client.send(GoAwayFrame(0, last_stream_id=0).serialize())
        await client.wait_closed()


async def test_rst_stream_from_client_cancels_the_handler(connect: Connect) -> None:
    async with await connect() as client:
        await client.send(client.headers_frame(1, client.request_headers("/forever")).serialize())
        await client.send(RstStreamFrame(1, 8).serialize())
        client.next_stream = 3
        await still_works(client)
