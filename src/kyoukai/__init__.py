"""Kyoukai (境界): a fast asynchronous web microframework on asyncio, Werkzeug and Asphalt."""

from __future__ import annotations

from kyoukai._body import Request as Request
from kyoukai._version import __version__ as __version__
from kyoukai.app import Kyoukai as Kyoukai
from kyoukai.asphalt import HTTPRequestContext as HTTPRequestContext
from kyoukai.asphalt import KyoukaiComponent as KyoukaiComponent
from kyoukai.blueprint import Blueprint as Blueprint
from kyoukai.route import Route as Route
from kyoukai.routegroup import RouteGroup as RouteGroup
from kyoukai.testing import TestKyoukai as TestKyoukai

__all__ = [
    "Blueprint",
    "HTTPRequestContext",
    "Kyoukai",
    "KyoukaiComponent",
    "Request",
    "Route",
    "RouteGroup",
    "TestKyoukai",
    "__version__",
]
