"""The spec's names in ``kyoukai.backends.http2``: what each means, on h2 4.x."""

from __future__ import annotations

import asyncio
import io
import re
import ssl
import sys
from pathlib import Path
from typing import Any

import pytest
import trustme
from asphalt.core import Context
from h2client import H2Client

from conftest import StartServer
from helpers import RawClient
from kyoukai import Kyoukai
from kyoukai._body import BODY_ENVIRON_KEY, load_body
from kyoukai.backends import http2
from kyoukai.backends._server import KyoukaiServer
from kyoukai.backends.http2 import (
    H2KyoukaiComponent,
    H2KyoukaiProtocol,
    H2State,
    create_wsgi_environment,
    get_header,
)


def make_protocol(app: Kyoukai) -> H2KyoukaiProtocol:
    class Holder:
        pass

    holder = Holder()
    holder.app = app  # type: ignore[attr-defined]
    return H2KyoukaiProtocol(holder, Context())


def test_get_header_finds_any_case_and_kind() -> None:
    headers = [(b":method", b"GET"), (b"Content-Type", b"text/plain"), ("x-a", "1")]
    assert get_header(headers, "content-type") == "text/plain"
    assert get_header(headers, "X-A") == "1"
    assert get_header(headers, "missing") is None


async def test_create_wsgi_environment_from_a_stream() -> None:
    protocol = make_protocol(Kyoukai("api"))
    protocol._base_environ = {"SCRIPT_NAME": "", "wsgi.url_scheme": "https"}
    headers = [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":authority", b"example.org"),
        (b":path", b"/a%20b?x=1"),
        (b"cookie", b"a=1"),
        (b"cookie", b"b=2"),
        (b"content-type", b"text/plain"),
    ]
    state = H2State(headers, 1, protocol)
    state.insert_data(b"body")
    environ = create_wsgi_environment(state)
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["PATH_INFO"] == "/a b" and environ["QUERY_STRING"] == "x=1"
    assert environ["HTTP_HOST"] == "example.org"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert environ["SERVER_PROTOCOL"] == "HTTP/2"
    # The body streams, as the server gives it to the application; loaded, it reads whole.
    assert environ[BODY_ENVIRON_KEY] is state.body
    state.end()
    await load_body(environ)
    assert environ["wsgi.input"].read() == b"body"
    assert environ["CONTENT_LENGTH"] == "4"
    ended = H2State(headers, 3, protocol)
    ended.end()
    environ = create_wsgi_environment(ended)
    assert BODY_ENVIRON_KEY not in environ
    assert isinstance(environ["wsgi.input"], io.BytesIO)
    assert environ["wsgi.input"].read() == b""


async def test_h2state_reads_its_body() -> None:
    state = H2State([], 1, make_protocol(Kyoukai("api")))
    state.insert_data(b"abc")
    state.insert_data(b"def")
    assert state.get_chunk() == b"abc"
    assert state.read(2) == b"de"
    assert state.read() == b"f"
    assert state.get_chunk() == b""
    waiting = asyncio.create_task(state.read_async())
    await asyncio.sleep(0)
    assert not waiting.done()
    state.insert_data(b"gh")
    await asyncio.sleep(0)
    assert not waiting.done()  # to_end: only once the stream ended
    state.end()
    assert await waiting == b"gh"
    assert await state.read_async(to_end=False) == b""


async def test_h2state_read_async_one_chunk() -> None:
    state = H2State([], 1, make_protocol(Kyoukai("api")))
    waiting = asyncio.create_task(state.read_async(to_end=False))
    await asyncio.sleep(0)
    state.insert_data(b"first")
    assert await waiting == b"first"


async def test_h2state_start_response_and_headers() -> None:
    protocol = make_protocol(Kyoukai("api"))
    state = H2State([], 1, protocol)
    with pytest.raises(ValueError, match="start_response"):
        state.get_response_headers()
    state.start_response("201 Created", [("Content-Type", "text/plain"), ("Connection", "x")])
    headers = state.get_response_headers()
    assert headers[0] == (b":status", b"201")
    assert (b"content-type", b"text/plain") in headers
    assert all(name != b"connection" for name, _ in headers)  # not allowed in HTTP/2
    assert {name for name, _ in headers} >= {b"date", b"server"}
    state.start_response("200 OK", [("X-Evil", "a\x00b")])
    with pytest.raises(ValueError, match="control character"):
        state.get_response_headers()


def test_spec_methods_exist() -> None:
    for name in (
        "connection_made",
        "data_received",
        "raw_write",
        "request_received",
        "receive_data",
        "stream_complete",
        "window_opened",
        "sending_loop",
        "close",
        "eof_received",
        "pause_writing",
        "resume_writing",
    ):
        assert callable(getattr(H2KyoukaiProtocol, name)), name
    assert asyncio.iscoroutinefunction(H2KyoukaiProtocol.sending_loop)
    assert asyncio.iscoroutinefunction(H2State.read_async)


def test_component_is_reexported_lazily() -> None:
    from kyoukai._h2component import H2KyoukaiComponent as Defined

    assert H2KyoukaiComponent is Defined
    assert "H2KyoukaiComponent" in http2.__all__
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        http2.Nope  # noqa: B018


@pytest.fixture(scope="module")
def cert_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    directory = tmp_path_factory.mktemp("h2tls")
    issued = trustme.CA().issue_cert("127.0.0.1")
    cert, key = str(directory / "c.pem"), str(directory / "k.pem")
    issued.cert_chain_pems[0].write_to_path(cert)
    issued.private_key_pem.write_to_path(key)
    return key, cert


async def test_h2_component_speaks_http2_only(cert_files: tuple[str, str]) -> None:
    key, cert = cert_files
    app = Kyoukai("h2only")
    component = H2KyoukaiComponent(app, key, cert, port=0)
    assert component.protocol_class() is H2KyoukaiProtocol
    assert component.get_server_name().startswith("Kyoukai/")
    protocol = component.get_protocol(Context(), ("127.0.0.1", 4444))
    assert isinstance(protocol, H2KyoukaiProtocol)
    with pytest.raises(TypeError, match="http2 is not a key"):
        H2KyoukaiComponent(app, key, cert, http2=False)
    with pytest.raises(ValueError, match="no such file"):
        H2KyoukaiComponent(app, key, str(Path(cert).with_name("missing.pem")))


async def test_h2_component_refuses_http1_over_alpn(cert_files: tuple[str, str]) -> None:
    key, cert = cert_files
    app = Kyoukai("h2only")

    @app.route("/")
    async def index(ctx: Any) -> str:
        return "only h2"

    component = H2KyoukaiComponent(app, key, cert, port=0)
    ctx = Context()
    async with ctx:
        await component.start(ctx)
        port = component.server.port
        client_context = ssl.create_default_context()
        client_context.check_hostname = False
        client_context.verify_mode = ssl.CERT_NONE
        client_context.set_alpn_protocols(["h2", "http/1.1"])
        async with await H2Client.connect(port, ca=client_context) as client:
            assert (await client.get("/")).body == b"only h2"
        client_context.set_alpn_protocols(["http/1.1"])
        client = await H2Client.connect(port, ca=client_context, preface=False)
        async with client:
            assert client.writer.get_extra_info("ssl_object").selected_alpn_protocol() is None
            await client.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            goaway = await client.wait_goaway()
            assert goaway is not None and goaway.error_code == 1  # PROTOCOL_ERROR


async def test_connection_events_fire_for_http2(start: StartServer, server_app: Kyoukai) -> None:
    seen: list[str] = []
    lost = asyncio.Event()
    server_app.connection_made.connect(lambda event: seen.append(type(event.protocol).__name__))
    server_app.connection_lost.connect(lambda event: lost.set())
    server: KyoukaiServer = await start(http2=True)
    async with await H2Client.connect(server.port) as client:
        assert (await client.get("/")).status == 200
    await asyncio.wait_for(lost.wait(), 5)
    assert "H2KyoukaiProtocol" in seen


RUN_SCRIPT = """
import sys
from kyoukai import Kyoukai

app = Kyoukai("run-h2")

@app.route("/")
async def index(ctx):
    return ctx.request.environ["SERVER_PROTOCOL"]

app.run("127.0.0.1", 0, http2=True)
"""


@pytest.mark.slow
async def test_run_with_http2_serves_both_protocols() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUN_SCRIPT, stderr=asyncio.subprocess.PIPE
    )
    assert process.stderr is not None
    try:
        async with asyncio.timeout(10):
            while True:
                line = (await process.stderr.readline()).decode()
                assert line, "the server exited before logging its address"
                match = re.search(r"on http://127\.0\.0\.1:(\d+)", line)
                if match:
                    break
        port = int(match.group(1))
        async with await H2Client.connect(port) as client:
            assert (await client.get("/")).body == b"HTTP/2"
        async with await RawClient.connect(port) as raw:
            await raw.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await raw.read_response()).body == b"HTTP/1.1"
    finally:
        if process.returncode is None:
            process.terminate()
        await process.wait()
