"""Checked by mypy only: the route decorators keep their types."""

from __future__ import annotations

from typing import assert_type

from kyoukai import Blueprint, HTTPRequestContext, Kyoukai, Route
from kyoukai.routegroup import RouteGroup, route

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
