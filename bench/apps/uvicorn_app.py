"""An ASGI application (``module:attribute``, the second argument) served by uvicorn with
httptools and uvloop, the way every ASGI framework of the benchmark is served on it."""

from __future__ import annotations

import sys

import _routes
import uvicorn

if __name__ == "__main__":
    uvicorn.run(
        sys.argv[2],
        host=_routes.HOST,
        port=_routes.port_from_argv(),
        loop="uvloop",
        http="httptools",
        lifespan="off",
        access_log=False,
        log_level="warning",
    )
