"""Kyoukai (境界): a fast asynchronous web microframework on asyncio, Werkzeug and Asphalt."""

from __future__ import annotations

__version__ = "3.0.0.dev0"

from kyoukai.app import Kyoukai as Kyoukai  # noqa: E402
from kyoukai.asphalt import HTTPRequestContext as HTTPRequestContext  # noqa: E402
from kyoukai.blueprint import Blueprint as Blueprint  # noqa: E402
from kyoukai.route import Route as Route  # noqa: E402
from kyoukai.routegroup import RouteGroup as RouteGroup  # noqa: E402
from kyoukai.testing import TestKyoukai as TestKyoukai  # noqa: E402

__all__ = [
    "Blueprint",
    "HTTPRequestContext",
    "Kyoukai",
    "Route",
    "RouteGroup",
    "TestKyoukai",
    "__version__",
]
