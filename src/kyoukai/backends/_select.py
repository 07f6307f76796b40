"""The one place that picks a connection's protocol when a server speaks HTTP/2 and HTTP/1.1.

Over TLS, ALPN decides: ``h2`` (offered first) or ``http/1.1``. On cleartext, a connection
whose first bytes are the HTTP/2 client preface is HTTP/2 ("prior knowledge", RFC 9113
section 3.3), and an HTTP/1.1 request with ``Upgrade: h2c`` and ``HTTP2-Settings`` is
answered with ``101 Switching Protocols`` and continued as stream 1 of an HTTP/2 connection
(RFC 7540 section 3.2). Everything else is HTTP/1.1, unchanged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from typing import Any

from kyoukai.backends._h2limits import PREFACE
from kyoukai.backends.http2 import H2KyoukaiProtocol
from kyoukai.backends.httptools_ import KyoukaiProtocol

__all__ = ["ALPN_PROTOCOLS", "SelectingProtocol", "asks_h2c"]

#: What the server offers in ALPN when it speaks HTTP/2, in order of preference.
ALPN_PROTOCOLS = ["h2", "http/1.1"]

_SWITCHING = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
#: Keys of the upgrade request's environ that belong to the HTTP/1.1 hop.
_HOP_KEYS = ("HTTP_UPGRADE", "HTTP_CONNECTION", "HTTP_HTTP2_SETTINGS")


def _tokens(value: str | None) -> set[str]:
    return {token.strip().lower() for token in value.split(",")} if value else set()


def asks_h2c(environ: dict[str, Any]) -> bytes | None:
    """The ``HTTP2-Settings`` of a request that asks to upgrade to h2c, checked and padded.

    :return: The header's value as bytes, or ``None`` if the request does not ask for h2c
        (or asks wrongly: then it is answered as HTTP/1.1, as RFC 9110 section 7.8 allows).
    """
    if "h2c" not in _tokens(environ.get("HTTP_UPGRADE")):
        return None
    if not {"upgrade", "http2-settings"} <= _tokens(environ.get("HTTP_CONNECTION")):
        return None
    settings: str | None = environ.get("HTTP_HTTP2_SETTINGS")
    if settings is None or "," in settings:
        return None
    raw = settings.strip().encode("latin-1")
    try:
        payload = base64.urlsafe_b64decode(raw + b"=" * (-len(raw) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(payload) % 6:
        return None
    return raw + b"=" * (-len(raw) % 4)


class SelectingProtocol(KyoukaiProtocol):
    """HTTP/1.1 that hands its connection to HTTP/2 when ALPN, the preface or h2c says so.

    Takes the arguments of :class:`~kyoukai.backends.httptools_.KyoukaiProtocol`; the
    HTTP/2 protocol it hands over to shares the server's state.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The first bytes while they may still be the HTTP/2 preface; ``None`` once decided.
        self._sniffed: bytes | None = b""
        self._h2c: tuple[dict[str, Any], bytes] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Hand a TLS connection that chose ``h2`` to HTTP/2; serve others as HTTP/1.1."""
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self._sniffed = None  # no prior knowledge nor h2c over TLS (RFC 9113 section 3.2)
            if ssl_object.selected_alpn_protocol() == "h2":
                protocol = H2KyoukaiProtocol(*self._h2_args(), state=self._state)
                self._closed = True
                transport.set_protocol(protocol)
                protocol.connection_made(transport)
                return
        super().connection_made(transport)

    def data_received(self, data: bytes) -> None:
        """Look for the HTTP/2 preface in the first bytes, then read as HTTP/1.1 or HTTP/2."""
        sniffed = self._sniffed
        if sniffed is None:
            super().data_received(data)
            return
        if sniffed:
            data = sniffed + data
        if len(data) < len(PREFACE) and PREFACE.startswith(data):
            self._sniffed = data
            return
        self._sniffed = None
        if data.startswith(PREFACE):
            protocol = self.replace(H2KyoukaiProtocol, *self._h2_args(), state=self._state)
            protocol.data_received(data)
        else:
            super().data_received(data)

    def _h2_args(self) -> tuple[Any, ...]:
        return (self.component, self.parent_context, self.server_ip, self.server_port)

    def on_message_complete(self) -> None:
        """Keep an h2c upgrade request for stream 1 instead of answering it as HTTP/1.1."""
        environ = self._environ
        if (
            environ is not None
            and not self._pipeline
            and self.transport is not None
            and self.transport.get_extra_info("ssl_object") is None
            and self.parser.should_upgrade()
        ):
            settings = asks_h2c(environ)
            if settings is not None:
                self._environ = None
                self._h2c = (environ, settings)
                self.stop_reading_requests()
                return
        super().on_message_complete()

    def on_upgrade(self, rest: bytes) -> None:
        """Switch to HTTP/2 after an h2c upgrade request: 101, then stream 1."""
        upgrade = self._h2c
        if upgrade is None:
            super().on_upgrade(rest)
            return
        self._h2c = None
        environ, settings = upgrade
        for key in _HOP_KEYS:
            environ.pop(key, None)
        self._raw_write(_SWITCHING)
        protocol = self.replace(
            H2KyoukaiProtocol, *self._h2_args(), state=self._state, upgrade=(environ, settings)
        )
        if rest:
            protocol.data_received(rest)
