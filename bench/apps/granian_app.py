"""An ASGI application (``module:attribute``, the second argument; Starlette's by default)
served by granian: one worker, ASGI, uvloop, HTTP/1."""

from __future__ import annotations

import sys
from pathlib import Path

import _routes
from granian import Granian
from granian.constants import HTTPModes, Interfaces, Loops
from granian.log import LogLevels

if __name__ == "__main__":
    Granian(
        sys.argv[2] if len(sys.argv) > 2 else "starlette_app:app",
        address=_routes.HOST,
        port=_routes.port_from_argv(),
        interface=Interfaces.ASGI,
        workers=1,
        runtime_threads=1,
        loop=Loops.uvloop,
        http=HTTPModes.http1,
        websockets=False,
        log_access=False,
        log_level=LogLevels.warning,
        working_dir=Path(__file__).parent,
    ).serve()
