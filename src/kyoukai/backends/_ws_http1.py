"""WebSockets over HTTP/1.1: the opening handshake (RFC 6455 section 4) and the connection
after ``101 Switching Protocols``.

:func:`start_websocket` is called by :class:`~kyoukai.backends.httptools_.KyoukaiProtocol`
for a request with ``Upgrade``; a valid handshake goes to the application with a
:class:`~kyoukai.backends._ws.WebSocketWire` in its environ. When the handler accepts,
``Connection.replace`` puts a :class:`WebSocketConnection` in the HTTP protocol's place.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from typing import TYPE_CHECKING, Any, cast

from kyoukai._head import check_header
from kyoukai._version import SERVER_HEADER
from kyoukai.backends._connection import Connection
from kyoukai.backends._flow import FlowControl
from kyoukai.backends._settings import ProtocolError
from kyoukai.backends._ws import WebSocketWire
from kyoukai.websocket import WEBSOCKET_ENVIRON_KEY

if TYPE_CHECKING:
    from kyoukai.backends._state import ServerState
    from kyoukai.backends.httptools_ import KyoukaiProtocol

__all__ = ["WebSocketConnection", "accept_key", "handshake_key", "start_websocket"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_SERVER_LINE = f"Server: {SERVER_HEADER}\r\n".encode("latin-1")


def handshake_key(environ: dict[str, Any]) -> str | None:
    """The ``Sec-WebSocket-Key`` of a valid opening handshake (RFC 6455 section 4.2.1).

    Anything short of one (another method or version, no key) is an ordinary request, as
    RFC 9110 lets a server ignore ``Upgrade``; a WebSocket route then answers **426**.
    """
    if environ["REQUEST_METHOD"] != "GET" or environ.get("HTTP_SEC_WEBSOCKET_VERSION") != "13":
        return None
    if "websocket" not in _tokens(environ.get("HTTP_UPGRADE", "")):
        return None
    if "upgrade" not in _tokens(environ.get("HTTP_CONNECTION", "")):
        return None
    key: str | None = environ.get("HTTP_SEC_WEBSOCKET_KEY")
    try:
        if key is None or len(base64.b64decode(key, validate=True)) != 16:
            return None
    except binascii.Error:
        return None
    return key


def _tokens(value: str) -> set[str]:
    return {token.strip().lower() for token in value.split(",")}


def accept_key(key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value answering ``key``."""
    return base64.b64encode(hashlib.sha1(key.encode("ascii") + _GUID).digest()).decode("ascii")


def start_websocket(protocol: KyoukaiProtocol, rest: bytes) -> bool:
    """Give the handshake request just parsed on ``protocol`` a :class:`WebSocketWire`.

    Only a handshake alone in the pipeline qualifies (a ``101`` may not overtake the
    responses of requests pipelined before it; such a handshake is answered as plain HTTP).
    The connection stops parsing HTTP and reading waits for the handler to accept; a refused
    handshake's response closes the connection.

    :param rest: Bytes the client sent after the handshake request.
    :return: Whether the connection now belongs to the handshake.
    """
    pipeline = protocol._pipeline
    cycle = pipeline[0] if len(pipeline) == 1 else None
    environ = cycle.environ if cycle is not None else None
    key = handshake_key(environ) if environ is not None else None
    flow = protocol._flow
    if key is None or environ is None or cycle is None or cycle.task is None or flow is None:
        return False
    state = protocol._state
    if state.websockets >= state.settings.max_websockets:
        cycle.task.cancel()  # before it ran: the application never sees the handshake
        pipeline.clear()
        protocol.refuse(ProtocolError("too many WebSockets"))
        return True
    protocol.stop_reading_requests()
    cycle.keep_alive = False
    flow.pause_reading()

    def switch(headers: list[tuple[str, str]]) -> None:
        lines = [
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n",
            f"Sec-WebSocket-Accept: {accept_key(key)}\r\n".encode("ascii"),
        ]
        for name, value in headers:
            check_header(name, value)
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        lines += [state.date_line, _SERVER_LINE, b"\r\n"]
        protocol.replace(WebSocketConnection, state, wire, b"".join(lines), rest)

    wire = environ[WEBSOCKET_ENVIRON_KEY] = WebSocketWire(state, environ, switch)
    return True


class WebSocketConnection(Connection):
    """An HTTP/1.1 connection after ``101 Switching Protocols``: it carries one
    :class:`WebSocketWire` (set in place of the HTTP protocol with ``Connection.replace``).

    It keeps what every connection has (the server's registry and timer, the write
    deadline, back-pressure) and hands everything else to the wire.

    :param state: The server's shared state.
    :param wire: The session.
    :param head: The ``101`` response to write first.
    :param rest: Bytes the client sent after its handshake.
    """

    def __init__(self, state: ServerState, wire: WebSocketWire, head: bytes, rest: bytes) -> None:
        super().__init__(state, "", 0)
        self._wire = wire
        self._head = head
        self._rest = rest

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        self._flow = flow = FlowControl(transport)
        self._state.add(self)
        self._state.websockets += 1
        transport.write(self._head)
        self._wire.attach(transport, flow)
        self._deadline = self._wire.tick(self._state.clock)
        transport.resume_reading()  # paused while the handler decided on the handshake
        if self._rest:
            self.data_received(self._rest)

    def data_received(self, data: bytes) -> None:
        self._wire.data_received(data)

    def eof_received(self) -> bool:
        return False  # close: a WebSocket has no half-closed state

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._closed:
            self._state.websockets -= 1
        self._wire.connection_lost()
        super().connection_lost(exc)

    def read_deadline_passed(self, now: float) -> None:
        self._deadline = self._wire.tick(now)

    def stop_reading_requests(self) -> None:
        """Nothing to stop: no HTTP request follows a WebSocket."""

    def shutdown(self) -> None:
        """Nothing yet: the session may end within the grace period; :meth:`abort` follows."""

    def pending_tasks(self) -> list[asyncio.Task[None]]:
        # Once the connection is lost the wire, not connection_lost, ends the handler.
        task = self._wire.task
        return [task] if task is not None and not task.done() and not self._closed else []

    def abort(self) -> None:
        """End of the grace period: close with 1001 (going away), drop a client that does not
        read."""
        self._wire.going_away()
        flow = self._flow
        if flow is not None and flow.write_paused and self.transport is not None:
            self.transport.abort()
