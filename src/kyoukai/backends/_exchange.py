"""The one place a server calls the application: one request in, one response out.

Every protocol hands its request's environ to :meth:`Exchange.respond`, so the rules around the call
hold on all of them alike: the ``handler_timeout`` setting cancels a slow application and
answers **503**, and an application that raises despite ``process_request``'s promise (a
broken subclass) answers **500**, logged once. Cancellation is the protocol's: it passes
through.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import InternalServerError, ServiceUnavailable
from werkzeug.wrappers import Response

from kyoukai.wsgi import request_factory

if TYPE_CHECKING:
    from asphalt.core import Context

    from kyoukai.app import Kyoukai

__all__ = ["Exchange"]

logger = logging.getLogger("kyoukai")


class Exchange:
    """Runs the application for the requests of one connection.

    :param app: The application.
    :param parent_context: The parent of every request context.
    :param timeout: Seconds the application may take per request (``handler_timeout``), or
        ``None``.
    """

    __slots__ = ("_app", "_make_request", "_parent_context", "_timeout")

    def __init__(self, app: Kyoukai, parent_context: Context | None, timeout: float | None) -> None:
        self._app = app
        self._parent_context = parent_context
        self._timeout = timeout
        self._make_request = request_factory(app.request_class)

    async def respond(
        self, environ: dict[str, Any], server: tuple[str, int | None] | None
    ) -> Response:
        """Build the request of ``environ``, run the application, return its response.

        Never raises but for cancellation.

        :param environ: The request's environ, body included.
        :param server: ``(host, port)`` of the local end, as Werkzeug's ``Request.server``.
        """
        try:
            request = self._make_request(environ, server)
            if self._timeout is None:
                return await self._app.process_request(request, self._parent_context)
            try:
                async with asyncio.timeout(self._timeout):
                    return await self._app.process_request(request, self._parent_context)
            except TimeoutError:
                logger.error("Handler for %s %s timed out", request.method, request.path)
                return ServiceUnavailable().get_response(environ)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Error handling %s %s", environ["REQUEST_METHOD"], environ["RAW_URI"])
            return InternalServerError().get_response(environ)
