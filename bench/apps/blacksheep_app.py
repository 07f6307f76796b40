"""BlackSheep, served by uvicorn (httptools + uvloop)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import _routes
from blacksheep import Application, Request, Response, json, text

app = Application()


def _filler() -> Callable[[Request, int], Awaitable[Response]]:
    async def filler(request: Request, item: int) -> Response:
        return text(str(item))

    return filler


for _path in _routes.FILLER_ROUTES:
    app.router.add_get(_routes.render(_path, "blacksheep"), _filler())


@app.router.get("/")
async def index(request: Request) -> Response:
    return text(_routes.HELLO)


@app.router.get("/json")
async def json_(request: Request) -> Response:
    return json(_routes.JSON_BODY)


@app.router.get(_routes.render(_routes.USER_ROUTE, "blacksheep"))
async def user(request: Request, id: int) -> Response:
    return text(str(id))


@app.router.post("/upload")
async def upload(request: Request) -> Response:
    return text(str(len(await request.read() or b"")))


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(
        app,
        host=_routes.HOST,
        port=_routes.port_from_argv(),
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
    )
