"""Starlette (``starlette_app:app``) served by granian's Rust HTTP/2: one worker, ASGI,
uvloop; cleartext with prior knowledge, TLS with ``--tls CERT KEY``."""

from __future__ import annotations

import sys
from pathlib import Path

import _routes
from granian import Granian
from granian.constants import HTTPModes, Interfaces, Loops
from granian.log import LogLevels

if __name__ == "__main__":
    tls = {}
    if "--tls" in sys.argv:
        cert, key = sys.argv[sys.argv.index("--tls") + 1 :][:2]
        tls = {"ssl_cert": Path(cert), "ssl_key": Path(key)}
    Granian(
        "starlette_app:app",
        address=_routes.HOST,
        port=_routes.port_from_argv(),
        interface=Interfaces.ASGI,
        workers=1,
        runtime_threads=1,
        loop=Loops.uvloop,
        http=HTTPModes.http2,
        websockets=False,
        log_access=False,
        log_level=LogLevels.warning,
        working_dir=Path(__file__).parent,
        **tls,  # type: ignore[arg-type]
    ).serve()
