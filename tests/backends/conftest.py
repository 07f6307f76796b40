"""Fixtures for the built-in server: an application with test routes, and running servers."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import uvloop
from werkzeug.wrappers import Response

from kyoukai import HTTPRequestContext, Kyoukai
from kyoukai.backends._server import KyoukaiServer
from stream_routes import add_stream_routes


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run every server test on both loops the server supports: asyncio's and uvloop's (on
    uvloop alone, the default, when marked ``one_loop``)."""
    if item.get_closest_marker("one_loop") is not None:
        return {"uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


class Gates:
    """Named events that let a test hold a handler and release it, without sleeping."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}

    def __getitem__(self, name: str) -> asyncio.Event:
        return self._events.setdefault(name, asyncio.Event())


def build_app(gates: Gates) -> Kyoukai:
    app = Kyoukai("server-tests")

    @app.route("/", methods=["GET", "HEAD"])
    async def index(ctx: HTTPRequestContext) -> str:
        return "hello"

    @app.route("/echo", methods=["POST", "PUT"])
    async def echo(ctx: HTTPRequestContext) -> Response:
        data = ctx.request.get_data()
        return Response(data, headers={"X-Length": ctx.request.headers.get("Content-Length", "")})

    @app.route("/headers", methods=["GET", "POST"])
    async def headers(ctx: HTTPRequestContext) -> dict[str, Any]:
        return {key.lower(): value for key, value in ctx.request.headers.items()}

    @app.route("/environ")
    async def environ(ctx: HTTPRequestContext) -> dict[str, Any]:
        env = ctx.request.environ
        keys = ["REMOTE_ADDR", "REMOTE_PORT", "SERVER_NAME", "SERVER_PORT", "wsgi.url_scheme"]
        result = {key: env[key] for key in keys}
        result["proto"] = type(ctx.proto).__name__
        result["proto_is_env"] = ctx.proto is env["kyoukai.protocol"]
        return result

    @app.route("/status/<int:code>", methods=["GET", "HEAD"])
    async def status(ctx: HTTPRequestContext, code: int) -> Response:
        return Response("not empty", status=code)

    @app.route("/wait/<name>")
    async def wait(ctx: HTTPRequestContext, name: str) -> str:
        gates[name + "-started"].set()
        await gates[name].wait()
        return f"waited {name}"

    @app.route("/open/<name>")
    async def open_gate(ctx: HTTPRequestContext, name: str) -> str:
        gates[name].set()
        return f"opened {name}"

    @app.route("/forever", methods=["GET", "POST"])  # a POST body is read before it waits
    async def forever(ctx: HTTPRequestContext) -> str:
        gates["forever-started"].set()
        try:
            await asyncio.Event().wait()
        finally:
            gates["forever-ended"].set()
        return "unreachable"

    add_stream_routes(app)

    @app.route("/events")
    async def events(ctx: HTTPRequestContext) -> Response:
        async def generate() -> AsyncIterator[bytes]:
            try:
                yield b"data: first\n\n"
                await asyncio.Event().wait()  # an idle event stream
                yield b"data: never\n\n"
            finally:
                gates["events-closed"].set()

        return Response(generate(), mimetype="text/event-stream")  # type: ignore[arg-type]

    @app.route("/big-stream/<int:count>")
    async def big_stream(ctx: HTTPRequestContext, count: int) -> Response:
        produced = gates.produced = []  # type: ignore[attr-defined]
        transport = ctx.proto.transport

        def generate() -> Iterator[bytes]:
            try:
                for _ in range(count):
                    produced.append(transport.get_write_buffer_size())
                    yield b"x" * 65536
            finally:
                gates["big-stream-closed"].set()

        return Response(generate(), mimetype="application/octet-stream")

    @app.route("/broken-stream")
    async def broken_stream(ctx: HTTPRequestContext) -> Response:
        def generate() -> Iterator[bytes]:
            yield b"first"
            raise RuntimeError("the body failed half way")

        return Response(generate())

    @app.route("/boom")
    async def boom(ctx: HTTPRequestContext) -> str:
        raise RuntimeError("handler failure")

    @app.route("/bad-header/<kind>")
    async def bad_header(ctx: HTTPRequestContext, kind: str) -> Response:
        response = Response("x")
        if kind == "nul":
            response.headers["X-Evil"] = "a\x00b"
        elif kind == "bel":
            response.headers["X-Evil"] = "a\x07b"
        elif kind == "del":
            response.headers["X-Evil"] = "a\x7fb"
        elif kind == "crlf":
            # Werkzeug refuses CR/LF in values on assignment; a buggy handler can still
            # smuggle one in through the raw list.
            response.headers._list.append(("X-Evil", "a\r\nSet-Cookie: pwned=1"))
        else:
            response.headers["Bad Name"] = "x"
        return response

    @app.route("/close")
    async def close(ctx: HTTPRequestContext) -> Response:
        return Response("bye", headers={"Connection": "close"})

    return app


@pytest.fixture
def gates() -> Gates:
    return Gates()


@pytest.fixture
def server_app(gates: Gates) -> Kyoukai:
    return build_app(gates)


StartServer = Callable[..., Awaitable[KyoukaiServer]]


@pytest.fixture
async def start(server_app: Kyoukai) -> AsyncIterator[StartServer]:
    """Start the built-in server on 127.0.0.1 with a free port; every server is stopped."""
    servers: list[KyoukaiServer] = []

    async def start_server(**options: Any) -> KyoukaiServer:
        app = options.pop("app", server_app)
        server = await app.start("127.0.0.1", 0, **options)
        servers.append(server)
        return server

    try:
        yield start_server
    finally:
        for server in servers:
            await server.stop(grace=1.0)


@pytest.fixture
async def server(start: StartServer) -> KyoukaiServer:
    """A server with the default settings."""
    return await start()
