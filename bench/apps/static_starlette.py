"""Starlette's ``StaticFiles`` on uvicorn (httptools, uvloop): ``static_starlette.py PORT DIR``."""

from __future__ import annotations

import sys

import _routes
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

app = Starlette(routes=[Mount("/files", StaticFiles(directory=sys.argv[2]))])

if __name__ == "__main__":
    uvicorn.run(
        app,
        host=_routes.HOST,
        port=_routes.port_from_argv(),
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )
