"""The Kyoukai application: the I/O-blind core that turns a request into a response.

:meth:`Kyoukai.process_request` takes a Werkzeug request and returns a Werkzeug response.
It never touches a socket; every server backend and the test client call it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from asphalt.core import Context, Signal, TeardownError
from werkzeug.exceptions import HTTPException, InternalServerError, MethodNotAllowed
from werkzeug.routing import Map, RequestRedirect, WebsocketMismatch
from werkzeug.wrappers import Request, Response

from kyoukai._body import BODY_ENVIRON_KEY, check_length, close_body, stream_from_memory
from kyoukai._body import Request as StreamingRequest
from kyoukai._context import (
    ConnectionLostEvent,
    ConnectionMadeEvent,
    HTTPRequestContext,
    RouteInvokedEvent,
    RouteMatchedEvent,
    RouteReturnedEvent,
)
from kyoukai._debug import debugger_resource, is_debugger_request, traceback_response, warn_debug
from kyoukai._shortcuts import MethodShortcuts
from kyoukai._types import F, Handler
from kyoukai.blueprint import Blueprint
from kyoukai.route import DEFAULT_METHODS, Route
from kyoukai.websocket import (
    WEBSOCKET_ENVIRON_KEY,
    UpgradeRequired,
    match_handshake,
    serve_websocket,
)

if TYPE_CHECKING:
    from kyoukai.backends._server import KyoukaiServer
    from kyoukai.backends.asgi import ASGIAdapter, Receive, Scope, Send
    from kyoukai.routegroup import RouteGroup

__all__ = ["Kyoukai"]

logger = logging.getLogger("kyoukai")


class Kyoukai(MethodShortcuts):
    """A Kyoukai web application.

    The application holds the root :class:`~kyoukai.blueprint.Blueprint` of the routing tree
    and processes requests: it matches them to routes, runs hooks and handlers, and turns
    every error into a response through the error handlers.

    :param application_name: The name of the application, also the root blueprint's name
        (endpoints of root routes are ``application_name.function``).
    :param server_name: The host (``"example.com:8080"``) used to build external URLs when
        the request gives none.
    :param host_matching: Match routes on the ``Host`` header. Implied by ``host``.
    :param host: The host the root blueprint answers; ``None`` answers every host.
    :param application_root: The path the application is mounted under; built URLs start
        with it.
    :param loop: The event loop to use (the running loop if omitted).
    :param request_class: The :class:`~werkzeug.wrappers.Request` subclass for requests.
    :param response_class: The :class:`~werkzeug.wrappers.Response` subclass for responses
        built from handler return values.
    :param context_class: The :class:`~kyoukai.asphalt.HTTPRequestContext` subclass for
        request contexts.
    :param debug: Answer unexpected errors with their traceback (see :attr:`debug`). For
        development only: it shows source code and file paths to anyone who gets an error.
    :param max_body_size: The largest request body the application's routes take, in bytes,
        unless a blueprint or route sets its own (the root blueprint's limit); ``None`` leaves
        the server's ``max_body_size``, which bounds every limit.
    """

    #: The class requests are built with: Werkzeug's, with the asynchronous body reading of
    #: :class:`kyoukai._body.Request` (``read_async``, ``iter_body``).
    request_class: type[Request] = StreamingRequest
    #: The class responses are built with.
    response_class: type[Response] = Response
    #: The class request contexts are built with.
    context_class: type[HTTPRequestContext] = HTTPRequestContext

    #: Dispatched when a request matched a route (:class:`~kyoukai.asphalt.RouteMatchedEvent`).
    route_matched = Signal(RouteMatchedEvent)
    #: Dispatched just before a route runs (:class:`~kyoukai.asphalt.RouteInvokedEvent`).
    route_invoked = Signal(RouteInvokedEvent)
    #: Dispatched after a route returned (:class:`~kyoukai.asphalt.RouteReturnedEvent`).
    route_returned = Signal(RouteReturnedEvent)
    #: Dispatched by the servers when a client connects
    #: (:class:`~kyoukai.asphalt.ConnectionMadeEvent`).
    connection_made = Signal(ConnectionMadeEvent)
    #: Dispatched by the servers when a connection closes
    #: (:class:`~kyoukai.asphalt.ConnectionLostEvent`).
    connection_lost = Signal(ConnectionLostEvent)

    def __init__(
        self,
        application_name: str,
        *,
        server_name: str | None = None,
        host_matching: bool = False,
        host: str | None = None,
        application_root: str | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        request_class: type[Request] | None = None,
        response_class: type[Response] | None = None,
        context_class: type[HTTPRequestContext] | None = None,
        debug: bool = False,
        max_body_size: int | None = None,
    ) -> None:
        #: The name of the application.
        self.name = application_name
        #: The host used for external URLs when the request gives none.
        self.server_name = server_name
        #: The path the application is mounted under.
        self.application_root = application_root
        #: Log every request through :meth:`log_route` (when the ``kyoukai`` logger is enabled
        #: for INFO). Set it to ``False`` to silence this application alone.
        self.access_log = True
        #: Debug mode: an unexpected error (not an HTTP exception, and with no handler for
        #: its class) is answered with Werkzeug's traceback page (plain text for clients that
        #: do not accept HTML) instead of going to the 500 handlers. Off by default; the
        #: servers log a warning when they start with it on.
        self.debug = debug
        self._loop = loop
        if request_class is not None:
            self.request_class = request_class
        if response_class is not None:
            self.response_class = response_class
        if context_class is not None:
            self.context_class = context_class
        self._root = Blueprint(
            application_name, host_matching=host_matching, host=host, max_body_size=max_body_size
        )
        # Bound signals are looked up once; a request only checks for listeners.
        self._on_matched = self.route_matched
        self._on_invoked = self.route_invoked
        self._on_returned = self.route_returned
        self._asgi: ASGIAdapter | None = None

    def __repr__(self) -> str:
        return f"<Kyoukai {self.name!r}>"

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop given to the constructor, or the running one."""
        return self._loop if self._loop is not None else asyncio.get_running_loop()

    @property
    def root(self) -> Blueprint:
        """The root blueprint of the routing tree."""
        return self._root

    # -- building the app -------------------------------------------------------------------

    def route(
        self, routing_url: str, methods: Iterable[str] = DEFAULT_METHODS, **kwargs: Any
    ) -> Callable[[Handler | Route], Route]:
        """Decorator: add a route to the root blueprint (see :meth:`.Blueprint.route`)."""
        return self._root.route(routing_url, methods, **kwargs)

    def errorhandler(
        self, code: int | type[Exception], endcode: int | None = None, step: int | None = None
    ) -> Callable[[Callable[..., Any] | Route], Route]:
        """Decorator: add an error handler to the root, for a status code, a range of codes or
        an exception class (see :meth:`.Blueprint.errorhandler`)."""
        return self._root.errorhandler(code, endcode, step)

    def before_request(self, func: F) -> F:
        """Decorator: add a pre-request hook for every route."""
        return self._root.before_request(func)

    def after_request(self, func: F) -> F:
        """Decorator: add a post-request hook for every route."""
        return self._root.after_request(func)

    def add_hook(self, type_: str, hook: Callable[..., Any]) -> Callable[..., Any]:
        """Add a hook for every route (see :meth:`.Blueprint.add_hook`)."""
        return self._root.add_hook(type_, hook)

    def register_blueprint(self, child: Blueprint) -> Blueprint:
        """Add ``child`` to the root blueprint.

        :param child: The blueprint to add; it and its children become routable once the
            application is finalized.
        """
        if not isinstance(child, Blueprint):
            raise TypeError(f"register_blueprint() takes a Blueprint, not {child!r}")
        return self._root.add_child(child)

    def add_route_group(
        self, group: RouteGroup | type[RouteGroup], *args: Any, **kwargs: Any
    ) -> Blueprint:
        """Add a route group to the root blueprint (see :meth:`.Blueprint.add_route_group`)."""
        return self._root.add_route_group(group, *args, **kwargs)

    def add_static(
        self, url_prefix: str, directory: str | os.PathLike[str], **options: Any
    ) -> Route:
        """Serve a directory from the root blueprint (see :meth:`.Blueprint.add_static`)."""
        return self._root.add_static(url_prefix, directory, **options)

    def finalize(self, **map_options: Any) -> Map:
        """Build the routing map; call it once every route is registered.

        The servers call it when they start. Afterwards the tree is frozen: adding routes
        raises :exc:`RuntimeError`.

        :param map_options: Passed to :class:`~werkzeug.routing.Map`.
        """
        routing_map = self._root.finalize(**map_options)
        logger.debug(
            "Built the routing map of %r: %d rules", self, len(list(routing_map.iter_rules()))
        )
        return routing_map

    def url_for(
        self, environ: dict[str, Any], endpoint: str, *, method: str | None = None, **kwargs: Any
    ) -> str:
        """Build the URL of ``endpoint`` relative to ``environ`` (see :meth:`.Blueprint.url_for`).

        ``server_name`` and ``application_root`` fill in what the environ lacks.
        """
        if self.server_name is not None and "HTTP_HOST" not in environ:
            environ = {**environ, "HTTP_HOST": self.server_name}
        if self.application_root and not environ.get("SCRIPT_NAME"):
            environ = {**environ, "SCRIPT_NAME": self.application_root.rstrip("/")}
        return self._root.url_for(environ, endpoint, method=method, **kwargs)

    # -- processing -------------------------------------------------------------------------

    def log_route(self, request: Request, code: int, elapsed: float | None = None) -> None:
        """Log one request at INFO on the ``kyoukai`` logger: method, path, status, time.

        :param request: The request.
        :param code: The status code of its response.
        :param elapsed: Seconds the application took, if measured.
        """
        if elapsed is None:
            logger.info("%s %s -> %d", request.method, request.full_path.rstrip("?"), code)
        else:
            logger.info(
                "%s %s -> %d (%.2f ms)",
                request.method,
                request.full_path.rstrip("?"),
                code,
                elapsed * 1000,
            )

    async def process_request(self, request: Request, parent_context: Context | None) -> Response:
        """Process one request and return its response. Never raises.

        Finalizes the application first if nothing did yet. Runs the request in a new request
        context (a child of ``parent_context``), matches it,
        runs hooks and handler, routes errors through error handlers, closes the context
        (tearing down request-scoped resources) and logs the request via :meth:`log_route`.
        Backends call this; they must not log the request again.

        :param request: The request.
        :param parent_context: The context request contexts are children of.
        """
        if not self._root.finalized:
            self.finalize()
        if self.debug and is_debugger_request(request.environ.get("QUERY_STRING", "")):
            return debugger_resource(request, self.response_class)
        log = self.access_log and logger.isEnabledFor(logging.INFO)
        started = time.perf_counter() if log else 0.0
        ctx = self.context_class(parent_context, request)
        ctx.app = self
        environ = request.environ
        channel = environ.get(WEBSOCKET_ENVIRON_KEY)
        token = ctx.activate()
        try:
            try:
                if channel is None:
                    route, params, rule = self._root.match(environ)
                else:
                    route, params, rule = match_handshake(self._root, environ)
            except RequestRedirect as redirect:
                # Strict slashes: a temporary redirect keeps the method and body.
                response = self.response_class(status=307, headers={"Location": redirect.new_url})
            except MethodNotAllowed as exc:
                response = self._method_not_allowed(ctx, exc)
            except WebsocketMismatch:
                raise UpgradeRequired() from None
            else:
                ctx.route, ctx.params, ctx.rule, ctx.bp = route, params, rule, route.bp
                if self._on_matched.listeners:
                    self._on_matched.dispatch(ctx=ctx)
                if self._on_invoked.listeners:
                    self._on_invoked.dispatch(ctx=ctx)
                if route.websocket:
                    if channel is None:
                        raise UpgradeRequired()
                    response = await serve_websocket(ctx, route, params, channel)
                else:
                    body = environ.get(BODY_ENVIRON_KEY)
                    if body is not None:
                        # The body is bounded before anything asks the client for it.
                        limit = route.body_limit()
                        if limit is not None:
                            body.set_limit(limit)
                    elif "CONTENT_LENGTH" in environ:
                        check_length(environ["CONTENT_LENGTH"], route.body_limit())
                        if route.stream_body:
                            stream_from_memory(environ)  # the same API, however the body came
                    pre_hooks, post_hooks = route.resolved_hooks()
                    response = await route.invoke_function(
                        ctx,
                        pre_hooks,
                        post_hooks,
                        params,
                        load=body is not None and not route.stream_body,
                    )
                if self._on_returned.listeners:
                    self._on_returned.dispatch(ctx=ctx, result=response)
        except Exception as exc:
            ctx.exception = exc
            response = await self.handle_httpexception(ctx, exc, environ)
        finally:
            torn_down = not ctx.deactivate(token) or await self._tear_down(ctx)
        if BODY_ENVIRON_KEY in environ:
            close_body(request)
        if not torn_down:
            # A request-scoped resource failed to clean up (a database commit, say): the
            # client must not be told that all went well.
            response = InternalServerError().get_response(request.environ)
        if log:
            self.log_route(request, response.status_code, time.perf_counter() - started)
        return response

    @staticmethod
    async def _tear_down(ctx: HTTPRequestContext) -> bool:
        """Run the request context's teardown callbacks; ``False`` (logged) if one failed."""
        try:
            await ctx.close(ctx.exception)
        except TeardownError:
            logger.exception("Teardown of %s %s failed", ctx.request.method, ctx.request.path)
            return False
        return True

    def _method_not_allowed(self, ctx: HTTPRequestContext, exc: MethodNotAllowed) -> Response:
        allowed = sorted({*(exc.valid_methods or ()), "OPTIONS"})
        if ctx.request.method == "OPTIONS":
            return self.response_class(status=200, headers={"Allow": ", ".join(allowed)})
        raise MethodNotAllowed(valid_methods=allowed)

    async def handle_httpexception(
        self,
        ctx: HTTPRequestContext,
        exception: Exception,
        environ: dict[str, Any] | None = None,
    ) -> Response:
        """Turn an error into a response, through the nearest error handler.

        The handler is looked up as :meth:`.Blueprint.get_errorhandler` describes (status code,
        then exception class), from the matched route's blueprint out to the root (for
        unmatched requests, from the blueprint whose prefix fits the path). An exception
        that is not an :class:`~werkzeug.exceptions.HTTPException` and has no handler for its
        class is logged and handled as a 500 (an
        :class:`~werkzeug.exceptions.InternalServerError` whose ``original_exception`` it
        is). With no handler, Werkzeug's default error page is sent. In :attr:`debug` mode,
        such an unexpected error skips the 500 handlers and gets the traceback page.

        If the handler fails, the failure is logged and handled the same way, once: the
        failed handler is not called again, and if the next one fails too, a plain 500 is
        sent. This method never raises.

        :param ctx: The request context.
        :param exception: The exception to handle: an ``HTTPException`` or any other error.
        :param environ: The WSGI environ (the request's if omitted).
        """
        environ = environ or ctx.environ
        bp = ctx.bp if ctx.bp is not None else self._root.find_blueprint_for_path(ctx.request.path)
        failed: Route | None = None
        error = exception
        for attempt in range(2):
            handler, error = self._find_errorhandler(ctx, bp, error, log=attempt == 0)
            if handler is None or handler is failed:
                return self._error_page(ctx, error, environ)
            try:
                response = await handler.invoke_function(
                    ctx, [], [], {}, (error,), default_status=_status_of(error)
                )
            except Exception as exc:
                logger.exception("Error handler %r failed", handler)
                failed, error = handler, exc
                continue
            if isinstance(error, MethodNotAllowed) and "Allow" not in response.headers:
                response.headers["Allow"] = ", ".join(error.valid_methods or ())
            return response
        return self._error_page(ctx, InternalServerError(original_exception=error), environ)

    def _find_errorhandler(
        self, ctx: HTTPRequestContext, bp: Blueprint, error: Exception, *, log: bool
    ) -> tuple[Route | None, Exception]:
        """The handler for ``error`` and what it is given: the error itself, or the 500
        that stands for an unexpected error no handler takes by class (logged if ``log``).
        In debug mode, such an error gets no handler: it is shown."""
        handler = bp.get_errorhandler(error)
        request = ctx.request
        if isinstance(error, HTTPException):
            logger.debug("HTTP exception in %s %s", request.method, request.path, exc_info=error)
            return handler, error
        if handler is not None:
            return handler, error
        if log:
            logger.error(
                "Unhandled exception in %s %s", request.method, request.path, exc_info=error
            )
        if self.debug:
            return None, error
        server_error = InternalServerError(original_exception=error)
        return bp.get_errorhandler(server_error), server_error

    def _error_page(
        self, ctx: HTTPRequestContext, error: Exception, environ: dict[str, Any]
    ) -> Response:
        """The default response for an error no handler took (in debug mode, the traceback
        of an unexpected error)."""
        if not isinstance(error, HTTPException):
            error = InternalServerError(original_exception=error)
        original = getattr(error, "original_exception", None)
        if (
            self.debug
            and isinstance(original, Exception)
            and not isinstance(original, HTTPException)
        ):
            return traceback_response(original, ctx.request, self.response_class)
        return error.get_response(environ)

    # -- serving ----------------------------------------------------------------------------

    def run(
        self,
        ip: str = "127.0.0.1",
        port: int = 4444,
        *,
        component: Any = None,
        debug: bool | None = None,
        **server_options: Any,
    ) -> None:
        """Serve the application with the built-in HTTP server until SIGINT or SIGTERM.

        :param ip: The address to listen on.
        :param port: The port to listen on.
        :param component: A :class:`~kyoukai.asphalt.KyoukaiComponent` to take settings from.
        :param debug: Set :attr:`debug` first (``None`` keeps it).
        :param server_options: Server settings (limits, timeouts, ``ssl``, and ``uds`` with
            ``uds_mode`` to listen on a Unix socket); see the server documentation.
        """
        from kyoukai.backends._server import run_server

        self._set_debug(debug, ip)
        run_server(self, ip, port, component=component, **server_options)

    async def start(
        self,
        ip: str = "127.0.0.1",
        port: int = 4444,
        *,
        component: Any = None,
        base_context: Context | None = None,
        debug: bool | None = None,
        **server_options: Any,
    ) -> KyoukaiServer:
        """Start the built-in HTTP server in the running event loop and return its handle.

        :param ip: The address to listen on.
        :param port: The port to listen on (``0`` picks a free one; see the handle's ``port``).
        :param component: A :class:`~kyoukai.asphalt.KyoukaiComponent` to take settings from.
        :param base_context: The parent context of every request context.
        :param debug: Set :attr:`debug` first (``None`` keeps it).
        :param server_options: Server settings (limits, timeouts, ``ssl``, and ``uds`` with
            ``uds_mode`` to listen on a Unix socket).
        :return: The server handle; ``await handle.stop()`` shuts it down gracefully.
        """
        from kyoukai.backends._server import start_server

        self._set_debug(debug, ip)
        return await start_server(
            self, ip, port, component=component, base_context=base_context, **server_options
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve an ASGI 3 scope: the application *is* an ASGI application
        (``uvicorn module:app``), through an :class:`~kyoukai.backends.asgi.ASGIAdapter`
        made on the first call."""
        adapter = self._asgi
        if adapter is None:
            from kyoukai.backends.asgi import ASGIAdapter

            adapter = self._asgi = ASGIAdapter(self)
        await adapter(scope, receive, send)

    def _set_debug(self, debug: bool | None, ip: str) -> None:
        if debug is not None:
            self.debug = debug
        self.warn_debug(ip)

    def warn_debug(self, ip: str) -> None:
        """Log a warning if :attr:`debug` is on, a loud one unless ``ip`` is a loopback
        address. :meth:`run` and :meth:`start` call it; so should anything else that starts
        serving the application.

        :param ip: The address the application is about to serve.
        """
        if self.debug:
            warn_debug(self.name, ip)


def _status_of(error: Exception) -> int | None:
    """The status a bare body returned by the error's handler is sent with."""
    return error.code if isinstance(error, HTTPException) else 500
