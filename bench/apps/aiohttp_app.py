"""aiohttp's own server (C parser) on uvloop, access log off."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import _routes
import uvloop
from aiohttp import web


def _filler() -> Callable[[web.Request], Awaitable[web.Response]]:
    async def filler(request: web.Request) -> web.Response:
        return web.Response(text=request.match_info["item"])

    return filler


async def index(request: web.Request) -> web.Response:
    return web.Response(text=_routes.HELLO)


async def json_(request: web.Request) -> web.Response:
    return web.json_response(_routes.JSON_BODY)


async def user(request: web.Request) -> web.Response:
    return web.Response(text=str(int(request.match_info["id"])))


async def upload(request: web.Request) -> web.Response:
    return web.Response(text=str(len(await request.read())))


def make_app() -> web.Application:
    app = web.Application()
    for path in _routes.FILLER_ROUTES:
        app.router.add_get(_routes.render(path, "aiohttp"), _filler())
    app.router.add_get("/", index)
    app.router.add_get("/json", json_)
    app.router.add_get(_routes.render(_routes.USER_ROUTE, "aiohttp"), user)
    app.router.add_post("/upload", upload)
    return app


if __name__ == "__main__":
    web.run_app(
        make_app(),
        host=_routes.HOST,
        port=_routes.port_from_argv(),
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )
