"""Hostile input to the built-in server: each limit, timeout and smuggling case gets its status."""

from __future__ import annotations

import asyncio
import gzip

import pytest

from helpers import SIMPLE_GET, RawClient
from kyoukai.backends._server import KyoukaiServer


async def refused(client: RawClient, request: bytes) -> bytes:
    """Send ``request``; return the refusal's status line after checking it closes."""
    await client.send(request)
    response = await client.read_response()
    assert response.header("connection") == "close"
    await client.assert_closed()
    return response.status_line


async def refusal(port: int, request: bytes) -> bytes:
    async with await RawClient.connect(port) as client:
        return await refused(client, request)


async def test_garbage_gets_400_and_close_while_others_work(server: KyoukaiServer) -> None:
    async with await RawClient.connect(server.port) as healthy:
        await healthy.send(SIMPLE_GET)
        assert (await healthy.read_response()).body == b"hello"
        assert await refusal(server.port, b"\x16\x03\x01\x02\x00garbage\r\n\r\n") == (
            b"HTTP/1.1 400 Bad Request"
        )
        await healthy.send(SIMPLE_GET)
        assert (await healthy.read_response()).body == b"hello"


async def test_refusal_comes_after_earlier_pipelined_responses(server: KyoukaiServer) -> None:
    async with await RawClient.connect(server.port) as client:
        await client.send(b"GET /wait/p HTTP/1.1\r\nHost: x\r\n\r\nBROKEN\r\n\r\n")
        await server_gate_open(server, client)
        first = await client.read_response()
        assert first.body == b"waited p"
        assert await refused(client, b"") == b"HTTP/1.1 400 Bad Request"


async def server_gate_open(server: KyoukaiServer, client: RawClient) -> None:
    async with await RawClient.connect(server.port) as other:
        await other.send(b"GET /open/p HTTP/1.1\r\nHost: x\r\n\r\n")
        assert (await other.read_response()).body == b"opened p"


async def test_long_request_line_gets_414(server: KyoukaiServer) -> None:
    request = b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert await refusal(server.port, request) == b"HTTP/1.1 414 Request-URI Too Long"


async def test_long_header_line_gets_431(server: KyoukaiServer) -> None:
    request = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 9000 + b"\r\n\r\n"
    assert await refusal(server.port, request) == (b"HTTP/1.1 431 Request Header Fields Too Large")


async def test_too_many_headers_gets_431(server: KyoukaiServer) -> None:
    fields = b"".join(b"X-%d: 1\r\n" % index for index in range(101))
    request = b"GET / HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n"
    assert await refusal(server.port, request) == (b"HTTP/1.1 431 Request Header Fields Too Large")


async def test_exactly_100_headers_are_accepted(server: KyoukaiServer) -> None:
    fields = b"".join(b"X-%d: 1\r\n" % index for index in range(99))
    async with await RawClient.connect(server.port) as client:
        await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
        assert (await client.read_response()).status_line == b"HTTP/1.1 200 OK"


async def test_large_head_gets_431_counted_on_raw_bytes(server: KyoukaiServer) -> None:
    # 40 lines of 1 KiB: each line is within its limit, the head as a whole is not.
    fields = b"".join(b"X-%d: %s\r\n" % (index, b"v" * 1000) for index in range(40))
    async with await RawClient.connect(server.port) as client:
        await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n")
        # Trickled in pieces, as a slow attacker would; the server counts as bytes arrive.
        for index in range(0, len(fields), 4096):
            await client.send(fields[index : index + 4096])
        assert await refused(client, b"") == b"HTTP/1.1 431 Request Header Fields Too Large"


async def test_endless_header_value_is_cut_at_head_limit(start) -> None:
    server = await start(max_head_size=4096)
    async with await RawClient.connect(server.port) as client:
        await client.send(b"GET / HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        for _ in range(100):  # far past the limit; the server discards what follows its 431
            await client.send(b"v" * 1000)
        status = (await client.read_response()).status_line
    assert status == b"HTTP/1.1 431 Request Header Fields Too Large"


async def test_body_over_limit_gets_413_without_reading_it(start) -> None:
    server = await start(max_body_size=1000)
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
    assert await refusal(server.port, head) == b"HTTP/1.1 413 Request Entity Too Large"


async def test_chunked_body_over_limit_gets_413(start) -> None:
    server = await start(max_body_size=1000)
    chunk = b"200\r\n" + b"x" * 512 + b"\r\n"
    request = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk * 3
    assert await refusal(server.port, request) == b"HTTP/1.1 413 Request Entity Too Large"


async def test_gzip_bomb_gets_413_after_decoding(start) -> None:
    server = await start(max_body_size=100_000)
    bomb = gzip.compress(gzip.compress(b"\0" * 10_000_000))
    assert len(bomb) < 100_000
    request = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip, gzip\r\n"
        b"Content-Length: %d\r\n\r\n" % len(bomb)
    ) + bomb
    assert await refusal(server.port, request) == b"HTTP/1.1 413 Request Entity Too Large"


@pytest.mark.parametrize("coding", [b"br", b"gzip, gzip, gzip", b"compress"])
async def test_unknown_or_stacked_coding_gets_415(server: KyoukaiServer, coding: bytes) -> None:
    request = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Encoding: %s\r\nContent-Length: 1\r\n\r\nx"
    )
    assert await refusal(server.port, request % coding) == (b"HTTP/1.1 415 Unsupported Media Type")


async def test_corrupt_gzip_body_gets_400(server: KyoukaiServer) -> None:
    request = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: 5\r\n"
    request += b"\r\n"
    assert await refusal(server.port, request + b"abcde") == b"HTTP/1.1 400 Bad Request"


async def refusal_body(port: int, request: bytes) -> bytes:
    async with await RawClient.connect(port) as client:
        await client.send(request)
        return (await client.read_response()).body


async def test_refusals_say_which_rule_fired(server: KyoukaiServer) -> None:
    corrupt = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\n"
    corrupt += b"Content-Length: 5\r\n\r\nabcde"
    body = await refusal_body(server.port, corrupt)
    assert body.startswith(b"400 Bad Request: body could not be decoded: the gzip data is corrupt")
    both = b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n"
    both += b"Content-Length: 3\r\n\r\nabc"
    body = await refusal_body(server.port, both)
    assert body == (
        b"400 Bad Request: malformed request: "
        b"Content-Length can't be present with Transfer-Encoding\n"
    )
    repeated = b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"
    assert await refusal_body(server.port, repeated) == (
        b"400 Bad Request: malformed request: repeated Host\n"
    )


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        pytest.param(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request",
            id="content-length-and-transfer-encoding",
        ),
        pytest.param(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            b"HTTP/1.1 400 Bad Request",
            id="conflicting-content-length",
        ),
        pytest.param(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc",
            b"HTTP/1.1 400 Bad Request",
            id="signed-content-length",
        ),
        pytest.param(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\nabc",
            b"HTTP/1.1 501 Not Implemented",
            id="last-coding-not-chunked",
        ),
        pytest.param(
            b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
            b"HTTP/1.1 501 Not Implemented",
            id="unsupported-coding-before-chunked",
        ),
        pytest.param(
            b"POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
            b"HTTP/1.1 400 Bad Request",
            id="transfer-encoding-on-http10",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\n\r\n",
            b"HTTP/1.1 400 Bad Request",
            id="no-host",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            b"HTTP/1.1 400 Bad Request",
            id="two-hosts",
        ),
        pytest.param(
            b"GET / HTTP/2.0\r\nHost: a\r\n\r\n",
            b"HTTP/1.1 505 HTTP Version Not Supported",
            id="http2-request-line",
        ),
        pytest.param(
            b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
            b"HTTP/1.1 400 Bad Request",
            id="asterisk-form-on-get",
        ),
        pytest.param(
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Folded: a\r\n b\r\n\r\n",
            b"HTTP/1.1 400 Bad Request",
            id="obsolete-line-folding",
        ),
    ],
)
async def test_smuggling_attempt_is_refused(
    server: KyoukaiServer, request_bytes: bytes, status: bytes
) -> None:
    assert await refusal(server.port, request_bytes) == status


async def test_slow_loris_gets_408_after_request_timeout(start) -> None:
    server = await start(request_timeout=0.3)
    async with await RawClient.connect(server.port) as client:
        await client.send(b"GET / HTTP/1.1\r\n")
        await client.send(b"Host: x\r\n")
        # Keeps trickling a header line until the deadline closes the connection.
        response = await client.read_response()
        assert response.status_line == b"HTTP/1.1 408 Request Timeout"
        await client.assert_closed()


async def test_stalled_body_gets_408_after_body_timeout(start) -> None:
    server = await start(body_timeout=0.3)
    async with await RawClient.connect(server.port) as client:
        await client.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        response = await client.read_response()
        assert response.status_line == b"HTTP/1.1 408 Request Timeout"
        await client.assert_closed()


async def test_idle_keep_alive_connection_is_closed(start) -> None:
    server = await start(keep_alive_timeout=0.2)
    async with await RawClient.connect(server.port) as client:
        await client.send(SIMPLE_GET)
        assert (await client.read_response()).body == b"hello"
        await client.assert_closed()


async def test_keep_alive_timeout_never_fires_early(start) -> None:
    # The server's clock is refreshed by its timer; a deadline set from it must not lag.
    server = await start(keep_alive_timeout=1.0, request_timeout=5.0)
    loop = asyncio.get_running_loop()
    async with await RawClient.connect(server.port) as client:
        await client.send(SIMPLE_GET)
        assert (await client.read_response()).body == b"hello"
        answered = loop.time()
        await client.assert_closed()
        idle = loop.time() - answered
    assert 0.98 <= idle <= 1.0 + 2 * 0.5 + 0.5


async def test_date_header_is_at_most_one_second_stale(start) -> None:
    import time
    from email.utils import parsedate_to_datetime

    server = await start()
    async with await RawClient.connect(server.port) as client:
        started = time.time()
        while time.time() - started < 1.5:  # across at least one change of second
            await client.send(SIMPLE_GET)
            response = await client.read_response()
            date = response.header("date")
            assert date is not None
            shown = parsedate_to_datetime(date).timestamp()
            assert int(time.time()) - shown <= 1


async def test_silent_connection_is_closed_after_request_timeout(start) -> None:
    server = await start(request_timeout=0.2)
    async with await RawClient.connect(server.port) as client:
        await client.assert_closed()


async def test_connection_cap_answers_503(start) -> None:
    server = await start(max_connections=2)
    async with await RawClient.connect(server.port) as first:
        async with await RawClient.connect(server.port) as second:
            await first.send(SIMPLE_GET)
            await second.send(SIMPLE_GET)
            assert (await first.read_response()).body == b"hello"
            assert (await second.read_response()).body == b"hello"
            async with await RawClient.connect(server.port) as third:
                response = await third.read_response()
                assert response.status_line == b"HTTP/1.1 503 Service Unavailable"
                await third.assert_closed()


async def test_pipeline_queue_pauses_reading(start, gates) -> None:
    server = await start(max_pipelined_requests=4)
    requests = b"GET /wait/q HTTP/1.1\r\nHost: x\r\n\r\n" + SIMPLE_GET * 1000
    async with await RawClient.connect(server.port) as client:
        await client.send(requests)
        async with asyncio.timeout(5):
            await gates["q-started"].wait()
        (protocol,) = server._state.connections  # type: ignore[attr-defined]
        # One parse slice may run past the limit, but then reading pauses and bytes wait.
        assert protocol._flow.read_paused
        assert len(protocol._pipeline) <= 16384 // len(SIMPLE_GET) + 1
        gates["q"].set()
        bodies = [(await client.read_response()).body for _ in range(1001)]
    assert bodies == [b"waited q"] + [b"hello"] * 1000


async def test_unknown_server_option_is_a_type_error(server_app) -> None:
    with pytest.raises(TypeError, match="max_body_size"):
        await server_app.start("127.0.0.1", 0, max_bodysize=10)


async def test_handler_timeout_gets_503_and_cancels_handler(start, gates) -> None:
    server = await start(handler_timeout=0.2)
    async with await RawClient.connect(server.port) as client:
        await client.send(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
        response = await client.read_response()
        assert response.status_line == b"HTTP/1.1 503 Service Unavailable"
        assert gates["forever-ended"].is_set()
        await client.send(SIMPLE_GET)
        assert (await client.read_response()).body == b"hello"
