"""What the deployment tests hand the servers for an Asphalt configuration: its ASGI
application (``entry:asgi``) and its WSGI callable (``entry:wsgi``). The configuration files
are named by ``$KYOUKAI_CONFIG`` (several separated by ``os.pathsep``, later ones overlaying
earlier ones)."""

from __future__ import annotations

import os

from kyoukai.backends.asgi import ASGIAdapter
from kyoukai.backends.uwsgi import uWSGIAdapter

SOURCES = os.environ["KYOUKAI_CONFIG"].split(os.pathsep)

asgi = ASGIAdapter.from_asphalt_config(*SOURCES)
wsgi = uWSGIAdapter.from_asphalt_config(*SOURCES).run_application
