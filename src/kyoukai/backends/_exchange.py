"""The one place a server calls the application: one request in, one response out.

Every protocol runs its requests through :meth:`Exchange.serve`, so the rules around the
call hold on all of them alike: the ``handler_timeout`` setting cancels a slow application and
answers **503**, and an application that raises despite ``process_request``'s promise (a
broken subclass) answers **500**, logged once.

A request body that streams in is bounded, asked for and loaded by the application itself,
after routing (:mod:`kyoukai._body`). An application class that overrides ``process_request``
may read the body synchronously before any of that, so it gets the body loaded (under the
server's limit) before it is called, as servers that read whole bodies do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from werkzeug.exceptions import HTTPException, InternalServerError, ServiceUnavailable
from werkzeug.wrappers import Response

from kyoukai._body import BODY_ENVIRON_KEY, load_body
from kyoukai.app import Kyoukai
from kyoukai.websocket import WEBSOCKET_ENVIRON_KEY
from kyoukai.wsgi import request_factory

if TYPE_CHECKING:
    from asphalt.core import Context

__all__ = ["Exchange"]

logger = logging.getLogger("kyoukai")


class Exchange:
    """Runs the application for the requests of one connection, and hands each response on.

    :meth:`serve` is the body of a request's task: it runs the application and then calls
    ``deliver(token, response)``, the protocol's own synchronous way of writing the response.
    What that cannot finish at once (a streamed body, a full write buffer) it returns, and
    ``finish(rest)`` is awaited with it; ``None`` means all is written. A request that is
    cancelled (the client went away, the server stopped) delivers nothing.

    :param app: The application.
    :param parent_context: The parent of every request context.
    :param timeout: Seconds the application may take per request (``handler_timeout``), or
        ``None``.
    :param deliver: Called with the protocol's token for the request and its response;
        returns what is left to write, or ``None``.
    :param finish: Awaited with what ``deliver`` left.
    :param form_limits: ``(max_form_memory_size, max_form_parts)`` for the form parser of
        requests with a streamed body; Werkzeug's defaults if omitted.
    """

    __slots__ = (
        "_deliver",
        "_finish",
        "_form_limits",
        "_load_first",
        "_make_request",
        "_parent_context",
        "_process",
        "_timeout",
    )

    def __init__(
        self,
        app: Kyoukai,
        parent_context: Context | None,
        timeout: float | None,
        *,
        deliver: Callable[[Any, Response], Any],
        finish: Callable[[Any], Awaitable[None]],
        form_limits: tuple[int, int] | None = None,
    ) -> None:
        self._process = app.process_request
        self._parent_context = parent_context
        self._timeout = timeout
        self._deliver = deliver
        self._finish = finish
        self._make_request = request_factory(app.request_class)
        self._form_limits = form_limits
        self._load_first = type(app).process_request is not Kyoukai.process_request

    async def serve(
        self, token: Any, environ: dict[str, Any], server: tuple[str, int | None] | None
    ) -> None:
        """Build the request of ``environ``, run the application, deliver its response.

        :param token: What the protocol knows the request by (passed to ``deliver``).
        :param environ: The request's environ, body included.
        :param server: ``(host, port)`` of the local end, as Werkzeug's ``Request.server``.
        """
        try:
            request = self._make_request(environ, server)
            if BODY_ENVIRON_KEY in environ:
                if self._form_limits is not None:
                    request.max_form_memory_size, request.max_form_parts = self._form_limits
                if self._load_first:
                    await load_body(environ)
            if self._timeout is None or WEBSOCKET_ENVIRON_KEY in environ:
                # A WebSocket session lasts as long as it lasts; its keep-alive is the wire's.
                response = await self._process(request, self._parent_context)
            else:
                try:
                    async with asyncio.timeout(self._timeout):
                        response = await self._process(request, self._parent_context)
                except TimeoutError:
                    logger.error("Handler for %s %s timed out", request.method, request.path)
                    response = ServiceUnavailable().get_response(environ)
        except asyncio.CancelledError:
            return  # the client went away or the server is shutting down
        except HTTPException as exc:  # a streamed body that failed while loaded
            response = exc.get_response(environ)
        except Exception:
            logger.exception("Error handling %s %s", environ["REQUEST_METHOD"], environ["RAW_URI"])
            response = InternalServerError().get_response(environ)
        rest = self._deliver(token, response)
        if rest is not None:
            await self._finish(rest)
