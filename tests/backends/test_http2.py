"""HTTP/2 on the built-in server: requests and responses as handlers see them, on h2c and TLS."""

from __future__ import annotations

import asyncio
import gzip
import json
import ssl
from typing import Any

import pytest
import trustme
from h2client import H2Client
from werkzeug.wrappers import Response

from conftest import StartServer
from helpers import RawClient
from kyoukai import HTTPRequestContext, Kyoukai
from kyoukai.backends._server import KyoukaiServer


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def server_tls(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
    return context


def client_tls(ca: trustme.CA, alpn: list[str]) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    context.check_hostname = False
    context.set_alpn_protocols(alpn)
    return context


@pytest.fixture
async def h2server(start: StartServer, server_app: Kyoukai) -> KyoukaiServer:
    @server_app.route("/proto")
    async def proto(ctx: HTTPRequestContext) -> dict[str, Any]:
        env = ctx.request.environ
        return {
            "protocol": env["SERVER_PROTOCOL"],
            "proto": type(ctx.proto).__name__,
            "host": ctx.request.host,
            "cookie": env.get("HTTP_COOKIE"),
            "scheme": ctx.request.scheme,
        }

    @server_app.route("/big/<int:size>")
    async def big(ctx: HTTPRequestContext, size: int) -> Response:
        return Response(b"b" * size)

    return await start(http2=True)


async def test_prior_knowledge_get(h2server: KyoukaiServer) -> None:
    async with await H2Client.connect(h2server.port) as client:
        response = await client.get("/")
        assert response.status == 200
        assert response.body == b"hello"
        assert response.header("content-length") == "5"
        assert (response.header("server") or "").startswith("Kyoukai/")
        assert response.header("date") is not None


async def test_handlers_see_http2(h2server: KyoukaiServer) -> None:
    async with await H2Client.connect(h2server.port) as client:
        stream = await client.request("/proto", headers=[("cookie", "a=1"), ("cookie", "b=2")])
        data = json.loads((await client.response(stream)).body)
    assert data == {
        "protocol": "HTTP/2",
        "proto": "H2KyoukaiProtocol",
        "host": "example.com",
        "cookie": "a=1; b=2",
        "scheme": "http",
    }


async def test_many_streams_on_one_connection(h2server: KyoukaiServer) -> None:
    async with await H2Client.connect(h2server.port) as client:
        streams = [await client.request("/") for _ in range(20)]
        for stream in streams:
            assert (await client.response(stream)).body == b"hello"


async def test_request_body_and_coding(h2server: KyoukaiServer) -> None:
    async with await H2Client.connect(h2server.port) as client:
        plain = await client.get("/echo", method="POST", body=b"payload")
        assert plain.body == b"payload"
        assert plain.header("x-length") == "7"
        packed = gzip.compress(b"z" * 1000)
        coded = await client.get(
            "/echo", method="POST", body=packed, headers=[("content-encoding", "gzip")]
        )
        assert coded.body == b"z" * 1000


async def test_no_data_for_head_204_304(h2server: KyoukaiServer) -> None:
    async with await H2Client.connect(h2server.port) as client:
        head = await client.get("/", method="HEAD")
        assert (head.status, head.body, head.header("content-length")) == (200, b"", "5")
        for code in (204, 304):
            response = await client.get(f"/status/{code}")
            assert (response.status, response.body) == (code, b"")
        no_content = await client.get("/status/204")
        assert no_content.header("content-length") is None
        data = [f for f in client.frames if type(f).__name__ == "DataFrame"]
        assert data == []


async def test_streamed_bodies(h2server: KyoukaiServer) -> None:
    async with await H2Client.connect(h2server.port) as client:
        assert (await client.get("/stream")).body == b"part 0\npart 1\npart 2\n"
        events = await client.get("/astream")
        assert events.body == b"data: 0\n\ndata: 1\n\ndata: 2\n\n"
        assert (events.header("content-type") or "").startswith("text/event-stream")


async def test_large_body_within_flow_control(h2server: KyoukaiServer) -> None:
    # The client's windows are the default 65 535 bytes; it opens them as it reads.
    async with await H2Client.connect(h2server.port) as client:
        response = await client.get("/big/300000")
        assert response.body == b"b" * 300000
        sizes = [len(f.data) for f in client.frames if type(f).__name__ == "DataFrame"]
        assert max(sizes) <= 16384


@pytest.mark.parametrize("kind", ["nul", "crlf", "name"])
async def test_unsafe_response_headers_become_500(h2server: KyoukaiServer, kind: str) -> None:
    async with await H2Client.connect(h2server.port) as client:
        response = await client.get(f"/bad-header/{kind}")
        assert response.status == 500
        assert all("evil" not in name for name, _ in response.headers)
        assert (await client.get("/")).status == 200


async def test_broken_handler_and_stream(h2server: KyoukaiServer) -> None:
    async with await H2Client.connect(h2server.port) as client:
        assert (await client.get("/boom")).status == 500
        broken = await client.get("/broken-stream")
        assert broken.reset == 2  # INTERNAL_ERROR: the client cannot take it for complete
        assert (await client.get("/")).status == 200


async def test_h2c_upgrade_answers_stream_one(h2server: KyoukaiServer) -> None:
    async with await RawClient.connect(h2server.port) as raw:
        await raw.send(
            b"GET /proto HTTP/1.1\r\nHost: up.example\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
        )
        status, _ = await raw.read_head()
        assert status.startswith(b"HTTP/1.1 101")
        client = H2Client(raw.reader, raw.writer)
        await client.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
        response = await client.response(1)
        assert json.loads(response.body)["host"] == "up.example"
        assert json.loads(response.body)["protocol"] == "HTTP/2"
        client.next_stream = 3
        assert (await client.get("/")).body == b"hello"


async def test_http1_still_served_with_http2_on(h2server: KyoukaiServer) -> None:
    async with await RawClient.connect(h2server.port) as raw:
        await raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        response = await raw.read_response()
        assert response.status_line.startswith(b"HTTP/1.1 200") and response.body == b"hello"


async def test_without_http2_nothing_changes(server: KyoukaiServer) -> None:
    async with await RawClient.connect(server.port) as raw:
        await raw.send(
            b"GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
            b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n"
        )
        response = await raw.read_response()
        assert response.status_line.startswith(b"HTTP/1.1 200") and response.body == b"hello"
    async with await RawClient.connect(server.port) as raw:
        await raw.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        assert (await raw.read_response()).status_line[9:10] == b"4"


@pytest.mark.parametrize(("alpn", "expected"), [(["h2", "http/1.1"], "h2"), (["http/1.1"], None)])
async def test_tls_alpn_picks_the_protocol(
    start: StartServer,
    server_tls: ssl.SSLContext,
    ca: trustme.CA,
    alpn: list[str],
    expected: str | None,
) -> None:
    server = await start(http2=True, ssl=server_tls)
    context = client_tls(ca, alpn)
    if expected == "h2":
        async with await H2Client.connect(server.port, ca=context) as client:
            assert client.writer.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
            assert (await client.get("/")).body == b"hello"
    else:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=context)
        async with RawClient(reader, writer) as raw:
            assert writer.get_extra_info("ssl_object").selected_alpn_protocol() == "http/1.1"
            await raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await raw.read_response()).body == b"hello"
