"""Kyoukai's ``add_static`` on its built-in server: ``static_kyoukai.py PORT DIRECTORY``."""

from __future__ import annotations

import sys

import _routes

from kyoukai import Kyoukai

app = Kyoukai("bench-static")
app.access_log = False
app.add_static("/files", sys.argv[2], max_age=3600)

if __name__ == "__main__":
    app.run(_routes.HOST, _routes.port_from_argv())
