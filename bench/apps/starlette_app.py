"""Starlette's application, ``starlette_app:app``, for uvicorn_app.py and granian_app.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import _routes
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route


def _filler() -> Callable[[Request], Awaitable[Response]]:
    async def filler(request: Request) -> Response:
        return PlainTextResponse(str(request.path_params["item"]))

    return filler


async def index(request: Request) -> Response:
    return PlainTextResponse(_routes.HELLO)


async def json_(request: Request) -> Response:
    return JSONResponse(_routes.JSON_BODY)


async def user(request: Request) -> Response:
    return PlainTextResponse(str(request.path_params["id"]))


async def upload(request: Request) -> Response:
    return PlainTextResponse(str(len(await request.body())))


app = Starlette(
    routes=[
        *(Route(_routes.render(p, "starlette"), _filler()) for p in _routes.FILLER_ROUTES),
        Route("/", index),
        Route("/json", json_),
        Route(_routes.render(_routes.USER_ROUTE, "starlette"), user),
        Route("/upload", upload, methods=["POST"]),
    ]
)
