"""Checked by mypy only: the route decorators keep their types."""

from __future__ import annotations

from typing import assert_type

from werkzeug.wrappers import Response

from kyoukai import Blueprint, HTTPRequestContext, Kyoukai, Route, TestKyoukai
from kyoukai.routegroup import RouteGroup, delete, get, patch, post, put, route

app = Kyoukai("typing")
bp = Blueprint("typing_bp")


@app.route("/")
async def index(ctx: HTTPRequestContext) -> str:
    return "index"


@bp.route("/users/<int:id>")
async def user(ctx: HTTPRequestContext, id: int) -> str:
    return str(id)


assert_type(index, Route)
assert_type(user, Route)


class Group(RouteGroup):
    @route("/ping")
    async def ping(self, ctx: HTTPRequestContext) -> str:
        return "pong"


async def check_group(group: Group, ctx: HTTPRequestContext) -> None:
    # route() returns the function itself, so the method keeps its signature.
    assert_type(await group.ping(ctx), str)


@app.get("/items")
async def list_items(ctx: HTTPRequestContext) -> str:
    return "items"


@app.post("/items")
@app.put("/items/<int:id>")
async def save_item(ctx: HTTPRequestContext, id: int = 0) -> str:
    return "saved"


@bp.patch("/users/<int:id>")
@bp.delete("/users/<int:id>")
async def change_user(ctx: HTTPRequestContext, id: int) -> str:
    return str(id)


assert_type(list_items, Route)
assert_type(save_item, Route)
assert_type(change_user, Route)


class Shortcuts(RouteGroup):
    @get("/a")
    @post("/a")
    async def a(self, ctx: HTTPRequestContext) -> int:
        return 1

    @put("/b")
    @patch("/b")
    @delete("/b")
    def b(self, ctx: HTTPRequestContext) -> bytes:
        return b"b"


async def check_shortcut_group(group: Shortcuts, ctx: HTTPRequestContext) -> None:
    assert_type(await group.a(ctx), int)
    assert_type(group.b(ctx), bytes)


client = TestKyoukai("client")


@client.get("/")
async def client_index(ctx: HTTPRequestContext) -> str:
    return "index"


async def check_client() -> None:
    assert_type(client_index, Route)
    assert_type(await client.get("/"), Response)
    assert_type(await client.post("/", json={}), Response)
    assert_type(await client.delete("/"), Response)
