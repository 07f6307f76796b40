"""Sanic, one process (``single_process=True``), access log off."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import _routes
from sanic import Request, Sanic
from sanic.response import HTTPResponse, json, text

app = Sanic("bench")


def _filler(n: int) -> Callable[..., Awaitable[HTTPResponse]]:
    async def filler(request: Request, item: int) -> HTTPResponse:
        return text(str(item))

    filler.__name__ = filler.__qualname__ = f"filler_{n}"
    return filler


for _n, _path in enumerate(_routes.FILLER_ROUTES):
    app.add_route(_filler(_n), _routes.render(_path, "sanic"), name=f"filler_{_n}")


@app.get("/")
async def index(request: Request) -> HTTPResponse:
    return text(_routes.HELLO)


@app.get("/json")
async def json_(request: Request) -> HTTPResponse:
    return json(_routes.JSON_BODY)


@app.get(_routes.render(_routes.USER_ROUTE, "sanic"))
async def user(request: Request, id: int) -> HTTPResponse:
    return text(str(id))


@app.post("/upload")
async def upload(request: Request) -> HTTPResponse:
    return text(str(len(request.body)))


if __name__ == "__main__":
    app.run(
        host=_routes.HOST,
        port=_routes.port_from_argv(),
        single_process=True,
        access_log=False,
        debug=False,
        motd=False,
    )
