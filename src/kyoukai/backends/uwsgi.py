"""The uWSGI backend: a Kyoukai application as the WSGI callable of uWSGI (or any WSGI server).

::

    from kyoukai.backends.uwsgi import uWSGIAdapter

    application = uWSGIAdapter(app).run_application
    # or, for a whole Asphalt configuration (its components start in each worker):
    application = uWSGIAdapter.from_asphalt_config("config.yml").run_application

and ``uwsgi --http-socket :8000 --module module:application --processes 2 --threads 2``.
No asyncio mode or greenlets are needed: each worker process runs the application on an event
loop of its own (see :mod:`kyoukai.backends._wsgi_host`); the same callable serves under
gunicorn's ``gthread`` worker and other WSGI servers.

uWSGI leaves ``wsgi.input`` empty for a chunked request body (one without
``Content-Length``); under uWSGI the adapter reads such a body with uWSGI's chunked input
API (``uwsgi.chunked_read``) instead, one chunk at a time within ``max_body_size``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

from kyoukai.backends._settings import ProtocolError
from kyoukai.backends._wsgi_host import WSGIHost

__all__ = ["uWSGIAdapter"]


class uWSGIAdapter(WSGIHost):
    """Serves a Kyoukai application to uWSGI, as a plain WSGI callable.

    :param app: The application.
    :param base_context: The parent of every request context; if omitted, each worker process
        makes its own at its first request and closes it at exit.
    :param options: ``max_body_size``, ``max_content_codings`` and ``handler_timeout``.
    """

    #: The WSGI callable to hand to uWSGI (``application = adapter.run_application``).
    run_application = WSGIHost.__call__

    def read_unframed(self, environ: dict[str, Any]) -> Iterator[bytes]:
        """Yield the chunks of a chunked request body: under uWSGI from its chunked input
        API (its ``wsgi.input`` holds nothing of such a body), elsewhere from ``wsgi.input``.
        A chunk uWSGI cannot read (bad framing, a chunk extension, a chunk over
        ``--chunked-input-limit``, none within ``--chunked-input-timeout``) refuses the
        request with **400**.

        :param environ: The request's environ.
        """
        if "uwsgi.version" not in environ:
            yield from super().read_unframed(environ)
            return
        uwsgi = importlib.import_module("uwsgi")  # exists only inside a uWSGI process
        while True:
            try:
                data: bytes | None = uwsgi.chunked_read()
            except OSError as exc:
                raise ProtocolError("malformed request", f"chunked body: {exc}") from None
            if not data:
                return
            yield data
