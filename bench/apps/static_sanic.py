"""Sanic's static handler, one process: ``static_sanic.py PORT DIRECTORY``."""

from __future__ import annotations

import sys

import _routes
from sanic import Sanic

app = Sanic("bench_static")
app.static("/files", sys.argv[2])

if __name__ == "__main__":
    app.run(
        host=_routes.HOST,
        port=_routes.port_from_argv(),
        single_process=True,
        access_log=False,
        debug=False,
        motd=False,
    )
