"""The version of Kyoukai, and the ``Server`` header value every backend sends."""

from __future__ import annotations

__all__ = ["SERVER_HEADER", "__version__"]

__version__ = "3.0.0.dev0"

#: The ``Server`` header value of every response the built-in servers write.
SERVER_HEADER = f"Kyoukai/{__version__}"
