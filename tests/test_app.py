"""The application: request processing, errors, OPTIONS/405, redirects, options, logging."""

from __future__ import annotations

import asyncio
import logging
import re

import pytest
from asphalt.core import Context
from werkzeug.exceptions import HTTPException, InternalServerError, NotFound, abort
from werkzeug.routing import Map
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request, Response

import kyoukai
from kyoukai import Blueprint, HTTPRequestContext, Kyoukai, Route, TestKyoukai


def allowed(resp: Response) -> set[str]:
    """The methods of an ``Allow`` header, without ``OPTIONS`` (which may or may not be listed)."""
    return {m.strip() for m in resp.headers["Allow"].split(",")} - {"OPTIONS"}


def default_500_body() -> bytes:
    return InternalServerError().get_response().get_data()


async def test_route_returns_string_body(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        return "Hello, world!"

    resp = await app.inject_request({}, "/")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert resp.get_data() == b"Hello, world!"


async def test_app_route_returns_route(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        return ""

    assert isinstance(index, Route)


async def test_plain_function_handler(app: TestKyoukai) -> None:
    @app.route("/")
    def index(ctx):
        return "sync"

    resp = await app.inject_request({}, "/")
    assert resp.status_code == 200
    assert resp.get_data() == b"sync"


async def test_unknown_path_is_404(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        return ""

    resp = await app.inject_request({}, "/nope")
    assert resp.status_code == 404
    assert resp.get_data() == NotFound().get_response().get_data()


async def test_empty_app_is_404(app: TestKyoukai) -> None:
    resp = await app.inject_request({}, "/")
    assert resp.status_code == 404


async def test_exception_in_handler_is_500(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        raise RuntimeError("boom")

    resp = await app.inject_request({}, "/")
    assert resp.status_code == 500
    assert resp.get_data() == default_500_body()


async def test_exception_in_handler_goes_to_500_handler(app: TestKyoukai) -> None:
    seen: list[HTTPException] = []

    @app.route("/")
    async def index(ctx):
        raise RuntimeError("boom")

    @app.root.errorhandler(500)
    async def handle_500(ctx, exc):
        seen.append(exc)
        return "handled", 500

    resp = await app.inject_request({}, "/")
    assert resp.status_code == 500
    assert resp.get_data() == b"handled"
    assert len(seen) == 1
    assert isinstance(seen[0], HTTPException)
    assert seen[0].code == 500


async def test_abort_in_handler_gives_its_status(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        abort(403)

    resp = await app.inject_request({}, "/")
    assert resp.status_code == 403


async def test_abort_goes_to_handler_for_its_code(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        abort(404)

    @app.root.errorhandler(404)
    async def handle_404(ctx, exc):
        return f"no {exc.code}", 404

    resp = await app.inject_request({}, "/")
    assert resp.status_code == 404
    assert resp.get_data() == b"no 404"


async def test_abort_with_custom_response(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        abort(Response("short and stout", status=418))

    resp = await app.inject_request({}, "/")
    assert resp.status_code == 418
    assert resp.get_data() == b"short and stout"


async def test_bad_request_key_error_is_400(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        return ctx.request.args["missing"]

    resp = await app.inject_request({}, "/")
    assert resp.status_code == 400


async def test_bad_request_key_error_goes_to_400_handler(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        return ctx.request.args["missing"]

    @app.root.errorhandler(400)
    async def handle_400(ctx, exc):
        return "bad", 400

    resp = await app.inject_request({}, "/")
    assert resp.status_code == 400
    assert resp.get_data() == b"bad"


async def test_error_handler_raising_is_still_500(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        raise RuntimeError("first")

    @app.root.errorhandler(500)
    async def handle_500(ctx, exc):
        raise RuntimeError("second")

    resp = await app.inject_request({}, "/")
    assert resp.status_code == 500
    assert resp.get_data() == default_500_body()


async def test_error_in_404_handler_goes_to_500_handler(app: TestKyoukai) -> None:
    @app.root.errorhandler(404)
    async def handle_404(ctx, exc):
        raise RuntimeError("broken 404 page")

    @app.root.errorhandler(500)
    async def handle_500(ctx, exc):
        return "500 page", 500

    resp = await app.inject_request({}, "/missing")
    assert resp.status_code == 500
    assert resp.get_data() == b"500 page"


async def test_error_handler_aborting_gives_that_status(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        abort(404)

    @app.root.errorhandler(404)
    async def handle_404(ctx, exc):
        abort(410)

    resp = await app.inject_request({}, "/")
    assert resp.status_code == 410


async def test_error_handler_sees_params(app: TestKyoukai) -> None:
    @app.route("/users/<int:id>")
    async def user(ctx, id):
        abort(404)

    @app.root.errorhandler(404)
    async def handle_404(ctx, exc):
        return f"no user {ctx.params['id']}", 404

    resp = await app.inject_request({}, "/users/7")
    assert resp.status_code == 404
    assert resp.get_data() == b"no user 7"


async def test_error_handler_exception_argument_is_not_converted(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        abort(404)

    @app.root.errorhandler(404)
    async def handle_404(ctx, exc: int):
        # An annotation on an error handler is never used as a converter.
        return type(exc).__name__, 404

    resp = await app.inject_request({}, "/")
    assert resp.status_code == 404
    assert resp.get_data() == b"NotFound"


async def test_errorhandler_range_excludes_end(app: TestKyoukai) -> None:
    @app.route("/<int:code>")
    async def fail(ctx, code):
        abort(code)

    @app.root.errorhandler(400, 414)
    async def handle(ctx, exc):
        return f"handled {exc.code}", exc.code

    for code in (400, 404, 413):
        resp = await app.inject_request({}, f"/{code}")
        assert resp.status_code == code
        assert resp.get_data() == f"handled {code}".encode()
    resp = await app.inject_request({}, "/414")
    assert resp.status_code == 414
    assert resp.get_data() != b"handled 414"


async def test_errorhandler_range_with_step(app: TestKyoukai) -> None:
    @app.route("/<int:code>")
    async def fail(ctx, code):
        abort(code)

    @app.root.errorhandler(400, 410, 2)
    async def handle(ctx, exc):
        return "even", exc.code

    for code in (400, 404, 408):
        resp = await app.inject_request({}, f"/{code}")
        assert (resp.status_code, resp.get_data()) == (code, b"even")
    for code in (401, 403, 409):
        resp = await app.inject_request({}, f"/{code}")
        assert resp.status_code == code
        assert resp.get_data() != b"even"


async def test_stacked_errorhandlers(app: TestKyoukai) -> None:
    @app.route("/<int:code>")
    async def fail(ctx, code):
        abort(code)

    @app.root.errorhandler(502)
    @app.root.errorhandler(400, 414)
    async def handle_many(ctx, exc):
        return "many", exc.code

    for code in (400, 413, 502):
        resp = await app.inject_request({}, f"/{code}")
        assert (resp.status_code, resp.get_data()) == (code, b"many")
    resp = await app.inject_request({}, "/500")
    assert resp.status_code == 500
    assert resp.get_data() == default_500_body()


async def test_options_is_automatic(app: TestKyoukai) -> None:
    called = []

    @app.route("/thing", methods=["GET", "POST"])
    async def thing(ctx):
        called.append(ctx.request.method)
        return "thing"

    resp = await app.inject_request({}, "/thing", method="OPTIONS")
    assert resp.status_code == 200
    assert allowed(resp) == {"GET", "HEAD", "POST"}
    assert resp.get_data() == b""
    assert called == []


async def test_options_without_trailing_slash_redirects_like_get(app: TestKyoukai) -> None:
    # Automatic OPTIONS answers as if every route accepted OPTIONS: GET /dir for a rule /dir/
    # is a 307 to /dir/, and so is OPTIONS /dir.
    @app.route("/dir/")
    async def directory(ctx):
        return "dir"

    resp = await app.inject_request({"Host": "example.com"}, "/dir", method="OPTIONS")
    assert resp.status_code == 307
    assert resp.headers["Location"] == "http://example.com/dir/"


async def test_options_on_unknown_path_is_404(app: TestKyoukai) -> None:
    @app.route("/thing")
    async def thing(ctx):
        return ""

    resp = await app.inject_request({}, "/other", method="OPTIONS")
    assert resp.status_code == 404


async def test_wrong_method_is_405_with_allow(app: TestKyoukai) -> None:
    @app.route("/thing", methods=["POST"])
    async def thing(ctx):
        return ""

    resp = await app.inject_request({}, "/thing", method="GET")
    assert resp.status_code == 405
    assert allowed(resp) == {"POST"}


async def test_default_methods_are_get_and_head(app: TestKyoukai) -> None:
    @app.route("/thing")
    async def thing(ctx):
        return "x"

    assert (await app.inject_request({}, "/thing", method="HEAD")).status_code == 200
    resp = await app.inject_request({}, "/thing", method="POST")
    assert resp.status_code == 405
    assert allowed(resp) == {"GET", "HEAD"}


async def test_405_goes_to_405_handler(app: TestKyoukai) -> None:
    @app.route("/thing", methods=["POST"])
    async def thing(ctx):
        return ""

    @app.root.errorhandler(405)
    async def handle_405(ctx, exc):
        return "wrong method", 405

    resp = await app.inject_request({}, "/thing")
    assert resp.status_code == 405
    assert resp.get_data() == b"wrong method"


async def test_strict_slash_redirects(app: TestKyoukai) -> None:
    @app.route("/dir/")
    async def directory(ctx):
        return "dir"

    resp = await app.inject_request({"Host": "example.com"}, "/dir?x=1")
    assert resp.status_code == 307
    assert resp.headers["Location"] == "http://example.com/dir/?x=1"
    ok = await app.inject_request({"Host": "example.com"}, "/dir/")
    assert (ok.status_code, ok.get_data()) == (200, b"dir")


async def test_finalize_returns_map_with_options(app: TestKyoukai) -> None:
    @app.route("/dir/")
    async def directory(ctx):
        return "dir"

    result = app.finalize(strict_slashes=False)
    assert isinstance(result, Map)
    resp = await app.inject_request({}, "/dir")
    assert (resp.status_code, resp.get_data()) == (200, b"dir")


async def test_route_after_finalize_raises_with_advice(app: TestKyoukai) -> None:
    app.finalize()
    with pytest.raises(RuntimeError, match="finalize"):

        @app.route("/late")
        async def late(ctx):
            return ""


async def test_blueprint_after_finalize_raises(app: TestKyoukai) -> None:
    app.finalize()
    bp = Blueprint("late")
    with pytest.raises(RuntimeError, match="finalize"):
        app.register_blueprint(bp)


async def test_log_route_logs_one_info_line(
    app: TestKyoukai, caplog: pytest.LogCaptureFixture
) -> None:
    @app.route("/logged", methods=["POST"])
    async def logged(ctx):
        return "", 201

    with caplog.at_level(logging.INFO, logger="kyoukai"):
        await app.inject_request({}, "/logged", method="POST")
    lines = [r for r in caplog.records if r.name == "kyoukai" and r.levelno == logging.INFO]
    assert len(lines) == 1
    message = lines[0].getMessage()
    assert "POST" in message
    assert "/logged" in message
    assert "201" in message
    assert re.search(r"\d+(\.\d+)?\s?(ns|µs|us|ms|s)\b", message)


async def test_log_route_logs_errors_with_their_status(
    app: TestKyoukai, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="kyoukai"):
        await app.inject_request({}, "/missing")
    lines = [r for r in caplog.records if r.name == "kyoukai" and r.levelno == logging.INFO]
    assert len(lines) == 1
    assert "/missing" in lines[0].getMessage()
    assert "404" in lines[0].getMessage()


async def test_access_log_false_silences_one_application(
    app: TestKyoukai, caplog: pytest.LogCaptureFixture
) -> None:
    app.access_log = False
    with caplog.at_level(logging.INFO, logger="kyoukai"):
        response = await app.inject_request({}, "/missing")
    assert response.status_code == 404
    assert not [r for r in caplog.records if r.name == "kyoukai" and r.levelno == logging.INFO]


class MyRequest(Request):
    pass


class MyResponse(Response):
    pass


class MyContext(HTTPRequestContext):
    pass


async def test_constructor_accepts_every_option() -> None:
    loop = asyncio.get_running_loop()
    app = TestKyoukai(
        "full",
        server_name="example.com",
        host_matching=False,
        application_root="/",
        loop=loop,
        request_class=MyRequest,
        response_class=MyResponse,
        context_class=MyContext,
    )
    assert app.request_class is MyRequest
    assert app.response_class is MyResponse
    seen: list[object] = []

    @app.route("/")
    async def index(ctx):
        seen.append(type(ctx))
        seen.append(type(ctx.request))
        return "custom"

    resp = await app.inject_request({"Host": "example.com"}, "/")
    assert seen == [MyContext, MyRequest]
    assert type(resp) is MyResponse
    assert resp.get_data() == b"custom"


async def test_custom_response_class_used_for_errors() -> None:
    app = TestKyoukai("errors", response_class=MyResponse)

    @app.route("/")
    async def index(ctx):
        raise RuntimeError

    @app.root.errorhandler(500)
    async def handle_500(ctx, exc):
        return "oops", 500

    resp = await app.inject_request({}, "/")
    assert type(resp) is MyResponse
    assert resp.status_code == 500


async def test_default_classes() -> None:
    app = Kyoukai("defaults")
    # Werkzeug's request, subclassed for asynchronous body reading (read_async, iter_body).
    assert app.request_class is kyoukai.Request
    assert issubclass(app.request_class, Request)
    assert app.response_class is Response
    assert isinstance(app.root, Blueprint)


async def test_application_name_is_root_endpoint_prefix(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        return ctx.url_for("test.index")

    resp = await app.inject_request({}, "/")
    assert resp.get_data() == b"/"


async def test_host_option_sets_root_host() -> None:
    app = Kyoukai("hosted", host="myname.me")
    assert app.root.host == "myname.me"


async def test_register_blueprint_sets_parent(app: TestKyoukai) -> None:
    bp = Blueprint("child")
    app.register_blueprint(bp)
    assert bp.parent is app.root


async def test_process_request_with_parent_context(app: TestKyoukai) -> None:
    @app.route("/direct")
    async def direct(ctx):
        return ctx.request.path

    request = Request(EnvironBuilder(path="/direct").get_environ())
    app.finalize()
    async with Context() as parent:
        resp = await app.process_request(request, parent)
    assert resp.status_code == 200
    assert resp.get_data() == b"/direct"


async def test_process_request_never_raises(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        raise KeyError("not a BadRequestKeyError")

    @app.root.errorhandler(500)
    def handle_500(ctx, exc):
        raise ValueError("and this fails too")

    request = Request(EnvironBuilder(path="/").get_environ())
    app.finalize()
    async with Context() as parent:
        resp = await app.process_request(request, parent)
    assert resp.status_code == 500


async def test_405_handler_response_keeps_allow_header(app: TestKyoukai) -> None:
    @app.route("/thing", methods=["PUT"])
    async def thing(ctx):
        return ""

    @app.root.errorhandler(405)
    async def handle_405(ctx, exc):
        return "use another method"

    resp = await app.inject_request({}, "/thing")
    assert (resp.status_code, resp.get_data()) == (405, b"use another method")
    assert allowed(resp) == {"PUT"}


async def test_abort_in_pre_hook_gives_its_status(app: TestKyoukai) -> None:
    @app.root.before_request
    async def guard(ctx):
        if "Authorization" not in ctx.request.headers:
            abort(401)

    @app.route("/")
    async def index(ctx):
        return "secret"

    assert (await app.inject_request({}, "/")).status_code == 401
    resp = await app.inject_request({"Authorization": "Bearer x"}, "/")
    assert (resp.status_code, resp.get_data()) == (200, b"secret")


async def test_error_handler_plain_body_keeps_error_status(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        abort(404)

    @app.root.errorhandler(404)
    async def handle_404(ctx, exc):
        return "friendly"

    resp = await app.inject_request({}, "/")
    assert (resp.status_code, resp.get_data()) == (404, b"friendly")


async def test_error_handler_can_set_status(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        abort(404)

    @app.root.errorhandler(404)
    async def handle_404(ctx, exc):
        return "moved on", 410

    resp = await app.inject_request({}, "/")
    assert (resp.status_code, resp.get_data()) == (410, b"moved on")


async def test_error_handlers_run_no_hooks(app: TestKyoukai) -> None:
    order: list[str] = []

    @app.root.before_request
    async def pre(ctx):
        order.append("pre")

    @app.root.errorhandler(404)
    async def handle_404(ctx, exc):
        order.append("handler")
        return "none"

    await app.inject_request({}, "/missing")
    assert order == ["handler"]


async def test_invalid_return_value_is_500(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        return "a", 200, {}, "too many"

    assert (await app.inject_request({}, "/")).status_code == 500


async def test_failing_teardown_is_500(app: TestKyoukai) -> None:
    def broken_teardown() -> None:
        raise RuntimeError("commit failed")

    @app.route("/")
    async def index(ctx):
        ctx.add_teardown_callback(broken_teardown)
        return "looked fine"

    resp = await app.inject_request({}, "/")
    assert resp.status_code == 500


async def test_head_on_get_route(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        return ctx.request.method

    resp = await app.inject_request({}, "/", method="HEAD")
    assert resp.status_code == 200


async def test_url_for_uses_application_root() -> None:
    app = TestKyoukai("mounted", application_root="/app")

    @app.route("/page")
    async def page(ctx):
        return ctx.url_for("mounted.page")

    assert (await app.inject_request({}, "/page")).get_data() == b"/app/page"


async def test_url_for_uses_server_name_without_host() -> None:
    app = TestKyoukai("named", server_name="example.com:8080")

    @app.route("/page")
    async def page(ctx):
        return ""

    app.finalize()
    environ = EnvironBuilder(path="/").get_environ()
    del environ["HTTP_HOST"]
    url = app.url_for(environ, "named.page", force_external=True)
    assert url == "http://example.com:8080/page"
