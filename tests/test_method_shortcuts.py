"""``get``/``post``/``put``/``patch``/``delete``: on the app, blueprints, route groups and
the test application."""

from __future__ import annotations

import asyncio

import pytest

from kyoukai import Blueprint, Kyoukai, Route, TestKyoukai
from kyoukai.routegroup import RouteGroup, delete, get, patch, post, put

SHORTCUTS = ["get", "post", "put", "patch", "delete"]


@pytest.mark.parametrize("name", SHORTCUTS)
async def test_app_shortcut_adds_a_one_method_route(name: str) -> None:
    app = Kyoukai("shortcuts")

    async def handler(ctx):
        return ctx.request.method

    route = getattr(app, name)("/thing", endpoint="thing")(handler)
    assert isinstance(route, Route)
    assert route.get_endpoint_name() == "thing"
    client = TestKyoukai.wrap_existing_app(app)
    method = name.upper()
    resp = await client.request(method, "/thing")
    assert (resp.status_code, resp.get_data()) == (200, method.encode())
    other = "GET" if method != "GET" else "POST"
    resp = await client.request(other, "/thing")
    assert resp.status_code == 405
    assert method in resp.headers["Allow"]


@pytest.mark.parametrize("name", SHORTCUTS)
async def test_blueprint_shortcut(app: TestKyoukai, name: str) -> None:
    bp = Blueprint("bp", prefix="/bp")
    app.register_blueprint(bp)

    @getattr(bp, name)("/<int:id>")
    async def handler(ctx, id):
        return f"{ctx.request.method} {id}"

    resp = await app.request(name.upper(), "/bp/7")
    assert resp.get_data() == f"{name.upper()} 7".encode()


async def test_get_answers_head(app: TestKyoukai) -> None:
    @app.root.get("/")
    async def index(ctx):
        return "hello"

    assert (await app.head("/")).status_code == 200  # the server drops the body


async def test_stacked_shortcuts_share_a_route(app: TestKyoukai) -> None:
    @app.root.get("/items")
    @app.root.post("/items")
    @app.root.delete("/items/<int:id>")
    async def items(ctx, id=None):
        return f"{ctx.request.method} {id}"

    assert (await app.request("GET", "/items")).get_data() == b"GET None"
    assert (await app.request("POST", "/items")).get_data() == b"POST None"
    assert (await app.request("DELETE", "/items/3")).get_data() == b"DELETE 3"
    assert (await app.request("DELETE", "/items")).status_code == 405


async def test_test_app_shortcuts_add_routes_and_send_requests(app: TestKyoukai) -> None:
    @app.post("/echo")
    @app.put("/echo")
    @app.patch("/echo")
    async def echo(ctx):
        return ctx.request.get_json()

    @app.get("/")
    @app.delete("/")
    async def index(ctx):
        return ctx.request.method

    assert isinstance(echo, Route)
    for send in (app.post, app.put, app.patch):
        assert (await send("/echo", json={"a": 1})).json == {"a": 1}
    assert (await app.get("/")).get_data() == b"GET"
    assert (await app.delete("/")).get_data() == b"DELETE"
    assert (await app.post("/")).status_code == 405


async def test_route_group_shortcuts(app: TestKyoukai) -> None:
    class Things(RouteGroup, prefix="/things"):
        @get("/")
        @post("/")
        async def collection(self, ctx):
            return ctx.request.method

        @put("/<int:id>")
        @patch("/<int:id>")
        @delete("/<int:id>")
        async def one(self, ctx, id):
            return f"{ctx.request.method} {id}"

    app.add_route_group(Things())
    for method in ("GET", "POST"):
        assert (await app.request(method, "/things/")).get_data() == method.encode()
    for method in ("PUT", "PATCH", "DELETE"):
        assert (await app.request(method, "/things/2")).get_data() == f"{method} 2".encode()
    assert (await app.request("GET", "/things/2")).status_code == 405


async def test_test_app_requests_are_awaitables_for_gather(app: TestKyoukai) -> None:
    @app.get("/<int:n>")
    async def number(ctx, n):
        return str(n)

    responses = await asyncio.gather(app.get("/1"), app.get("/2"))
    assert [r.get_data() for r in responses] == [b"1", b"2"]
