"""Starlette (``starlette_app:app``) served by Hypercorn on uvloop: HTTP/2 prior knowledge on
cleartext, ALPN ``h2`` with ``--tls CERT KEY``."""

from __future__ import annotations

import sys

import _routes
import uvloop
from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette_app import app

if __name__ == "__main__":
    config = Config()
    config.bind = [f"{_routes.HOST}:{_routes.port_from_argv()}"]
    config.accesslog = None
    config.loglevel = "WARNING"
    # Hypercorn closes a connection after 1000 requests by default, which h2load, keeping
    # each connection for its whole run, counts as errors.
    config.keep_alive_max_requests = 10**9
    if "--tls" in sys.argv:
        config.certfile, config.keyfile = sys.argv[sys.argv.index("--tls") + 1 :][:2]
        config.alpn_protocols = ["h2"]
    uvloop.run(serve(app, config))  # type: ignore[arg-type]
