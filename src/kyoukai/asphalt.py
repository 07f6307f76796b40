"""Asphalt integration: the request context, the events, and the server components.

Every request runs in an :class:`HTTPRequestContext`, a child of the context the server (or
the component) was started with, so resources published by other components are reachable
from handlers. :class:`KyoukaiComponent` serves an application from ``asphalt run
config.yml``; ``docs/asphalt.md`` lists its configuration keys.

This module is the public face of names that live in two rooms: the context and events are
part of the core (:mod:`kyoukai._context`), the components sit on top of the servers
(:mod:`kyoukai._component`). Only the package's ``__init__`` imports this module.
"""

from __future__ import annotations

from kyoukai._component import KyoukaiBaseComponent as KyoukaiBaseComponent
from kyoukai._component import KyoukaiComponent as KyoukaiComponent
from kyoukai._config import build_ssl_context as build_ssl_context
from kyoukai._config import resolve_app as resolve_app
from kyoukai._context import PROTOCOL_ENVIRON_KEY as PROTOCOL_ENVIRON_KEY
from kyoukai._context import ConnectionLostEvent as ConnectionLostEvent
from kyoukai._context import ConnectionMadeEvent as ConnectionMadeEvent
from kyoukai._context import CtxEvent as CtxEvent
from kyoukai._context import HTTPRequestContext as HTTPRequestContext
from kyoukai._context import RouteInvokedEvent as RouteInvokedEvent
from kyoukai._context import RouteMatchedEvent as RouteMatchedEvent
from kyoukai._context import RouteReturnedEvent as RouteReturnedEvent

__all__ = [
    "ConnectionLostEvent",
    "ConnectionMadeEvent",
    "CtxEvent",
    "HTTPRequestContext",
    "KyoukaiBaseComponent",
    "KyoukaiComponent",
    "RouteInvokedEvent",
    "RouteMatchedEvent",
    "RouteReturnedEvent",
]
