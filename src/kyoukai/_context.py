"""The request context and the events Kyoukai dispatches: the core's side of Asphalt.

Every request runs in an :class:`HTTPRequestContext`, a child of the context the server (or
the Asphalt component) was started with, so resources published by other components are
reachable from handlers, and resources added during a request are torn down when it ends.
The public path of these names is :mod:`kyoukai.asphalt`; they live here so that the core
(``app``, ``route``) does not import the components.
"""

from __future__ import annotations

import contextvars
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
    "PROTOCOL_ENVIRON_KEY",
    "ConnectionLostEvent",
    "ConnectionMadeEvent",
    "CtxEvent",
    "HTTPRequestContext",
    "RouteInvokedEvent",
    "RouteMatchedEvent",
    "RouteReturnedEvent",
]

# Enum members looked up once: reading them off the class costs more than the rest of
# setting up a request context.
_OPEN, _CLOSED = ContextState.open, ContextState.closed

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

    #: The :class:`~kyoukai.app.Kyoukai` application handling the request.
    app: Kyoukai | None = None
    #: The matched :class:`~kyoukai.route.Route`, or ``None`` if nothing matched.
    route: Route | None = None
    #: The blueprint of the matched route.
    bp: Blueprint | None = None
    #: The matched Werkzeug :class:`~werkzeug.routing.Rule`.
    rule: Rule | None = None
    #: The exception that escaped the handler or a hook, if any (the response is then an
    #: error response); teardown callbacks see it.
    exception: BaseException | None = None

    def __init__(self, parent: Context | None, request: Request) -> None:
        if _LEAN_CONTEXTS:
            # Exactly what Context.__init__ sets (checked below, at import), without its
            # current-context lookup: this runs for every request.
            self._parent = parent
            self._state = _OPEN
            self._resources = {}
            self._resource_factories = {}
            self._resource_factories_by_context_attr = {}
            self._teardown_callbacks = []
        else:
            # Asphalt 4.12 deprecates Context(parent); build a parentless context, link it.
            super().__init__()
            self._parent = parent
        environ = request.environ
        #: The request being handled.
        self.request = request
        #: The path parameters the route matched with (also set for error handlers).
        self.params: Mapping[str, Any] = {}
        #: The WSGI environ of the request.
        self.environ: dict[str, Any] = environ
        #: The protocol object of the connection (``None`` under the test client).
        self.proto: Any = environ.get(PROTOCOL_ENVIRON_KEY)

    def activate(self) -> Token[Context | None]:
        """Make this the current context (for ``asphalt.core.current_context()``)."""
        return _current_context.set(self)

    def deactivate(self, token: Token[Context | None]) -> bool:
        """Undo :meth:`activate`; close the context at once if nothing needs tearing down.

        :return: ``True`` when teardown callbacks wait: the caller then awaits
            :meth:`~asphalt.core.Context.close`, passing :attr:`exception`, so a per-request
            database session rolls back instead of committing a failed request.
        """
        _current_context.reset(token)
        if self._teardown_callbacks:
            return True
        self._state = _CLOSED
        return False

    def url_for(self, endpoint: str, *, method: str | None = None, **kwargs: Any) -> str:
        """Build the URL of ``endpoint`` for this request's host and scheme.

        See :meth:`kyoukai.blueprint.Blueprint.url_for`; ``force_external=True`` gives an
        absolute URL.
        """
        if self.app is None:
            raise RuntimeError("this context is not attached to an application")
        return self.app.url_for(self.environ, endpoint, method=method, **kwargs)


def _lean_contexts_match() -> bool:
    """Whether a new Asphalt context holds exactly what HTTPRequestContext sets directly."""
    blank = contextvars.Context().run(Context)  # no current context: no parent
    return vars(blank) == {
        "_parent": None,
        "_state": ContextState.open,
        "_resources": {},
        "_resource_factories": {},
        "_resource_factories_by_context_attr": {},
        "_teardown_callbacks": [],
    }


_LEAN_CONTEXTS = _lean_contexts_match()


class ConnectionMadeEvent(Event):
    """Dispatched on :attr:`.Kyoukai.connection_made` when a client connects to the server.

    Not dispatched by WSGI/ASGI adapters, which do not see connections.

    :ivar protocol: The protocol object of the new connection.
    """

    __slots__ = ("protocol",)

    def __init__(self, source: Any, topic: str, *, protocol: Any) -> None:
        super().__init__(source, topic)
        self.protocol = protocol


class ConnectionLostEvent(ConnectionMadeEvent):
    """Dispatched on :attr:`.Kyoukai.connection_lost` when a connection closes.

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
    """Dispatched on :attr:`.Kyoukai.route_matched` when a request matched a route
    (``ctx.route``, ``ctx.params`` are set)."""

    __slots__ = ()


class RouteInvokedEvent(CtxEvent):
    """Dispatched on :attr:`.Kyoukai.route_invoked` just before the route runs."""

    __slots__ = ()


class RouteReturnedEvent(CtxEvent):
    """Dispatched on :attr:`.Kyoukai.route_returned` after the route returned its response.

    :ivar result: The response the route returned.
    """

    __slots__ = ("result",)

    def __init__(
        self, source: Any, topic: str, *, ctx: HTTPRequestContext, result: Response
    ) -> None:
        super().__init__(source, topic, ctx=ctx)
        self.result = result
