"""The ASGI adapter in process: scopes, ``receive`` and ``send`` called directly."""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
from typing import Any

import pytest
from asphalt.core import Component, Context

from asgi_helpers import Exchange, Lifespan, call, http_scope, request_messages
from kyoukai import HTTPRequestContext, Kyoukai
from kyoukai.backends.asgi import ASGIAdapter


@pytest.fixture
def app(server_app: Kyoukai) -> Kyoukai:
    """The server tests' application, with a route that shows the environ under ASGI."""

    @server_app.route("/asgi-environ")
    async def asgi_environ(ctx: HTTPRequestContext) -> dict[str, Any]:
        keys = ["SCRIPT_NAME", "PATH_INFO", "QUERY_STRING", "REMOTE_ADDR", "REMOTE_PORT"]
        keys += ["SERVER_NAME", "SERVER_PORT", "SERVER_PROTOCOL", "wsgi.url_scheme"]
        result = {key: ctx.environ[key] for key in keys}
        result["url"] = ctx.url_for("server-tests.asgi_environ", force_external=True)
        adapter = server_app._asgi
        result["parent_is_base"] = adapter is not None and ctx.parent is adapter.base_context
        result["proto"] = ctx.proto
        return result

    return server_app


def body_headers(length: int) -> list[tuple[bytes, bytes]]:
    return [(b"content-length", str(length).encode())]


async def test_the_application_is_an_asgi_application(app: Kyoukai) -> None:
    exchange = await call(app, http_scope("/"))
    assert exchange.status == 200
    assert exchange.headers[b"content-type"] == b"text/plain; charset=utf-8"
    assert exchange.headers[b"content-length"] == b"5"
    assert exchange.bodies == [{"type": "http.response.body", "body": b"hello"}]
    adapter = app._asgi
    assert isinstance(adapter, ASGIAdapter) and adapter.app is app
    assert (await call(app, http_scope("/missing"))).status == 404
    assert app._asgi is adapter  # made once, on the first call


async def test_scope_fills_the_environ(app: Kyoukai) -> None:
    scope = http_scope(
        "/asgi-environ?a=1", scheme="https", http_version="2", client=("10.0.0.9", 4321)
    )
    exchange = await call(app, scope)
    assert exchange.status == 200
    assert json.loads(exchange.body) == {
        "SCRIPT_NAME": "",
        "PATH_INFO": "/asgi-environ",
        "QUERY_STRING": "a=1",
        "REMOTE_ADDR": "10.0.0.9",
        "REMOTE_PORT": "4321",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/2",
        "wsgi.url_scheme": "https",
        "url": "https://example.org/asgi-environ",
        "parent_is_base": True,
        "proto": None,
    }


@pytest.mark.parametrize("whole_path", [False, True], ids=["path-below-root", "whole-path"])
async def test_root_path_becomes_script_name(app: Kyoukai, whole_path: bool) -> None:
    path = "/api/asgi-environ" if whole_path else "/asgi-environ"
    scope = http_scope(path, root_path="/api")
    data = json.loads((await call(app, scope)).body)
    assert (data["SCRIPT_NAME"], data["PATH_INFO"]) == ("/api", "/asgi-environ")
    assert data["url"] == "http://example.org/api/asgi-environ"


async def test_percent_encoded_path_without_raw_path(app: Kyoukai) -> None:
    @app.route("/files/<name>")
    async def files(ctx: HTTPRequestContext, name: str) -> str:
        return name

    scope = http_scope("/files/a b%c")
    del scope["raw_path"]
    assert (await call(app, scope)).body == b"a b%c"


async def test_body_is_read_as_it_arrives(app: Kyoukai) -> None:
    scope = http_scope("/echo", "POST", [(b"transfer-encoding", b"chunked")])
    exchange = await call(app, scope, b"hel", b"lo ", b"world")
    assert exchange.body == b"hello world"
    assert exchange.headers[b"x-length"] == b"11"  # the body's length, as for the server


async def test_http2_body_without_length_is_read(app: Kyoukai) -> None:
    scope = http_scope("/echo", "POST", http_version="2")
    assert (await call(app, scope, b"abc", b"def")).body == b"abcdef"


async def test_declared_body_over_the_limit_is_413_without_the_application(
    app: Kyoukai,
) -> None:
    adapter = ASGIAdapter(app, max_body_size=10)
    exchange = await call(adapter, http_scope("/echo", "POST", body_headers(11)), b"x" * 11)
    assert exchange.status == 413
    assert exchange.headers[b"connection"] == b"close"
    assert exchange.body == b"413 Request Entity Too Large: body too large\n"


async def test_streamed_body_over_the_limit_is_413(app: Kyoukai) -> None:
    adapter = ASGIAdapter(app, max_body_size=10)
    scope = http_scope("/echo", "POST", http_version="2")
    exchange = Exchange(request_messages(b"x" * 6, b"x" * 6, b"never read"))
    await adapter(scope, exchange.receive, exchange.send)
    assert exchange.status == 413
    assert len(exchange.inbox) == 1  # it stopped reading past the limit


async def test_gzip_body_is_decoded_within_the_limit(app: Kyoukai) -> None:
    data = gzip.compress(b"a" * 1000)
    headers = [(b"content-encoding", b"gzip"), *body_headers(len(data))]
    exchange = await call(app, http_scope("/echo", "POST", headers), data[:10], data[10:])
    assert exchange.body == b"a" * 1000
    assert exchange.headers[b"x-length"] == b"1000"
    adapter = ASGIAdapter(app, max_body_size=999)
    assert (await call(adapter, http_scope("/echo", "POST", headers), data)).status == 413


async def test_unknown_content_coding_is_415(app: Kyoukai) -> None:
    headers = [(b"content-encoding", b"br"), *body_headers(3)]
    assert (await call(app, http_scope("/echo", "POST", headers), b"abc")).status == 415


async def test_client_leaving_before_the_body_ends_skips_the_application(app: Kyoukai) -> None:
    exchange = Exchange(request_messages(b"abc", b"more"))
    exchange.inbox.pop()
    exchange.leave.set()
    await app(http_scope("/echo", "POST", body_headers(7)), exchange.receive, exchange.send)
    assert exchange.sent == []


@pytest.mark.parametrize(
    ("path", "pieces"),
    [
        ("/stream", [b"part 0\n", b"part 1\n", b"part 2\n"]),
        ("/astream", [b"data: 0\n\n", b"data: 1\n\n", b"data: 2\n\n"]),
    ],
)
async def test_streamed_body_is_sent_piece_by_piece(
    app: Kyoukai, path: str, pieces: list[bytes]
) -> None:
    exchange = await call(app, http_scope(path))
    assert exchange.status == 200 and b"content-length" not in exchange.headers
    assert [m["body"] for m in exchange.bodies] == [*pieces, b""]
    assert [m.get("more_body", False) for m in exchange.bodies] == [True, True, True, False]


async def test_disconnect_stops_a_streaming_handler(app: Kyoukai, gates: Any) -> None:
    exchange = Exchange(request_messages())
    task = asyncio.create_task(app(http_scope("/events"), exchange.receive, exchange.send))
    async with asyncio.timeout(5):
        while not exchange.bodies:
            exchange.sent_one.clear()
            await exchange.sent_one.wait()
        assert exchange.bodies[0]["body"] == b"data: first\n\n"
        exchange.leave.set()
        await gates["events-closed"].wait()
        await task
    assert not exchange.complete


@pytest.mark.parametrize(("method", "pieces"), [("GET", ()), ("POST", (b"pay", b"load"))])
async def test_disconnect_cancels_a_handler_still_computing(
    app: Kyoukai,
    gates: Any,
    caplog: pytest.LogCaptureFixture,
    method: str,
    pieces: tuple[bytes, ...],
) -> None:
    exchange = Exchange(request_messages(*pieces))
    headers = body_headers(sum(map(len, pieces))) if pieces else []
    task = asyncio.create_task(
        app(http_scope("/forever", method, headers), exchange.receive, exchange.send)
    )
    async with asyncio.timeout(5):
        await gates["forever-started"].wait()  # with its body read, if it has one
        exchange.leave.set()  # the client leaves while the handler computes
        await gates["forever-ended"].wait()
        await task  # the application returns, as for any request
    assert exchange.sent == [] and not task.cancelled() and task.cancelling() == 0
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


async def test_failing_stream_leaves_the_response_incomplete(
    app: Kyoukai, caplog: pytest.LogCaptureFixture
) -> None:
    exchange = await call(app, http_scope("/broken-stream"))
    assert exchange.body == b"first" and not exchange.complete  # the server closes it
    assert "Error while streaming a response body" in caplog.text


async def test_head_sends_headers_without_a_body(app: Kyoukai) -> None:
    exchange = await call(app, http_scope("/", "HEAD"))
    assert exchange.status == 200 and exchange.headers[b"content-length"] == b"5"
    assert exchange.body == b""
    streamed = await call(app, http_scope("/stream", "HEAD"))
    assert streamed.body == b"" and streamed.complete


async def test_header_that_could_split_the_response_is_a_500(
    app: Kyoukai, caplog: pytest.LogCaptureFixture
) -> None:
    exchange = await call(app, http_scope("/bad-header/crlf"))
    assert exchange.status == 500
    assert not any(b"pwned" in value for value in exchange.headers.values())
    assert "Cannot send the response" in caplog.text


async def test_hop_by_hop_headers_are_the_servers(app: Kyoukai) -> None:
    exchange = await call(app, http_scope("/close"))
    assert exchange.body == b"bye" and b"connection" not in exchange.headers


async def test_unknown_scope_type_is_refused(app: Kyoukai) -> None:
    with pytest.raises(ValueError, match="cannot serve ASGI 'telepathy' scopes"):
        await app({"type": "telepathy"}, Exchange().receive, Exchange().send)


async def test_lifespan_makes_and_closes_the_base_context(app: Kyoukai) -> None:
    adapter = ASGIAdapter(app)
    lifespan = Lifespan(adapter)
    assert await lifespan.event("startup") == "lifespan.startup.complete"
    base = adapter.base_context
    assert isinstance(base, Context) and app.root.finalized
    closed: list[bool] = []
    base.add_teardown_callback(lambda: closed.append(True))
    assert await lifespan.event("shutdown") == "lifespan.shutdown.complete"
    assert closed == [True] and adapter.base_context is None


async def test_given_base_context_is_the_parent_and_stays_open(app: Kyoukai) -> None:
    @app.route("/resource")
    async def resource(ctx: HTTPRequestContext) -> str:
        return ctx.require_resource(str, "greeting")

    async with Context() as base:
        base.add_resource("hi there", "greeting")
        adapter = ASGIAdapter(app, base)
        lifespan = Lifespan(adapter)
        await lifespan.event("startup")
        assert (await call(adapter, http_scope("/resource"))).body == b"hi there"
        await lifespan.event("shutdown")
        assert base.loop is not None  # not closed by the adapter


async def test_without_lifespan_the_first_request_starts_the_application(app: Kyoukai) -> None:
    adapter = ASGIAdapter(app)
    first, second = await asyncio.gather(
        call(adapter, http_scope("/")), call(adapter, http_scope("/"))
    )
    assert first.status == second.status == 200
    assert isinstance(adapter.base_context, Context)
    other = ASGIAdapter(app)
    await other.ready()  # what a handler of another scope type calls first
    assert other.app is app and isinstance(other.base_context, Context)


class Greeter(Component):
    """A sibling component publishing a resource, as a database component would."""

    async def start(self, ctx: Context) -> None:
        ctx.add_resource("from a sibling", "greeting")


class Failing(Component):
    async def start(self, ctx: Context) -> None:
        raise RuntimeError("the database is down")


def config(app: Kyoukai, sibling: type[Component], **settings: Any) -> dict[str, Any]:
    return {
        "component": {
            "type": "asphalt.core:ContainerComponent",
            "components": {
                "sibling": {"type": sibling},
                "kyoukai": {"type": "kyoukai", "app": app, "port": 1, **settings},
            },
        }
    }


async def test_from_asphalt_config_starts_and_stops_the_components(app: Kyoukai) -> None:
    @app.route("/resource")
    async def resource(ctx: HTTPRequestContext) -> str:
        return ctx.require_resource(str, "greeting")

    adapter = ASGIAdapter.from_asphalt_config(config(app, Greeter, max_body_size=10))
    assert adapter.app is None
    lifespan = Lifespan(adapter)
    assert await lifespan.event("startup") == "lifespan.startup.complete"
    assert adapter.app is app
    assert (await call(adapter, http_scope("/resource"))).body == b"from a sibling"
    too_big = http_scope("/echo", "POST", body_headers(11))
    assert (await call(adapter, too_big, b"x" * 11)).status == 413
    base = adapter.base_context
    assert base is not None
    assert await lifespan.event("shutdown") == "lifespan.shutdown.complete"
    with pytest.raises(RuntimeError):
        base.require_resource(str, "greeting")  # the context is closed


async def test_failed_start_up_is_reported_to_the_server(
    app: Kyoukai, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="kyoukai")
    adapter = ASGIAdapter.from_asphalt_config(config(app, Failing))
    assert await Lifespan(adapter).event("startup") == "lifespan.startup.failed"
    assert "the database is down" in caplog.text


async def test_options_override_the_components_settings(app: Kyoukai) -> None:
    adapter = ASGIAdapter.from_asphalt_config(
        config(app, Greeter, max_body_size=10), max_body_size=20
    )
    lifespan = Lifespan(adapter)
    await lifespan.event("startup")
    body = b"x" * 15
    assert (await call(adapter, http_scope("/echo", "POST", body_headers(15)), body)).body == body
    await lifespan.event("shutdown")


def test_options_that_belong_to_the_server_are_refused(app: Kyoukai) -> None:
    with pytest.raises(TypeError, match=r"'keep_alive_timeout'.*set connection limits"):
        ASGIAdapter(app, keep_alive_timeout=3)
