"""Request bodies in the core: limits inherited down the blueprint tree, and the order in which
the application bounds, asks for and loads a streamed body (with a channel of its own, no
server)."""

from __future__ import annotations

from typing import Any

import pytest
from werkzeug.exceptions import RequestEntityTooLarge, Unauthorized

from kyoukai import Blueprint, HTTPRequestContext, Kyoukai, Route, RouteGroup, TestKyoukai
from kyoukai._body import BODY_ENVIRON_KEY, BodyInput
from kyoukai.routegroup import route
from kyoukai.wsgi import to_wsgi_environment


class FakeChannel:
    """A body channel that records what the application does with it."""

    def __init__(self, pieces: list[bytes], length: int | None = None) -> None:
        self.pieces = list(pieces)
        self.length = length
        self.log: list[str] = []

    def set_limit(self, limit: int) -> None:
        self.log.append(f"limit {limit}")
        if self.length is not None and self.length > limit:
            raise RequestEntityTooLarge()

    async def receive(self) -> bytes:
        self.log.append("receive")
        return self.pieces.pop(0) if self.pieces else b""


async def send(app: Kyoukai, path: str, channel: FakeChannel) -> tuple[int, bytes]:
    environ = to_wsgi_environment({"Host": "x"}, "POST", path, "1.1")
    environ[BODY_ENVIRON_KEY] = channel
    environ["wsgi.input"] = BodyInput(channel)
    response = await app.process_request(app.request_class(environ), None)
    return response.status_code, response.get_data()


@pytest.fixture
def tree() -> Kyoukai:
    app = Kyoukai("tree", max_body_size=1000)
    outer = Blueprint("outer", prefix="/outer", max_body_size=100)
    inner = Blueprint("inner", outer, prefix="/inner")

    @app.route("/root", methods=["POST"])
    async def root(ctx: HTTPRequestContext) -> bytes:
        return ctx.request.get_data()

    @inner.route("/inherits", methods=["POST"])
    async def inherits(ctx: HTTPRequestContext) -> bytes:
        return ctx.request.get_data()

    @inner.route("/own", methods=["POST"], max_body_size=5000, stream_body=True)
    async def own(ctx: HTTPRequestContext) -> bytes:
        ctx.request.environ[BODY_ENVIRON_KEY].log.append("handler")
        return b"|".join([chunk async for chunk in ctx.request.iter_body()])  # type: ignore[attr-defined]

    @outer.before_request
    async def refuse(ctx: HTTPRequestContext) -> None:
        ctx.request.environ[BODY_ENVIRON_KEY].log.append("hook")
        if ctx.request.args.get("refuse"):
            raise Unauthorized()

    app.register_blueprint(outer)
    return app


def test_nearest_limit_wins(tree: Kyoukai) -> None:
    routes = {r.__name__: r for r in tree.root.tree_routes}
    assert routes["root"].body_limit() == 1000
    assert routes["inherits"].body_limit() == 100  # from its parent blueprint
    assert routes["own"].body_limit() == 5000
    assert Route(lambda ctx: None).body_limit() is None  # the server's


def test_route_group_takes_a_limit_as_class_keyword() -> None:
    class Uploads(RouteGroup, prefix="/up", max_body_size=4096):
        @route("/big", methods=["POST"], max_body_size=1 << 30, stream_body=True)
        async def big(self, ctx: HTTPRequestContext) -> str:
            return "big"

        @route("/", methods=["POST"])
        async def small(self, ctx: HTTPRequestContext) -> str:
            return "small"

    app = Kyoukai("groups")
    bp = app.add_route_group(Uploads)
    limits = {r.__name__: (r.body_limit(), r.stream_body) for r in bp.routes}
    assert limits == {"big": (1 << 30, True), "small": (4096, False)}


@pytest.mark.parametrize(("value", "error"), [(0, ValueError), ("1", TypeError), (True, TypeError)])
def test_bad_limit_is_refused(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error, match="max_body_size"):
        Blueprint("bad", max_body_size=value)
    with pytest.raises(error, match="max_body_size"):
        Route(lambda ctx: None, max_body_size=value)


async def test_body_is_bounded_then_hooks_then_loaded(tree: Kyoukai) -> None:
    channel = FakeChannel([b"ab", b"cd"])
    assert await send(tree, "/outer/inner/inherits", channel) == (200, b"abcd")
    assert channel.log == ["limit 100", "hook", "receive", "receive", "receive"]


async def test_streaming_route_reads_in_its_handler(tree: Kyoukai) -> None:
    channel = FakeChannel([b"ab", b"cd"])
    assert await send(tree, "/outer/inner/own", channel) == (200, b"ab|cd")
    assert channel.log == ["limit 5000", "hook", "handler", "receive", "receive", "receive"]


async def test_refusing_hook_leaves_body_unasked(tree: Kyoukai) -> None:
    channel = FakeChannel([b"ab"])
    status, _ = await send(tree, "/outer/inner/own?refuse=1", channel)
    assert (status, channel.log) == (401, ["limit 5000", "hook"])


async def test_declared_length_over_limit_is_413_before_hooks(tree: Kyoukai) -> None:
    channel = FakeChannel([b"x" * 200], length=200)
    status, _ = await send(tree, "/outer/inner/inherits", channel)
    assert (status, channel.log) == (413, ["limit 100"])


async def test_unknown_route_never_asks_for_body(tree: Kyoukai) -> None:
    channel = FakeChannel([b"ab"])
    status, _ = await send(tree, "/nowhere", channel)
    assert (status, channel.log) == (404, [])


async def test_read_async_on_in_memory_body() -> None:
    app = TestKyoukai("memory")

    @app.route("/", methods=["POST"])
    async def index(ctx: HTTPRequestContext) -> str:
        request: Any = ctx.request
        first = await request.read_async(to_end=False)
        rest = await request.read_async(to_end=False)
        whole = await request.read_async()
        pieces = [chunk async for chunk in request.iter_body()]
        return f"{first!r} {rest!r} {whole!r} {pieces!r}"

    response = await app.inject_request({}, "/", "POST", b"body")
    assert response.get_data() == b"b'body' b'' b'body' []"


async def test_test_client_bounds_bodies_as_a_server_does() -> None:
    app = TestKyoukai("client", max_body_size=4)
    uploads = Blueprint("uploads", prefix="/up", max_body_size=8)

    @app.route("/", methods=["POST"])
    async def index(ctx: HTTPRequestContext) -> bytes:
        return ctx.request.get_data()

    @uploads.route("/", methods=["POST"], stream_body=True)
    async def streamed(ctx: HTTPRequestContext) -> bytes:
        return b"".join([chunk async for chunk in ctx.request.iter_body()])  # type: ignore[attr-defined]

    @uploads.errorhandler(413)
    async def too_large(ctx: HTTPRequestContext, exc: Exception) -> tuple[str, int]:
        return "uploads take 8 bytes", 413

    app.register_blueprint(uploads)
    assert (await app.inject_request({}, "/", "POST", b"1234")).get_data() == b"1234"
    assert (await app.inject_request({}, "/", "POST", b"12345")).status_code == 413
    assert (await app.inject_request({}, "/up/", "POST", b"12345678")).get_data() == b"12345678"
    refused = await app.inject_request({}, "/up/", "POST", b"123456789")
    assert (refused.status_code, refused.get_data()) == (413, b"uploads take 8 bytes")
