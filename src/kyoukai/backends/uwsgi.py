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
"""

from __future__ import annotations

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
