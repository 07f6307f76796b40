"""HTTPRequestContext: the per-request asphalt context handed to every handler."""

from __future__ import annotations

import asyncio

from asphalt.core import Context, current_context
from werkzeug.exceptions import NotFound, abort
from werkzeug.routing import Rule
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from kyoukai import Blueprint, HTTPRequestContext, Route, TestKyoukai


class Database:
    def __init__(self, name: str) -> None:
        self.name = name


class Session:
    pass


def make_request(path: str = "/") -> Request:
    return Request(EnvironBuilder(path=path).get_environ())


async def test_construction_with_parent_and_request() -> None:
    request = make_request("/x")
    async with Context() as parent:
        ctx = HTTPRequestContext(parent, request)
        assert isinstance(ctx, Context)
        assert ctx.parent is parent
        assert ctx.request is request
        await ctx.close()


def test_construction_sets_what_asphalt_sets() -> None:
    # The context's own state is set without Context.__init__ where Asphalt's is known.
    from kyoukai import _context

    assert _context._LEAN_CONTEXTS
    parent = Context()
    ctx = HTTPRequestContext(parent, make_request())
    plain = Context()
    own = {name: value for name, value in vars(ctx).items() if name in vars(plain)}
    assert own == {**vars(plain), "_parent": parent}
    assert (ctx.app, ctx.route, ctx.bp, ctx.rule, ctx.exception, ctx.params) == (
        None,
        None,
        None,
        None,
        None,
        {},
    )


async def test_construction_sees_parent_resources() -> None:
    async with Context() as parent:
        parent.add_resource(Database("parent db"))
        ctx = HTTPRequestContext(parent, make_request())
        assert ctx.require_resource(Database).name == "parent db"
        await ctx.close()


async def test_attributes_inside_handler(app: TestKyoukai) -> None:
    api = Blueprint("api", prefix="/api")
    app.register_blueprint(api)
    seen: dict[str, object] = {}

    @api.route("/users/<int:id>")
    async def user(ctx, id):
        seen.update(
            ctx=ctx,
            app=ctx.app,
            request=ctx.request,
            params=ctx.params,
            route=ctx.route,
            bp=ctx.bp,
            rule=ctx.rule,
            environ=ctx.environ,
            proto=ctx.proto,
        )
        return ""

    resp = await app.inject_request({}, "/api/users/3?full=1")
    assert resp.status_code == 200
    assert isinstance(seen["ctx"], HTTPRequestContext)
    assert seen["app"] is app
    assert isinstance(seen["request"], Request)
    assert seen["request"].args["full"] == "1"
    assert seen["params"] == {"id": 3}
    assert seen["route"] is user
    assert isinstance(seen["route"], Route)
    assert seen["bp"] is api
    assert isinstance(seen["rule"], Rule)
    assert seen["rule"].rule == "/api/users/<int:id>"
    assert seen["environ"] is seen["request"].environ
    assert seen["environ"]["PATH_INFO"] == "/api/users/3"
    assert seen["proto"] is None


async def test_base_context_resource_reachable() -> None:
    async with Context() as base:
        base.add_resource(Database("main"))
        base.add_resource(Database("replica"), name="replica")
        app = TestKyoukai("resources", base_context=base)

        @app.route("/")
        async def index(ctx):
            main = ctx.require_resource(Database)
            replica = ctx.get_resource(Database, "replica")
            missing = ctx.get_resource(Session)
            return f"{main.name} {replica.name} {missing}"

        resp = await app.inject_request({}, "/")
    assert (resp.status_code, resp.get_data()) == (200, b"main replica None")


async def test_missing_resource_is_500(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        return ctx.require_resource(Session)

    resp = await app.inject_request({}, "/")
    assert resp.status_code == 500


async def test_request_scoped_teardown_runs_when_request_ends(app: TestKyoukai) -> None:
    events: list[str] = []

    @app.route("/")
    async def index(ctx):
        ctx.add_teardown_callback(lambda: events.append("torn down"))
        events.append("handler")
        return "done"

    resp = await app.inject_request({}, "/")
    assert resp.get_data() == b"done"
    assert events == ["handler", "torn down"]


async def test_teardown_runs_when_handler_fails(app: TestKyoukai) -> None:
    events: list[object] = []

    @app.route("/")
    async def index(ctx):
        ctx.add_teardown_callback(lambda: events.append("torn down"))
        raise RuntimeError("boom")

    resp = await app.inject_request({}, "/")
    assert resp.status_code == 500
    assert events == ["torn down"]


async def test_teardown_callback_gets_the_exception(app: TestKyoukai) -> None:
    received: list[object] = []

    @app.route("/<int:n>")
    async def index(ctx, n):
        ctx.add_teardown_callback(received.append, pass_exception=True)
        if n == 1:
            raise RuntimeError("boom")
        if n == 2:
            abort(404)
        return "ok"

    for n in (0, 1, 2):
        await app.inject_request({}, f"/{n}")
    assert received[0] is None
    assert isinstance(received[1], RuntimeError)
    assert isinstance(received[2], NotFound)


async def test_async_teardown_callback_awaited(app: TestKyoukai) -> None:
    events: list[str] = []

    async def teardown() -> None:
        events.append("async teardown")

    @app.route("/")
    async def index(ctx):
        ctx.add_teardown_callback(teardown)
        return ""

    await app.inject_request({}, "/")
    assert events == ["async teardown"]


async def test_request_scoped_resource_does_not_leak() -> None:
    async with Context() as base:
        app = TestKyoukai("scoped", base_context=base)
        contexts: list[HTTPRequestContext] = []

        @app.route("/")
        async def index(ctx):
            ctx.add_resource(Session())
            contexts.append(ctx)
            return "ok" if ctx.require_resource(Session) else "no"

        assert (await app.inject_request({}, "/")).get_data() == b"ok"
        assert (await app.inject_request({}, "/")).get_data() == b"ok"
        assert base.get_resource(Session) is None
        assert all(ctx.closed for ctx in contexts)


async def test_resource_factory_torn_down(app: TestKyoukai) -> None:
    events: list[str] = []

    def session_factory(ctx: Context) -> Session:
        ctx.add_teardown_callback(lambda: events.append("session closed"))
        return Session()

    @app.route("/")
    async def index(ctx):
        ctx.add_resource_factory(session_factory, [Session])
        ctx.require_resource(Session)
        events.append("used")
        return ""

    await app.inject_request({}, "/")
    assert events == ["used", "session closed"]


async def test_context_url_for_method_keyword(app: TestKyoukai) -> None:
    @app.route("/a", methods=["POST"])
    @app.route("/b")
    async def either(ctx):
        return ctx.url_for("test.either", method="POST")

    assert (await app.inject_request({}, "/b")).get_data() == b"/a"


async def test_context_class_is_used() -> None:
    class Tagged(HTTPRequestContext):
        tag = "tagged"

    custom = TestKyoukai("custom", context_class=Tagged)

    @custom.route("/")
    async def index(ctx):
        return ctx.tag

    assert (await custom.inject_request({}, "/")).get_data() == b"tagged"


async def test_concurrent_requests_keep_their_own_context(app: TestKyoukai) -> None:
    second_started = asyncio.Event()
    results: list[str] = []

    @app.route("/<name>")
    async def handler(ctx, name):
        if name == "first":
            await second_started.wait()
        else:
            second_started.set()
        ok = current_context() is ctx and ctx.params == {"name": name}
        results.append(name)
        return f"{name} {ok}"

    async with asyncio.timeout(5):
        first, second = await asyncio.gather(
            app.inject_request({}, "/first"), app.inject_request({}, "/second")
        )
    assert first.get_data() == b"first True"
    assert second.get_data() == b"second True"
    assert results == ["second", "first"]


async def test_teardown_of_context_returned_by_pre_hook(app: TestKyoukai) -> None:
    # Request Hooks: a pre hook may return "a new context"; resources and teardown callbacks
    # the handler adds to it must still be torn down when the request ends.
    events: list[str] = []

    @app.root.before_request
    async def swap(ctx):
        return HTTPRequestContext(ctx, ctx.request)

    @app.route("/")
    async def index(ctx):
        ctx.add_teardown_callback(lambda: events.append("torn down"))
        return "done"

    resp = await app.inject_request({}, "/")
    assert (resp.status_code, resp.get_data()) == (200, b"done")
    assert events == ["torn down"]
