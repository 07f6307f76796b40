"""``get``/``post``/``put``/``patch``/``delete``: one-method shortcuts for ``route()``, and
``websocket`` for WebSocket routes.

The application and blueprints inherit them; route groups have the same as functions in
:mod:`kyoukai.routegroup`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol

from kyoukai._types import Handler

if TYPE_CHECKING:
    from kyoukai.route import Route

__all__ = ["MethodShortcuts"]

RouteDecorator = Callable[["Handler | Route"], "Route"]


class _Routable(Protocol):
    def route(
        self, routing_url: str, methods: Iterable[str] = ..., **kwargs: Any
    ) -> RouteDecorator: ...


class MethodShortcuts:
    """Decorators adding a route for one method, as ``route(url, methods=[method])`` would.

    Keyword arguments go to :class:`~kyoukai.route.Route`, as with ``route()``; stacking
    them, or mixing them with ``route()``, adds each path to the same route.
    """

    def get(self: _Routable, url: str, **kwargs: Any) -> RouteDecorator:
        """Decorator: a ``GET`` route under ``url`` (it answers ``HEAD`` too)."""
        return self.route(url, ("GET",), **kwargs)

    def post(self: _Routable, url: str, **kwargs: Any) -> RouteDecorator:
        """Decorator: a ``POST`` route under ``url``."""
        return self.route(url, ("POST",), **kwargs)

    def put(self: _Routable, url: str, **kwargs: Any) -> RouteDecorator:
        """Decorator: a ``PUT`` route under ``url``."""
        return self.route(url, ("PUT",), **kwargs)

    def patch(self: _Routable, url: str, **kwargs: Any) -> RouteDecorator:
        """Decorator: a ``PATCH`` route under ``url``."""
        return self.route(url, ("PATCH",), **kwargs)

    def delete(self: _Routable, url: str, **kwargs: Any) -> RouteDecorator:
        """Decorator: a ``DELETE`` route under ``url``."""
        return self.route(url, ("DELETE",), **kwargs)

    def websocket(self: _Routable, url: str, **kwargs: Any) -> RouteDecorator:
        """Decorator: a WebSocket route under ``url``, ``async def handler(ctx, ws, **params)``
        with ``ws`` a :class:`~kyoukai.websocket.WebSocket`. Plain HTTP requests to the path
        get **426**; see :mod:`kyoukai.websocket` for the handshake and the session."""
        return self.route(url, ("GET",), websocket=True, **kwargs)
