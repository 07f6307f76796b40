"""The test client: TestKyoukai.inject_request, testing_bp, wrap_existing_app and helpers."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import quote, unquote

import pytest
from asphalt.core import Context, current_context
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug.wrappers import Response

from kyoukai import Blueprint, Kyoukai, TestKyoukai


async def test_inject_request_returns_response(app: TestKyoukai) -> None:
    @app.route("/")
    async def index(ctx):
        return "hi"

    resp = await app.inject_request({}, "/")
    assert isinstance(resp, Response)
    assert (resp.status_code, resp.get_data()) == (200, b"hi")


async def test_inject_request_headers_and_query(app: TestKyoukai) -> None:
    @app.route("/echo")
    async def echo(ctx):
        return f"{ctx.request.headers['X-Thing']} {ctx.request.args['q']} {ctx.request.host}"

    resp = await app.inject_request({"X-Thing": "abc", "Host": "example.com"}, "/echo?q=1")
    assert resp.get_data() == b"abc 1 example.com"


async def test_inject_request_method_and_body(app: TestKyoukai) -> None:
    @app.route("/echo", methods=["PUT"])
    async def echo(ctx):
        return ctx.request.method + " " + ctx.request.get_data(as_text=True)

    resp = await app.inject_request({}, "/echo", method="PUT", body="payload")
    assert (resp.status_code, resp.get_data()) == (200, b"PUT payload")


async def test_inject_request_form_body(app: TestKyoukai) -> None:
    @app.route("/form", methods=["POST"])
    async def form(ctx):
        return ctx.request.form["name"]

    resp = await app.inject_request(
        {"Content-Type": "application/x-www-form-urlencoded"},
        "/form",
        method="POST",
        body="name=kyoukai",
    )
    assert resp.get_data() == b"kyoukai"


async def test_inject_request_json_body(app: TestKyoukai) -> None:
    @app.route("/json", methods=["POST"])
    async def json_body(ctx):
        return ctx.request.get_json()

    resp = await app.inject_request(
        {"Content-Type": "application/json"}, "/json", method="POST", body='{"a": [1]}'
    )
    assert json.loads(resp.get_data()) == {"a": [1]}


async def test_testing_bp_isolates_routes(app: TestKyoukai) -> None:
    @app.route("/kept")
    async def kept(ctx):
        return "kept"

    old_root = app.root
    with app.testing_bp() as bp:
        assert isinstance(bp, Blueprint)
        assert app.root is bp
        assert bp is not old_root

        @bp.route("/temporary")
        async def temporary(ctx):
            return "temporary"

        resp = await app.inject_request({}, "/temporary")
        assert (resp.status_code, resp.get_data()) == (200, b"temporary")
        assert (await app.inject_request({}, "/kept")).status_code == 404

    assert app.root is old_root
    assert (await app.inject_request({}, "/temporary")).status_code == 404
    assert (await app.inject_request({}, "/kept")).get_data() == b"kept"


async def test_testing_bp_twice(app: TestKyoukai) -> None:
    for text in ("first", "second"):
        with app.testing_bp() as bp:

            @bp.route("/")
            async def index(ctx, text=text):
                return text

            assert (await app.inject_request({}, "/")).get_data() == text.encode()


async def test_testing_bp_error_handlers_isolated(app: TestKyoukai) -> None:
    @app.root.errorhandler(404)
    async def old_404(ctx, exc):
        return "old", 404

    with app.testing_bp():
        resp = await app.inject_request({}, "/missing")
        assert resp.status_code == 404
        assert resp.get_data() != b"old"
    assert (await app.inject_request({}, "/missing")).get_data() == b"old"


async def test_wrap_existing_app() -> None:
    other_app = Kyoukai("my_app")

    @other_app.route("/")
    async def index(ctx):
        return "from the real app " + type(ctx.app).__name__

    testing = TestKyoukai.wrap_existing_app(other_app)
    assert isinstance(testing, TestKyoukai)
    resp = await testing.inject_request({}, "/")
    assert resp.status_code == 200
    assert resp.get_data().startswith(b"from the real app")


async def test_wrap_existing_app_with_base_context() -> None:
    other_app = Kyoukai("my_app")

    @other_app.route("/")
    async def index(ctx):
        return ctx.require_resource(str)

    async with Context() as base:
        base.add_resource("from base")
        testing = TestKyoukai.wrap_existing_app(other_app, base_context=base)
        resp = await testing.inject_request({}, "/")
    assert resp.get_data() == b"from base"


async def test_wrap_existing_app_shares_event_listeners() -> None:
    other_app = Kyoukai("my_app")

    @other_app.route("/")
    async def index(ctx):
        return "ok"

    testing = TestKyoukai.wrap_existing_app(other_app)
    assert testing.route_returned is other_app.route_returned
    seen: list[str] = []
    both = asyncio.Event()

    def record(where: str):
        def listener(event) -> None:
            seen.append(where)
            if len(seen) == 2:
                both.set()

        return listener

    testing.route_returned.connect(record("on the wrapper"))
    other_app.route_returned.connect(record("on the app"))
    await testing.get("/")
    async with asyncio.timeout(5):
        await both.wait()
    assert sorted(seen) == ["on the app", "on the wrapper"]


async def test_wrap_existing_app_testing_bp() -> None:
    other_app = Kyoukai("my_app")

    @other_app.route("/old")
    async def old(ctx):
        return "old"

    client = TestKyoukai.wrap_existing_app(other_app)
    with client.testing_bp() as bp:

        @bp.route("/new")
        async def new(ctx):
            return "new"

        assert (await client.get("/new")).get_data() == b"new"
        assert (await client.get("/old")).status_code == 404
    assert (await client.get("/old")).get_data() == b"old"
    assert (await client.get("/new")).status_code == 404
    assert other_app.root is not bp


async def test_wrap_existing_app_testing_bp_keeps_process_request_override() -> None:
    class Branded(Kyoukai):
        async def process_request(self, request, parent_context):
            response = await super().process_request(request, parent_context)
            response.headers["X-Brand"] = self.name
            return response

    client = TestKyoukai.wrap_existing_app(Branded("branded"))
    assert isinstance(client, Branded)
    with client.testing_bp() as bp:

        @bp.route("/")
        async def index(ctx):
            return "in the block"

        resp = await client.get("/")
    assert (resp.get_data(), resp.headers["X-Brand"]) == (b"in the block", "branded")
    assert type(TestKyoukai.wrap_existing_app(Branded("again"))) is type(client)


async def test_wrap_existing_test_app_keeps_its_class(app: TestKyoukai) -> None:
    assert type(TestKyoukai.wrap_existing_app(app)) is TestKyoukai


async def test_client_get(app: TestKyoukai) -> None:
    @app.route("/hello")
    async def hello(ctx):
        return f"hello {ctx.request.args.get('name', 'nobody')} {ctx.request.headers.get('X-A')}"

    resp = await app.get("/hello?name=you", headers={"X-A": "b"})
    assert isinstance(resp, Response)
    assert (resp.status_code, resp.get_data()) == (200, b"hello you b")


async def test_client_post_json(app: TestKyoukai) -> None:
    @app.route("/items", methods=["POST"])
    async def create(ctx):
        data = ctx.request.get_json()
        return {"created": data["name"]}, 201

    resp = await app.post("/items", json={"name": "widget"})
    assert isinstance(resp, Response)
    assert resp.status_code == 201
    assert resp.headers["Content-Type"] == "application/json"
    assert json.loads(resp.get_data()) == {"created": "widget"}


async def test_client_post_form_data(app: TestKyoukai) -> None:
    @app.route("/login", methods=["POST"])
    async def login(ctx):
        return ctx.request.form["user"]

    resp = await app.post("/login", data={"user": "alice"})
    assert (resp.status_code, resp.get_data()) == (200, b"alice")


async def test_client_get_unknown_is_404(app: TestKyoukai) -> None:
    assert (await app.get("/nothing")).status_code == 404


async def test_percent_encoded_unicode_path_and_query(app: TestKyoukai) -> None:
    @app.route("/echo/<name>")
    async def echo(ctx, name):
        return f"{name}|{ctx.request.args['q']}"

    resp = await app.inject_request({}, "/echo/a%20%E5%A2%83?q=%E7%95%8C")
    assert (resp.status_code, resp.get_data()) == (200, "a 境|界".encode())


@settings(max_examples=60, deadline=None)
@given(
    segment=st.text(st.characters(exclude_categories=["Cs"], exclude_characters="/"), min_size=1)
)
async def test_any_path_segment_round_trips(segment: str) -> None:
    app = TestKyoukai("roundtrip")

    @app.route("/echo/<name>")
    async def echo(ctx, name):
        return {"name": name, "url": ctx.url_for("roundtrip.echo", name=name)}

    resp = await app.inject_request({}, "/echo/" + quote(segment, safe=""))
    assert resp.status_code == 200
    body = json.loads(resp.get_data())
    assert body["name"] == segment
    assert unquote(body["url"]) == "/echo/" + segment


async def test_testing_bp_after_app_was_finalized(app: TestKyoukai) -> None:
    assert (await app.inject_request({}, "/")).status_code == 404
    old_root = app.root
    with app.testing_bp() as bp:

        @bp.route("/")
        async def index(ctx):
            return "new root"

        assert (await app.inject_request({}, "/")).get_data() == b"new root"
    assert app.root is old_root
    assert (await app.inject_request({}, "/")).status_code == 404


async def test_testing_bp_restores_root_on_error(app: TestKyoukai) -> None:
    old_root = app.root
    with pytest.raises(KeyError), app.testing_bp():
        raise KeyError("inside the block")
    assert app.root is old_root


async def test_base_context_is_parent_and_current(app: TestKyoukai) -> None:
    async with Context() as base:
        testing = TestKyoukai("ctx", base_context=base)

        @testing.route("/")
        async def index(ctx):
            return f"{current_context() is ctx} {ctx.parent is base}"

        assert (await testing.inject_request({}, "/")).get_data() == b"True True"
        assert current_context() is base


async def test_inject_request_bytes_body_and_header_list(app: TestKyoukai) -> None:
    @app.route("/", methods=["POST"])
    async def index(ctx):
        return ctx.request.headers["X-Multi"] + " " + ctx.request.get_data(as_text=True)

    resp = await app.inject_request(
        [("X-Multi", "a"), ("X-Multi", "b")], "/", method="POST", body=b"raw"
    )
    assert resp.get_data() == b"a,b raw"


async def test_wrap_existing_app_uses_its_process_request() -> None:
    # TestKyoukai.wrap_existing_app: "whenever inject_request is called, it will use the old
    # app's process_request".
    class Branded(Kyoukai):
        async def process_request(self, request, parent_context):
            response = await super().process_request(request, parent_context)
            response.headers["X-Brand"] = "branded"
            return response

    other_app = Branded("branded")

    @other_app.route("/")
    async def index(ctx):
        return "ok"

    testing = TestKyoukai.wrap_existing_app(other_app)
    resp = await testing.inject_request({}, "/")
    assert resp.get_data() == b"ok"
    assert resp.headers.get("X-Brand") == "branded"


async def test_inject_request_with_unencoded_unicode_url(app: TestKyoukai) -> None:
    # inject_request(headers, url, ...): a test client takes the URL as text; today a
    # non-latin-1 character makes werkzeug's Request raise UnicodeEncodeError out of it.
    @app.route("/echo/<name>")
    async def echo(ctx, name):
        return f"{name}|{ctx.request.args['q']}"

    resp = await app.inject_request({}, "/echo/境?q=界")
    assert (resp.status_code, resp.get_data()) == (200, "境|界".encode())
