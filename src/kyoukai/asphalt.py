"""Asphalt integration: the request context and the events Kyoukai dispatches.

Every request runs in an :class:`HTTPRequestContext`, a child of the context the server (or
the Asphalt component) was started with, so resources published by other components are
reachable from handlers, and resources added during a request are torn down when it ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextvars import Token
from typing import TYPE_CHECKING, Any

from asphalt.core import Context, Event

# Asphalt 4 tracks the current context in this variable (``current_context()`` reads it).
# Setting it directly costs a fraction of ``async with ctx`` on every request.
from asphalt.core.context import ContextState, _current_context
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    from werkzeug.routing import Rule

    from kyoukai.app import Kyoukai
    from kyoukai.blueprint import Blueprint
    from kyoukai.route import Route

__all__ = [
    "ConnectionLostEvent",
    "ConnectionMadeEvent",
    "CtxEvent",
    "HTTPRequestContext",
    "RouteInvokedEvent",
    "RouteMatchedEvent",
    "RouteReturnedEvent",
]

#: The environ key under which a server backend puts its protocol object.
PROTOCOL_ENVIRON_KEY = "kyoukai.protocol"


class HTTPRequestContext(Context):
    """The context every handler, hook and error handler receives as ``ctx``.

    It is an Asphalt :class:`~asphalt.core.Context` whose parent is the server's base
    context: ``ctx.require_resource(...)`` finds resources published there, and resources
    or teardown callbacks added to ``ctx`` live only as long as the request.

    :param parent: The parent context (the component's or server's base context).
    :param request: The request being handled.
    """

    def __init__(self, parent: Context | None, request: Request) -> None:
        # Asphalt 4.12 deprecates Context(parent); build a parentless context, then link it.
        super().__init__()
        self._parent = parent
        environ = request.environ
        #: The :class:`~kyoukai.app.Kyoukai` application handling the request.
        self.app: Kyoukai | None = None
        #: The request being handled.
        self.request = request
        #: The path parameters the route matched with (also set for error handlers).
        self.params: Mapping[str, Any] = {}
        #: The matched :class:`~kyoukai.route.Route`, or ``None`` if nothing matched.
        self.route: Route | None = None
        #: The blueprint of the matched route.
        self.bp: Blueprint | None = None
        #: The matched Werkzeug :class:`~werkzeug.routing.Rule`.
        self.rule: Rule | None = None
        #: The WSGI environ of the request.
        self.environ: dict[str, Any] = environ
        #: The protocol object of the connection (``None`` under the test client).
        self.proto: Any = environ.get(PROTOCOL_ENVIRON_KEY)
        #: The exception that escaped the handler or a hook, if any (the response is then
        #: an error response); teardown callbacks see it.
        self.exception: BaseException | None = None

    def activate(self) -> Token[Context]:
        """Make this the current context (for ``asphalt.core.current_context()``)."""
        return _current_context.set(self)

    async def finish(self, token: Token[Context]) -> None:
        """Undo :meth:`activate` and close the context, running its teardown callbacks.

        Callbacks registered with ``pass_exception=True`` receive :attr:`exception`, so a
        per-request database session rolls back instead of committing a failed request.

        :raises asphalt.core.TeardownError: If a teardown callback failed.
        """
        _current_context.reset(token)
        if self._teardown_callbacks:
            await self.close(self.exception)
        else:
            self._state = ContextState.closed

    def url_for(self, endpoint: str, *, method: str | None = None, **kwargs: Any) -> str:
        """Build the URL of ``endpoint`` for this request's host and scheme.

        See :meth:`kyoukai.blueprint.Blueprint.url_for`; ``force_external=True`` gives an
        absolute URL.
        """
        if self.app is None:
            raise RuntimeError("this context is not attached to an application")
        return self.app.url_for(self.environ, endpoint, method=method, **kwargs)


class ConnectionMadeEvent(Event):
    """Dispatched on :attr:`Kyoukai.connection_made` when a client connects to the server.

    Not dispatched by WSGI/ASGI adapters, which do not see connections.

    :ivar protocol: The protocol object of the new connection.
    """

    __slots__ = ("protocol",)

    def __init__(self, source: Any, topic: str, *, protocol: Any) -> None:
        super().__init__(source, topic)
        self.protocol = protocol


class ConnectionLostEvent(ConnectionMadeEvent):
    """Dispatched on :attr:`Kyoukai.connection_lost` when a connection closes.

    :ivar protocol: The protocol object of the closed connection.
    """

    __slots__ = ()


class CtxEvent(Event):
    """Base class of the per-request events.

    :ivar ctx: The :class:`HTTPRequestContext` of the request.
    """

    __slots__ = ("ctx",)

    def __init__(self, source: Any, topic: str, *, ctx: HTTPRequestContext) -> None:
        super().__init__(source, topic)
        self.ctx = ctx


class RouteMatchedEvent(CtxEvent):
    """Dispatched on :attr:`Kyoukai.route_matched` when a request matched a route
    (``ctx.route``, ``ctx.params`` are set)."""

    __slots__ = ()


class RouteInvokedEvent(CtxEvent):
    """Dispatched on :attr:`Kyoukai.route_invoked` just before the route runs."""

    __slots__ = ()


class RouteReturnedEvent(CtxEvent):
    """Dispatched on :attr:`Kyoukai.route_returned` after the route returned its response.

    :ivar result: The response the route returned.
    """

    __slots__ = ("result",)

    def __init__(
        self, source: Any, topic: str, *, ctx: HTTPRequestContext, result: Response
    ) -> None:
        super().__init__(source, topic, ctx=ctx)
        self.result = result
