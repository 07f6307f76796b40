"""Routes: argument conversion, hooks, paths, endpoints and invocation.

This module deliberately does not use ``from __future__ import annotations``: the annotations
on handlers below are converters, and here they are evaluated objects. One test covers
string annotations separately.
"""

from typing import Optional

import pytest
from asphalt.core import Context
from werkzeug.exceptions import abort
from werkzeug.routing import Map
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

from kyoukai import HTTPRequestContext, Route, TestKyoukai


async def shout(value: str) -> str:
    """An awaitable converter."""
    return value.upper() + "!"


def positive(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("must be positive")
    return number


class Lookup:
    """A converter object: callable, but not a function."""

    def __call__(self, value: str) -> str:
        return f"looked up {value}"


class AsyncLookup:
    """An async callable converter object."""

    async def __call__(self, value: str) -> str:
        return f"awaited {value}"


lookup = Lookup()
async_lookup = AsyncLookup()


async def test_annotated_param_is_converted(app: TestKyoukai) -> None:
    @app.route("/users/<id>")
    async def user(ctx, id: int):
        return f"{type(id).__name__} {id + 1}"

    resp = await app.inject_request({}, "/users/41")
    assert (resp.status_code, resp.get_data()) == (200, b"int 42")


async def test_failed_conversion_is_400(app: TestKyoukai) -> None:
    @app.route("/users/<id>")
    async def user(ctx, id: int):
        return "never"

    resp = await app.inject_request({}, "/users/abc")
    assert resp.status_code == 400


async def test_failed_conversion_goes_to_400_handler(app: TestKyoukai) -> None:
    @app.route("/users/<id>")
    async def user(ctx, id: positive):
        return "never"

    @app.root.errorhandler(400)
    async def bad(ctx, exc):
        return "bad id", 400

    resp = await app.inject_request({}, "/users/-3")
    assert (resp.status_code, resp.get_data()) == (400, b"bad id")


async def test_awaitable_converter_is_awaited(app: TestKyoukai) -> None:
    @app.route("/say/<word>")
    async def say(ctx, word: shout):
        return word

    resp = await app.inject_request({}, "/say/hello")
    assert (resp.status_code, resp.get_data()) == (200, b"HELLO!")


async def test_custom_callable_converter(app: TestKyoukai) -> None:
    @app.route("/n/<n>")
    async def n(ctx, n: positive):
        return str(n * 2)

    assert (await app.inject_request({}, "/n/21")).get_data() == b"42"


async def test_argument_checking_disabled(app: TestKyoukai) -> None:
    @app.route("/users/<id>", do_argument_checking=False)
    async def user(ctx, id: int):
        return type(id).__name__ + " " + id

    resp = await app.inject_request({}, "/users/abc")
    assert (resp.status_code, resp.get_data()) == (200, b"str abc")


async def test_werkzeug_converter_without_annotation(app: TestKyoukai) -> None:
    @app.route("/users/<int:id>")
    async def user(ctx, id):
        return type(id).__name__

    assert (await app.inject_request({}, "/users/3")).get_data() == b"int"


async def test_unannotated_params_are_left_alone(app: TestKyoukai) -> None:
    @app.route("/<a>/<b>")
    async def pair(ctx: HTTPRequestContext, a, b: str):
        return f"{a}-{b}"

    assert (await app.inject_request({}, "/x/y")).get_data() == b"x-y"


async def test_string_annotations_are_resolved(app: TestKyoukai) -> None:
    @app.route("/users/<id>")
    async def user(ctx: "HTTPRequestContext", id: "int"):
        return str(id + 1)

    resp = await app.inject_request({}, "/users/1")
    assert (resp.status_code, resp.get_data()) == (200, b"2")


async def test_params_are_keyword_arguments(app: TestKyoukai) -> None:
    @app.route("/<first>/<second>")
    async def kwonly(ctx, *, second, first):
        return f"{first},{second}"

    assert (await app.inject_request({}, "/1/2")).get_data() == b"1,2"


async def test_var_keyword_handler_gets_params(app: TestKyoukai) -> None:
    @app.route("/<a>/<int:b>")
    async def catch_all(ctx, **params):
        return ",".join(f"{k}={v!r}" for k, v in sorted(params.items()))

    assert (await app.inject_request({}, "/x/2")).get_data() == b"a='x',b=2"


async def test_plain_function_with_params(app: TestKyoukai) -> None:
    @app.route("/<int:a>")
    def double(ctx, a):
        return str(a * 2)

    assert (await app.inject_request({}, "/21")).get_data() == b"42"


async def test_route_hooks_run_after_blueprint_hooks(app: TestKyoukai) -> None:
    order: list[str] = []

    @app.root.before_request
    async def bp_pre(ctx):
        order.append("bp pre")

    @app.root.after_request
    async def bp_post(ctx, response):
        order.append("bp post")

    @app.route("/")
    async def index(ctx):
        order.append("handler")
        return "ok"

    @index.before_request
    async def route_pre(ctx):
        order.append("route pre")

    @index.after_request
    async def route_post(ctx, response):
        order.append("route post")

    resp = await app.inject_request({}, "/")
    assert resp.get_data() == b"ok"
    assert order == ["bp pre", "route pre", "handler", "bp post", "route post"]


async def test_should_invoke_hooks_false(app: TestKyoukai) -> None:
    order: list[str] = []

    @app.root.before_request
    async def pre(ctx):
        order.append("pre")

    @app.route("/", should_invoke_hooks=False)
    async def index(ctx):
        return "no hooks"

    resp = await app.inject_request({}, "/")
    assert resp.get_data() == b"no hooks"
    assert order == []


async def test_pre_hook_modifying_context(app: TestKyoukai) -> None:
    @app.root.before_request
    async def tag(ctx):
        ctx.user = "alice"

    @app.route("/")
    async def index(ctx):
        return ctx.user

    assert (await app.inject_request({}, "/")).get_data() == b"alice"


async def test_pre_hook_returning_new_context(app: TestKyoukai) -> None:
    replacement: list[HTTPRequestContext] = []

    @app.root.before_request
    async def swap(ctx):
        new = HTTPRequestContext(ctx, ctx.request)
        new.marker = "new"
        replacement.append(new)
        return new

    @app.route("/")
    async def index(ctx):
        return "same" if ctx is replacement[0] else "different"

    assert (await app.inject_request({}, "/")).get_data() == b"same"


async def test_plain_function_hooks(app: TestKyoukai) -> None:
    def pre(ctx):
        ctx.seen = "sync pre"

    def post(ctx, response):
        response.headers["X-Post"] = "sync"

    app.root.add_hook("pre", pre)
    app.root.add_hook("post", post)

    @app.route("/")
    async def index(ctx):
        return ctx.seen

    resp = await app.inject_request({}, "/")
    assert resp.get_data() == b"sync pre"
    assert resp.headers["X-Post"] == "sync"


async def test_post_hook_gets_wrapped_response(app: TestKyoukai) -> None:
    received: list[object] = []

    @app.root.after_request
    async def post(ctx, response):
        received.append(response)

    @app.route("/")
    async def index(ctx):
        return "text", 201

    resp = await app.inject_request({}, "/")
    assert (resp.status_code, resp.get_data()) == (201, b"text")
    assert len(received) == 1
    assert isinstance(received[0], Response)
    assert received[0].status_code == 201


async def test_post_hook_replacing_response(app: TestKyoukai) -> None:
    @app.root.after_request
    async def replace(ctx, response):
        return Response("replaced " + response.get_data(as_text=True), status=202)

    @app.route("/")
    async def index(ctx):
        return "original"

    resp = await app.inject_request({}, "/")
    assert (resp.status_code, resp.get_data()) == (202, b"replaced original")


async def test_post_hooks_chain(app: TestKyoukai) -> None:
    @app.root.after_request
    async def first(ctx, response):
        return Response(response.get_data(as_text=True) + " first")

    @app.root.after_request
    async def second(ctx, response):
        response.set_data(response.get_data() + b" second")

    @app.route("/")
    async def index(ctx):
        return "body"

    assert (await app.inject_request({}, "/")).get_data() == b"body first second"


async def test_failing_pre_hook_is_500(app: TestKyoukai) -> None:
    called: list[bool] = []

    @app.root.before_request
    async def broken(ctx):
        raise RuntimeError("hook failed")

    @app.route("/")
    async def index(ctx):
        called.append(True)
        return ""

    resp = await app.inject_request({}, "/")
    assert resp.status_code == 500
    assert called == []


async def test_failing_post_hook_is_500_and_handled(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        return "fine"

    @index.after_request
    async def broken(ctx, response):
        raise RuntimeError("hook failed")

    @app.root.errorhandler(500)
    async def e500(ctx, exc):
        return "hook error", 500

    resp = await app.inject_request({}, "/")
    assert (resp.status_code, resp.get_data()) == (500, b"hook error")


async def test_route_hook_method(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        return ctx.from_hook

    async def pre(ctx):
        ctx.from_hook = "added"

    index.add_hook("pre", pre)
    assert list(index.get_hooks("pre")) == [pre]
    assert list(index.get_hooks("post")) == []
    assert (await app.inject_request({}, "/")).get_data() == b"added"


async def test_add_path_manual_mode(app: TestKyoukai) -> None:
    @app.route("/users/<int:id>")
    async def handler(ctx, id):
        return f"{ctx.request.path} {id}"

    handler.add_path("/users/<int:id>/profile")
    handler.add_path("/members/<int:id>", methods=["POST"])
    assert (await app.inject_request({}, "/users/2")).get_data() == b"/users/2 2"
    assert (await app.inject_request({}, "/users/2/profile")).get_data() == b"/users/2/profile 2"
    resp = await app.inject_request({}, "/members/3", method="POST")
    assert (resp.status_code, resp.get_data()) == (200, b"/members/3 3")
    assert (await app.inject_request({}, "/members/3")).status_code == 405


def test_route_constructor_defaults() -> None:
    async def handler(ctx):
        return ""

    route = Route(handler)
    assert list(route.get_hooks("pre")) == []
    assert list(route.get_hooks("post")) == []


def test_check_route_args() -> None:
    async def handler(ctx, id, name="x"):
        return ""

    route = Route(handler)
    route.check_route_args({"id": 1})
    route.check_route_args({"id": 1, "name": "y"})
    with pytest.raises(TypeError):
        route.check_route_args({"id": 1, "unknown": 2})
    with pytest.raises(TypeError):
        route.check_route_args({})


def test_check_route_args_no_params() -> None:
    async def handler(ctx):
        return ""

    route = Route(handler)
    route.check_route_args()
    route.check_route_args({})
    with pytest.raises(TypeError):
        route.check_route_args({"extra": 1})


async def test_route_with_unused_path_param_fails_at_finalize(app: TestKyoukai) -> None:
    @app.route("/<name>")
    async def handler(ctx):
        return "never"

    with pytest.raises(TypeError, match="add them to its signature"):
        app.finalize()


async def test_route_with_missing_path_param_fails_at_finalize(app: TestKyoukai) -> None:
    @app.route("/fixed")
    async def handler(ctx, name):
        return "never"

    with pytest.raises(TypeError, match="name"):
        app.finalize()


async def test_unchecked_route_skips_finalize_check(app: TestKyoukai) -> None:
    @app.route("/<name>", do_argument_checking=False)
    async def handler(ctx):
        return "never"

    assert isinstance(app.finalize(), Map)
    # The handler cannot take the parameter: a programming error, so a 500.
    assert (await app.inject_request({}, "/x")).status_code == 500


async def test_custom_endpoint_route() -> None:
    async def handler(ctx):
        return ""

    assert Route(handler, endpoint="custom.name").get_endpoint_name() == "custom.name"


async def test_invoke_directly(app: TestKyoukai) -> None:
    @app.route("/<int:id>")
    async def handler(ctx, id):
        return f"invoked {id}"

    app.finalize()
    request = Request(EnvironBuilder(path="/5").get_environ())
    async with Context() as parent:
        ctx = HTTPRequestContext(parent, request)
        result = await handler.invoke(ctx, params={"id": 5})
    assert isinstance(result, Response)
    assert result.get_data() == b"invoked 5"


async def test_pre_hook_returning_non_context_is_500(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        return "never"

    @index.before_request
    def bad(ctx):
        return "not a context"

    assert (await app.inject_request({}, "/")).status_code == 500


async def test_converter_raising_http_exception_gives_its_status(app: TestKyoukai) -> None:
    async def load_user(value: str) -> str:
        if value != "alice":
            abort(404)
        return value.title()

    @app.route("/users/<name>")
    async def user(ctx, name: load_user):
        return name

    assert (await app.inject_request({}, "/users/alice")).get_data() == b"Alice"
    assert (await app.inject_request({}, "/users/bob")).status_code == 404


async def test_typing_annotations_are_not_converters(app: TestKyoukai) -> None:
    @app.route("/<a>/<b>")
    async def typed(ctx, a: Optional[str], b: "list[int] | None" = None):  # noqa: UP045
        return f"{a} {b}"

    assert (await app.inject_request({}, "/x/y")).get_data() == b"x y"


async def test_bool_annotation(app: TestKyoukai) -> None:
    @app.route("/flag/<value>")
    async def flag(ctx, value: bool):
        return repr(value)

    assert (await app.inject_request({}, "/flag/true")).get_data() == b"True"
    assert (await app.inject_request({}, "/flag/off")).get_data() == b"False"
    assert (await app.inject_request({}, "/flag/maybe")).status_code == 400


async def test_reverse_hooks_include_route_hooks(app: TestKyoukai) -> None:
    # Route(reverse_hooks=True): "the request hooks should be reversed (i.e child to parent)";
    # the route is the innermost level, so its hooks run first when reversed.
    order: list[str] = []

    @app.root.before_request
    async def first(ctx):
        order.append("first")

    @app.root.before_request
    async def second(ctx):
        order.append("second")

    @app.route("/", reverse_hooks=True)
    async def index(ctx):
        order.append("handler")
        return ""

    @index.before_request
    async def route_pre(ctx):
        order.append("route")

    await app.inject_request({}, "/")
    assert order == ["route", "second", "first", "handler"]


async def test_callable_object_converter(app: TestKyoukai) -> None:
    # Converters are "any callable" (changelog 1.6.0) and "can be awaitables" (1.8.3).
    @app.route("/sync/<key>")
    async def sync(ctx: HTTPRequestContext, key: lookup):
        return key

    @app.route("/async/<key>")
    async def asynchronous(ctx: HTTPRequestContext, key: async_lookup):
        return key

    assert (await app.inject_request({}, "/sync/k")).get_data() == b"looked up k"
    assert (await app.inject_request({}, "/async/k")).get_data() == b"awaited k"


async def test_optional_param_with_default_across_paths(app: TestKyoukai) -> None:
    @app.route("/list")
    @app.route("/list/<page>")
    async def listing(ctx, page: int = 1):
        return str(page * 10)

    assert (await app.inject_request({}, "/list")).get_data() == b"10"
    assert (await app.inject_request({}, "/list/3")).get_data() == b"30"
    assert (await app.inject_request({}, "/list/x")).status_code == 400


async def test_methods_are_case_insensitive(app: TestKyoukai) -> None:
    @app.route("/post", methods=["post"])
    async def post(ctx):
        return "posted"

    assert (await app.inject_request({}, "/post", method="POST")).get_data() == b"posted"
    resp = await app.inject_request({}, "/post", method="HEAD")
    assert resp.status_code == 405
    assert {m.strip() for m in resp.headers["Allow"].split(",")} - {"OPTIONS"} == {"POST"}
