"""The Asphalt component that serves a Kyoukai application over HTTP/2 only, with TLS.

Its public path is :mod:`kyoukai.backends.http2` (as the spec has it), which re-exports it
lazily: a backend module may not import the components layer this class belongs to.
"""

from __future__ import annotations

from typing import Any

from kyoukai._component import KyoukaiComponent
from kyoukai.app import Kyoukai
from kyoukai.backends._server import ProtocolFactory
from kyoukai.backends.http2 import H2KyoukaiProtocol

__all__ = ["H2KyoukaiComponent"]


class H2KyoukaiComponent(KyoukaiComponent):
    """A component that serves HTTP/2 over TLS (ALPN ``h2``), and no HTTP/1.1, on its port.

    To serve HTTP/1.1 as well, on the same port, use
    :class:`~kyoukai.asphalt.KyoukaiComponent` with ``http2: true``; to serve them on two
    ports, run one component of each.

    :param app: The application, or a ``"module:attribute"`` reference to it.
    :param ssl_keyfile: The path of the private key (PEM).
    :param ssl_certfile: The path of the certificate chain (PEM).
    :param ip: The address to listen on.
    :param port: The port to listen on; ``0`` lets the system pick a free one.
    :param cfg: ``resource_name``, ``access_log``, ``debug``, ``run_server`` and any server
        setting, as for :class:`~kyoukai.asphalt.KyoukaiComponent`.
    :raises TypeError: If a key is unknown or a value has the wrong type.
    :raises ValueError: If the certificate or key cannot be loaded.
    """

    backend = "kyoukai.backends.http2"

    def __init__(
        self,
        app: Kyoukai | str,
        ssl_keyfile: str,
        ssl_certfile: str,
        *,
        ip: str = "127.0.0.1",
        port: int = 4444,
        **cfg: Any,
    ) -> None:
        for key in ("ssl", "http2"):
            if key in cfg:
                raise TypeError(
                    f"{key} is not a key of H2KyoukaiComponent: it always serves HTTP/2 over TLS "
                    "with ssl_certfile and ssl_keyfile; use KyoukaiComponent to choose"
                )
        tls = {"ssl_certfile": ssl_certfile, "ssl_keyfile": ssl_keyfile}
        super().__init__(app, ip, port, ssl=tls, http2=True, **cfg)
        assert self.ssl_context is not None
        self.ssl_context.set_alpn_protocols(["h2"])

    def protocol_class(self) -> ProtocolFactory:
        """Every connection speaks HTTP/2."""
        return H2KyoukaiProtocol
