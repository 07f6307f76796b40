"""An ASGI application (``module:attribute``, the second argument; Starlette's by default)
served by granian: one worker, ASGI, uvloop, HTTP/1. ``--http2`` serves granian's Rust
HTTP/2 instead (prior knowledge on cleartext); ``--tls CERT KEY`` serves it over TLS."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import _routes
from granian import Granian
from granian.constants import HTTPModes, Interfaces, Loops
from granian.log import LogLevels

if __name__ == "__main__":
    argv = sys.argv[1:]
    tls: dict[str, Any] = {}
    if "--tls" in argv:
        at = argv.index("--tls")
        tls = {"ssl_cert": Path(argv[at + 1]), "ssl_key": Path(argv[at + 2])}
        del argv[at : at + 3]
    positional = [a for a in argv if not a.startswith("-")]
    Granian(
        positional[1] if len(positional) > 1 else "starlette_app:app",
        address=_routes.HOST,
        port=_routes.port_from_argv(positional),
        interface=Interfaces.ASGI,
        workers=1,
        runtime_threads=1,
        loop=Loops.uvloop,
        http=HTTPModes.http2 if "--http2" in argv else HTTPModes.http1,
        websockets=False,
        log_access=False,
        log_level=LogLevels.warning,
        working_dir=Path(__file__).parent,
        **tls,
    ).serve()
