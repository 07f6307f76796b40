"""aiohttp's ``add_static`` on uvloop: ``static_aiohttp.py PORT DIRECTORY``."""

from __future__ import annotations

import sys

import _routes
import uvloop
from aiohttp import web

if __name__ == "__main__":
    app = web.Application()
    app.router.add_static("/files", sys.argv[2])
    web.run_app(
        app,
        host=_routes.HOST,
        port=_routes.port_from_argv(),
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )
