"""The built-in HTTP/1.1 server over real sockets: framing, keep-alive, pipelining, bodies."""

from __future__ import annotations

import asyncio
import gc
import gzip
import json
import re
import zlib
from typing import Any

import httpx
import pytest
from werkzeug.wrappers import Response

from helpers import (
    CHUNKED_POST,
    CLOSE_GET,
    HEAD_REQUEST,
    HTTP10_GET,
    HTTP10_KEEPALIVE_GET,
    SIMPLE_GET,
    RawClient,
)
from kyoukai.backends._server import KyoukaiServer

DATE = re.compile(rb"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT")


def post(path: str, body: bytes, *extra: bytes) -> bytes:
    head = [f"POST {path} HTTP/1.1".encode(), b"Host: example.org", *extra]
    head.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(head) + b"\r\n\r\n" + body


async def test_simple_get_has_exact_status_and_headers(server: KyoukaiServer) -> None:
    async with await RawClient.connect(server.port) as client:
        await client.send(SIMPLE_GET)
        response = await client.read_response()
    assert response.status_line == b"HTTP/1.1 200 OK"
    assert response.header_names() == [
        "content-type",
        "content-length",
        "server",
        "date",
    ]
    assert response.header("content-type") == "text/plain; charset=utf-8"
    assert response.header("content-length") == "5"
    assert response.header("server") == "Kyoukai/3.0.0.dev0"
    assert DATE.fullmatch(response.header("date").encode())  # type: ignore[union-attr]
    assert response.body == b"hello"


async def test_keep_alive_serves_100_requests_on_one_connection(server: KyoukaiServer) -> None:
    async with await RawClient.connect(server.port) as client:
        for _ in range(100):
            await client.send(SIMPLE_GET)
            response = await client.read_response()
            assert response.status_line == b"HTTP/1.1 200 OK"
            assert response.body == b"hello"
            assert response.header("connection") is None


async def test_requests_leave_no_reference_cycles(server: KyoukaiServer) -> None:
    # Garbage left for the cyclic collector makes its full passes stall every connection.
    async with await RawClient.connect(server.port) as client:
        await client.send(SIMPLE_GET)
        await client.read_response()
        gc.collect()
        gc.set_debug(gc.DEBUG_SAVEALL)
        try:
            for _ in range(20):
                await client.send(SIMPLE_GET)
                assert (await client.read_response()).body == b"hello"
            gc.collect()
            leftovers = [type(obj).__name__ for obj in gc.garbage]
        finally:
            gc.set_debug(0)
            gc.garbage.clear()
    assert leftovers == []


async def test_request_tasks_come_from_the_loops_task_factory(server: KyoukaiServer) -> None:
    loop = asyncio.get_running_loop()
    made: list[asyncio.Task[object]] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **options: Any) -> asyncio.Task[object]:
        task = asyncio.Task(coro, loop=loop, **options)
        made.append(task)
        return task

    async with await RawClient.connect(server.port) as client:
        await client.send(SIMPLE_GET)
        assert (await client.read_response()).body == b"hello"
        assert made == []  # no factory: tasks are made directly
        loop.set_task_factory(factory)
        try:
            await client.send(SIMPLE_GET)
            assert (await client.read_response()).body == b"hello"
        finally:
            loop.set_task_factory(None)
    assert len(made) == 1


async def test_pipelined_responses_keep_request_order(server: KyoukaiServer) -> None:
    # The first handler waits until the third one runs, so the third finishes first.
    requests = (
        b"GET /wait/a HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        b"GET /open/a HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    async with await RawClient.connect(server.port) as client:
        await client.send(requests)
        bodies = [(await client.read_response()).body for _ in range(3)]
    assert bodies == [b"waited a", b"hello", b"opened a"]


async def test_http10_closes_after_response(server: KyoukaiServer) -> None:
    async with await RawClient.connect(server.port) as client:
        await client.send(HTTP10_GET)
        response = await client.read_response()
        assert response.status_line == b"HTTP/1.1 200 OK"
        assert response.header("connection") == "close"
        assert response.body == b"hello"
        await client.assert_closed()


async def test_http10_keep_alive_stays_open(server: KyoukaiServer) -> None:
    async with await RawClient.connect(server.port) as client:
        for _ in range(3):
            await client.send(HTTP10_KEEPALIVE_GET)
            response = await client.read_response()
            assert response.header("connection") == "keep-alive"
            assert response.body == b"hello"


async def test_connection_close_request_is_honoured(server: KyoukaiServer) -> None:
    async with await RawClient.connect(server.port) as client:
        # The second request comes after "Connection: close" and must be ignored.
        await client.send(CLOSE_GET + SIMPLE_GET)
        response = await client.read_response()
        assert response.header("connection") == "close"
        await client.assert_closed()


async def test_connection_close_response_closes(server: KyoukaiServer) -> None:
    async with await RawClient.connect(server.port) as client:
        await client.send(b"GET /close HTTP/1.1\r\nHost: x\r\n\r\n")
        response = await client.read_response()
        assert response.body == b"bye"
        assert response.header("connection") == "close"
        await client.assert_closed()


async def test_content_length_body_reaches_handler(server: KyoukaiServer) -> None:
    async with await RawClient.connect(server.port) as client:
        await client.send(post("/echo", b"payload"))
        response = await client.read_response()
    assert response.status_line == b"HTTP/1.1 200 OK"
    assert response.body == b"payload"


async def test_body_sent_in_small_writes(server: KyoukaiServer) -> None:
    request = post("/echo", b"0123456789" * 50)
    async with await RawClient.connect(server.port) as client:
        for index in range(0, len(request), 7):
            await client.send(request[index : index + 7])
        response = await client.read_response()
    assert response.body == b"0123456789" * 50


async def test_chunked_body_with_extension_and_trailer(server: KyoukaiServer) -> None:
    async with await RawClient.connect(server.port) as client:
        await client.send(CHUNKED_POST)
        response = await client.read_response()
        assert response.body == b"hello world"
        assert response.header("x-length") == "11"
        # The trailer must not have become a request header of this or the next request.
        await client.send(b"GET /headers HTTP/1.1\r\nHost: x\r\n\r\n")
        headers = json.loads((await client.read_response()).body)
    assert "x-trailer" not in headers


async def test_trailer_cannot_override_headers(server: KyoukaiServer) -> None:
    request = (
        b"POST /headers HTTP/1.1\r\nHost: good\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\nHost: evil\r\nX-Injected: 1\r\n\r\n"
    )
    async with await RawClient.connect(server.port) as client:
        await client.send(request)
        headers = json.loads((await client.read_response()).body)
    assert headers["host"] == "good"
    assert "x-injected" not in headers


@pytest.mark.parametrize(
    ("coding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data)[2:-4]),  # raw deflate, as some clients send
        ("gzip, deflate", lambda data: zlib.compress(gzip.compress(data))),
    ],
)
async def test_compressed_body_is_decoded(server: KyoukaiServer, coding, compress) -> None:
    data = b"compressible " * 100
    async with await RawClient.connect(server.port) as client:
        await client.send(post("/echo", compress(data), f"Content-Encoding: {coding}".encode()))
        response = await client.read_response()
    assert response.status_line == b"HTTP/1.1 200 OK"
    assert response.body == data
    assert response.header("x-length") == str(len(data))


async def test_expect_100_continue_is_answered_before_body(server: KyoukaiServer) -> None:
    head = b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"
    async with await RawClient.connect(server.port) as client:
        await client.send(head)
        interim, headers = await client.read_head()
        assert interim == b"HTTP/1.1 100 Continue"
        assert headers == []
        await client.send(b"data")
        response = await client.read_response()
    assert response.status_line == b"HTTP/1.1 200 OK"
    assert response.body == b"data"


async def test_head_response_has_length_but_no_body(server: KyoukaiServer) -> None:
    async with await RawClient.connect(server.port) as client:
        await client.send(HEAD_REQUEST + SIMPLE_GET)
        head = await client.read_response(head_request=True)
        assert head.status_line == b"HTTP/1.1 200 OK"
        assert head.header("content-length") == "5"
        # The next response starts right away: HEAD had no body on the wire.
        after = await client.read_response()
        assert after.body == b"hello"


@pytest.mark.parametrize("code", [204, 304])
async def test_bodyless_statuses_send_no_body(server: KyoukaiServer, code: int) -> None:
    async with await RawClient.connect(server.port) as client:
        await client.send(f"GET /status/{code} HTTP/1.1\r\nHost: x\r\n\r\n".encode() + SIMPLE_GET)
        response = await client.read_response()
        assert response.status_line.startswith(b"HTTP/1.1 %d " % code)
        assert response.header("transfer-encoding") is None
        if code == 204:
            assert response.header("content-length") is None
            assert response.header("content-type") is None
        after = await client.read_response()
        assert after.body == b"hello"


async def test_generator_response_is_chunked(server: KyoukaiServer) -> None:
    async with await RawClient.connect(server.port) as client:
        await client.send(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        response = await client.read_response()
    assert response.header("transfer-encoding") == "chunked"
    assert response.header("content-length") is None
    assert response.chunks == [7, 7, 7]
    assert response.body == b"part 0\npart 1\npart 2\n"


async def test_async_generator_response_is_chunked(server: KyoukaiServer) -> None:
    async with await RawClient.connect(server.port) as client:
        await client.send(b"GET /astream HTTP/1.1\r\nHost: x\r\n\r\n" + SIMPLE_GET)
        response = await client.read_response()
        assert response.header("content-type") == "text/event-stream; charset=utf-8"
        assert response.header("transfer-encoding") == "chunked"
        assert response.body == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
        assert (await client.read_response()).body == b"hello"


async def test_stream_on_http10_ends_with_close(server: KyoukaiServer) -> None:
    async with await RawClient.connect(server.port) as client:
        await client.send(b"GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        response = await client.read_response()
    assert response.header("transfer-encoding") is None
    assert response.header("connection") == "close"
    assert response.body == b"part 0\npart 1\npart 2\n"


async def test_environ_has_addresses_scheme_and_protocol(server: KyoukaiServer) -> None:
    async with await RawClient.connect(server.port) as client:
        await client.send(b"GET /environ HTTP/1.1\r\nHost: x\r\n\r\n")
        env = json.loads((await client.read_response()).body)
        local_port = client.writer.get_extra_info("sockname")[1]
    assert env == {
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": str(local_port),
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": str(server.port),
        "wsgi.url_scheme": "http",
        "proto": "KyoukaiProtocol",
        "proto_is_env": True,
    }


async def test_handler_exception_gets_500_and_connection_survives(server: KyoukaiServer) -> None:
    async with await RawClient.connect(server.port) as client:
        await client.send(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n" + SIMPLE_GET)
        assert (await client.read_response()).status_line == b"HTTP/1.1 500 Internal Server Error"
        assert (await client.read_response()).body == b"hello"


@pytest.mark.parametrize("kind", ["nul", "bel", "del", "crlf", "name"])
async def test_unsafe_response_header_is_refused_with_500(server: KyoukaiServer, kind: str) -> None:
    async with await RawClient.connect(server.port) as client:
        await client.send(f"GET /bad-header/{kind} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        response = await client.read_response()
        assert response.status_line == b"HTTP/1.1 500 Internal Server Error"
        assert response.header("x-evil") is None
        assert response.header("set-cookie") is None
        await client.send(SIMPLE_GET)
        assert (await client.read_response()).body == b"hello"


async def test_httpx_client_round_trips(server: KyoukaiServer) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=5) as client:
        for _ in range(5):
            response = await client.get("/")
            assert response.status_code == 200
            assert response.text == "hello"
        response = await client.post("/echo", content=b"abc")
        assert response.content == b"abc"
        streamed = await client.get("/astream")
        assert streamed.text == "data: 0\n\ndata: 1\n\ndata: 2\n\n"


async def test_tls_sets_https_scheme(start, tmp_path) -> None:
    trustme = pytest.importorskip("trustme")
    import ssl

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    server = await start(ssl=server_context)
    async with httpx.AsyncClient(verify=client_context, timeout=5) as client:
        response = await client.get(f"https://127.0.0.1:{server.port}/environ")
    assert response.json()["wsgi.url_scheme"] == "https"


async def test_upgrade_is_ignored_and_connection_continues(server: KyoukaiServer) -> None:
    upgrade = (
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n"
    )
    async with await RawClient.connect(server.port) as client:
        await client.send(upgrade + SIMPLE_GET)
        first = await client.read_response()
        assert first.status_line == b"HTTP/1.1 200 OK"
        assert (await client.read_response()).body == b"hello"
        await client.send(SIMPLE_GET)
        assert (await client.read_response()).body == b"hello"


async def test_upgrade_with_body_is_refused(server: KyoukaiServer) -> None:
    request = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
        b"Content-Length: 26\r\n\r\nGET /smuggled HTTP/1.1\r\n\r\n"
    )
    async with await RawClient.connect(server.port) as client:
        await client.send(request)
        response = await client.read_response()
        assert response.status_line == b"HTTP/1.1 400 Bad Request"
        await client.assert_closed()


async def test_send_file_is_sent_with_its_length(start, server_app, tmp_path) -> None:
    from werkzeug.utils import send_file

    path = tmp_path / "data.bin"
    path.write_bytes(bytes(range(256)) * 1000)

    @server_app.route("/file")
    async def file(ctx) -> Response:
        return send_file(path, ctx.request.environ)

    server = await start()
    async with await RawClient.connect(server.port) as client:
        await client.send(b"GET /file HTTP/1.1\r\nHost: x\r\n\r\n" + SIMPLE_GET)
        response = await client.read_response()
        assert response.header("content-length") == "256000"
        assert response.header("transfer-encoding") is None
        assert response.body == path.read_bytes()
        assert (await client.read_response()).body == b"hello"


async def test_deferred_100_continue_follows_earlier_response(server: KyoukaiServer) -> None:
    expecting = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
    )
    async with await RawClient.connect(server.port) as client:
        await client.send(b"GET /wait/c HTTP/1.1\r\nHost: x\r\n\r\n" + expecting)
        async with await RawClient.connect(server.port) as other:
            await other.send(b"GET /open/c HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await other.read_response()).body == b"opened c"
        assert (await client.read_response()).body == b"waited c"
        interim, _ = await client.read_head()
        assert interim == b"HTTP/1.1 100 Continue"
        await client.send(b"ok")
        assert (await client.read_response()).body == b"ok"


@pytest.mark.parametrize(
    ("request_line", "status"),
    [
        (b"OPTIONS * HTTP/1.1", b"HTTP/1.1 404 Not Found"),  # reaches the app; no route
        (b"GET http://example.org/status/202?x=1 HTTP/1.1", b"HTTP/1.1 202 Accepted"),
        (b"GET http://example.org HTTP/1.1", b"HTTP/1.1 200 OK"),
    ],
)
async def test_asterisk_and_absolute_form_targets(
    server: KyoukaiServer, request_line: bytes, status: bytes
) -> None:
    async with await RawClient.connect(server.port) as client:
        await client.send(request_line + b"\r\nHost: example.org\r\n\r\n")
        response = await client.read_response()
    assert response.status_line == status


async def test_http09_request_is_refused(server: KyoukaiServer) -> None:
    async with await RawClient.connect(server.port) as client:
        await client.send(b"GET /\r\n\r\n")
        assert (await client.read_response()).status_line == b"HTTP/1.1 400 Bad Request"
        await client.assert_closed()


async def test_large_in_memory_body_reaches_slow_reader(start, server_app) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB, well over the write buffer

    @server_app.route("/large")
    async def large(ctx) -> Response:
        return Response(payload)

    server = await start()
    async with await RawClient.connect(server.port, rcvbuf=16384) as client:
        await client.send(b"GET /large HTTP/1.1\r\nHost: x\r\n\r\n" + SIMPLE_GET)
        assert (await client.read_response()).body == payload
        assert (await client.read_response()).body == b"hello"


async def test_body_longer_than_its_content_length_gets_500_and_close(
    start, server_app, caplog
) -> None:
    # PEP 3333: never more than declared; "lo" would be read as the next response.
    @server_app.route("/liar")
    async def liar(ctx) -> Response:
        response = Response(b"hello")
        response.headers["Content-Length"] = "3"
        return response

    server = await start()
    async with await RawClient.connect(server.port) as client:
        await client.send(b"GET /liar HTTP/1.1\r\nHost: x\r\n\r\n" + SIMPLE_GET)
        response = await client.read_response()
        assert response.status_line == b"HTTP/1.1 500 Internal Server Error"
        assert response.header("connection") == "close"
        assert await client.read_until_closed() == b""
    errors = [r for r in caplog.records if "longer than its Content-Length" in r.getMessage()]
    assert len(errors) == 1


async def test_streamed_body_longer_than_its_content_length_is_cut_and_closed(
    start, server_app, caplog
) -> None:
    @server_app.route("/stream-liar")
    async def stream_liar(ctx) -> Response:
        async def pieces():
            yield b"hel"
            yield b"lo world"

        response = Response(pieces())
        response.headers["Content-Length"] = "5"
        return response

    server = await start()
    async with await RawClient.connect(server.port) as client:
        await client.send(b"GET /stream-liar HTTP/1.1\r\nHost: x\r\n\r\n" + SIMPLE_GET)
        response = await client.read_response()
        assert response.header("content-length") == "5"
        assert response.body == b"hello"
        assert await client.read_until_closed() == b""
    errors = [r for r in caplog.records if "longer than its Content-Length" in r.getMessage()]
    assert len(errors) == 1


async def test_body_shorter_than_its_content_length_ends_connection(start, server_app) -> None:
    @server_app.route("/short")
    async def short(ctx) -> Response:
        response = Response(b"hel")
        response.headers["Content-Length"] = "5"
        return response

    server = await start()
    async with await RawClient.connect(server.port) as client:
        await client.send(b"GET /short HTTP/1.1\r\nHost: x\r\n\r\n")
        _, headers = await client.read_head()
        assert (b"Content-Length", b"5") in headers
        assert await client.read_until_closed() == b"hel"
