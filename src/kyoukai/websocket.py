"""WebSocket sessions: what a ``@bp.websocket(...)`` handler gets as ``ws``.

A :class:`WebSocket` knows nothing of frames or sockets. It runs over a :class:`Channel`, which
each transport implements: the built-in HTTP/1.1 server (RFC 6455 after a ``101``), and the
test client (in process). A transport marks a handshake request by putting its channel in the
environ under :data:`WEBSOCKET_ENVIRON_KEY`; the application runs the route over it.

Until :meth:`WebSocket.accept` the handshake is ordinary HTTP: the pre-request hooks run, and a
hook or handler that raises (an ``HTTPException`` or anything else) or returns a response
answers the handshake with that response, through the error handlers. After ``accept()`` the
session is the handler's until it returns (the socket is closed with 1000) or raises (closed
with 1011, logged once).
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from werkzeug.exceptions import Forbidden, HTTPException, NotFound
from werkzeug.routing import WebsocketMismatch
from werkzeug.wrappers import Request, Response

from kyoukai.blueprint import Blueprint, _route_of

if TYPE_CHECKING:
    from werkzeug.routing import Rule

    from kyoukai._context import HTTPRequestContext
    from kyoukai.route import Route

__all__ = [
    "WEBSOCKET_ENVIRON_KEY",
    "Channel",
    "WebSocket",
    "WebSocketDisconnect",
    "check_close_code",
]

logger = logging.getLogger("kyoukai")

_M = TypeVar("_M", str, bytes)

#: The environ key under which a transport puts the :class:`Channel` of a handshake request.
WEBSOCKET_ENVIRON_KEY = "kyoukai.websocket"

#: Close codes an endpoint may send (RFC 6455 section 7.4; 1004-1006 and 1015 are reserved),
#: besides the ranges 3000-4999 for libraries and applications.
SENDABLE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014})

#: The code a transport reports when the connection ended without a close frame.
ABNORMAL_CLOSURE = 1006


class WebSocketDisconnect(Exception):
    """The WebSocket is closed: raised by ``receive*()`` once the peer closed, and by sending
    after the session closed.

    :param code: The close code (1006 when the connection ended without a close frame).
    :param reason: The close reason.
    """

    def __init__(self, code: int = 1000, reason: str = "") -> None:
        super().__init__(code, reason)
        #: The close code.
        self.code = code
        #: The close reason.
        self.reason = reason

    def __str__(self) -> str:
        return f"WebSocket closed with {self.code}" + (f": {self.reason}" if self.reason else "")


class UpgradeRequired(HTTPException):
    """*426 Upgrade Required*: a WebSocket route asked for by a plain HTTP request."""

    code = 426
    description = "This resource speaks WebSocket only; connect with a WebSocket client."

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        """The error page's headers, and the protocol to upgrade to (RFC 9110 section 15.5.22)
        with the WebSocket version the server speaks (RFC 6455 section 4.4).

        :param environ: The request's WSGI environ.
        :param scope: The request's ASGI scope.
        """
        upgrade = [("Upgrade", "websocket"), ("Sec-WebSocket-Version", "13")]
        return [*super().get_headers(environ, scope), *upgrade]


class Channel(Protocol):
    """What a transport provides to a :class:`WebSocket`: the session's messages, one at a
    time, in both directions. Every method may raise :class:`WebSocketDisconnect`."""

    async def accept(self, subprotocol: str | None, headers: list[tuple[str, str]]) -> None:
        """Complete the handshake (``101`` with ``subprotocol`` and ``headers``)."""

    async def receive(self) -> str | bytes:
        """The next message from the client; raises :class:`WebSocketDisconnect` once closed."""

    async def send(self, message: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message; waits while the client is
        behind, raises :class:`WebSocketDisconnect` once closed."""

    async def close(self, code: int, reason: str) -> None:
        """Start (or answer) the closing handshake and wait for it to end, within bounds."""


def check_close_code(code: int) -> None:
    """Refuse a close code an endpoint may not send.

    :raises ValueError: If ``code`` is not 1000-1003, 1007-1014 or 3000-4999.
    """
    if code not in SENDABLE_CODES and not 3000 <= code <= 4999:
        raise ValueError(
            f"{code} is not a close code a server may send: use 1000 (normal), 1001 (going "
            "away), 1008 (policy violation), 1011 (server error) or 3000-4999 for your own"
        )


class WebSocket:
    """One WebSocket session, as a ``websocket`` route's handler gets it.

    :param request: The handshake request.
    :param channel: The transport's side of the session.
    """

    def __init__(self, request: Request, channel: Channel) -> None:
        #: The handshake request (headers, cookies, query string).
        self.request = request
        self._channel = channel
        offered = request.headers.get("Sec-WebSocket-Protocol", "")
        self._subprotocols = [token.strip() for token in offered.split(",") if token.strip()]
        #: ``True`` once :meth:`accept` completed the handshake.
        self.accepted = False
        #: ``True`` when :meth:`close` was called before :meth:`accept`: the handshake is
        #: refused with 403.
        self.refused = False
        self._close: tuple[int, str] | None = None

    def __repr__(self) -> str:
        state = "closed" if self._close else "open" if self.accepted else "connecting"
        return f"<WebSocket {self.request.path!r} {state}>"

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered (``Sec-WebSocket-Protocol``), in its order."""
        return list(self._subprotocols)

    @property
    def close_code(self) -> int | None:
        """The close code, once the session is closed (by either side)."""
        return self._close[0] if self._close is not None else None

    @property
    def close_reason(self) -> str | None:
        """The close reason, once the session is closed (by either side)."""
        return self._close[1] if self._close is not None else None

    async def accept(
        self,
        subprotocol: str | None = None,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    ) -> None:
        """Complete the handshake: answer ``101 Switching Protocols``.

        :param subprotocol: The subprotocol chosen, one of :attr:`subprotocols`.
        :param headers: Extra headers for the ``101`` response (cookies, say).
        :raises ValueError: If the client did not offer ``subprotocol``.
        :raises RuntimeError: If the session was already accepted or closed.
        """
        if self.accepted or self.refused:
            raise RuntimeError(f"{self!r} was already accepted or closed: accept() it once")
        if subprotocol is not None and subprotocol not in self._subprotocols:
            raise ValueError(
                f"the client offered the subprotocols {self._subprotocols}, not "
                f"{subprotocol!r}: choose one of them, or None"
            )
        pairs = list(headers.items() if isinstance(headers, Mapping) else headers or ())
        await self._channel.accept(subprotocol, pairs)
        self.accepted = True

    async def receive(self) -> str | bytes:
        """The next message: ``str`` for a text message, ``bytes`` for a binary one.

        :raises WebSocketDisconnect: Once the session is closed.
        """
        self._check_open("receive")
        try:
            return await self._channel.receive()
        except WebSocketDisconnect as exc:
            self._closed(exc.code, exc.reason)
            raise

    async def receive_text(self) -> str:
        """The next message, which must be a text one; a binary one closes the session with
        1003 (unsupported data).

        :raises WebSocketDisconnect: Once the session is closed.
        """
        return await self._receive_kind(str, "text")

    async def receive_bytes(self) -> bytes:
        """The next message, which must be a binary one; a text one closes the session with
        1003 (unsupported data).

        :raises WebSocketDisconnect: Once the session is closed.
        """
        return await self._receive_kind(bytes, "binary")

    async def _receive_kind(self, kind: type[_M], name: str) -> _M:
        message = await self.receive()
        if not isinstance(message, kind):
            await self.close(1003, f"expected a {name} message")
            raise WebSocketDisconnect(1003, f"expected a {name} message")
        return message

    async def receive_json(self) -> Any:
        """The next message (text or binary) decoded as JSON.

        :raises ValueError: If it is not JSON.
        :raises WebSocketDisconnect: Once the session is closed.
        """
        return json.loads(await self.receive())

    async def send(self, data: str | bytes | bytearray | memoryview) -> None:
        """Send ``data``: a ``str`` as a text message, bytes as a binary one. Waits while the
        client is behind in reading.

        :raises WebSocketDisconnect: If the session is closed.
        """
        self._check_open("send")
        message = data if isinstance(data, str | bytes) else bytes(data)
        try:
            await self._channel.send(message)
        except WebSocketDisconnect as exc:
            self._closed(exc.code, exc.reason)
            raise

    async def send_text(self, data: str) -> None:
        """Send a text message."""
        await self.send(data)

    async def send_bytes(self, data: bytes | bytearray | memoryview) -> None:
        """Send a binary message."""
        await self.send(data)

    async def send_json(self, data: Any) -> None:
        """Send ``data`` encoded as JSON, in a text message."""
        await self.send(json.dumps(data, separators=(",", ":")))

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the session (a no-op once it is closed).

        Before :meth:`accept`, the handshake is refused with **403** instead.

        :param code: The close code: 1000 (normal), 1001, 1008, 1011, ... or 3000-4999.
        :param reason: A short reason (at most 123 bytes in UTF-8).
        :raises ValueError: For a code that may not be sent, or a reason too long.
        """
        check_close_code(code)
        if len(reason.encode("utf-8")) > 123:
            raise ValueError("a close reason is at most 123 bytes long in UTF-8")
        if not self.accepted:
            self.refused = True
            return
        if self._close is not None:
            return
        self._closed(code, reason)
        try:
            await self._channel.close(code, reason)
        except WebSocketDisconnect:
            pass

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[str | bytes]:
        """Every message until the session closes (the disconnect ends the loop)."""
        while True:
            try:
                message = await self.receive()
            except WebSocketDisconnect:
                return
            yield message

    def _check_open(self, action: str) -> None:
        if not self.accepted:
            raise RuntimeError(f"cannot {action} before the handshake: await ws.accept() first")
        if self._close is not None:
            raise WebSocketDisconnect(*self._close)

    def _closed(self, code: int, reason: str) -> None:
        if self._close is None:
            self._close = (code, reason)


def match_handshake(
    root: Blueprint, environ: dict[str, Any]
) -> tuple[Route, Mapping[str, Any], Rule]:
    """Match a handshake against the WebSocket routes of ``root``'s finalized map.

    Handshakes are rare next to requests: they skip the caches of ``Blueprint.match``.

    :return: ``(route, params, rule)``.
    :raises werkzeug.exceptions.NotFound: If no WebSocket route has the path (HTTP routes do
        not answer handshakes).
    :raises werkzeug.exceptions.MethodNotAllowed: If the path answers other methods only.
    """
    if root.map is None:
        raise RuntimeError("the routing map is not built yet: call app.finalize() first")
    path = environ.get("PATH_INFO") or "/"
    if not path.isascii():
        path = path.encode("latin-1").decode("utf-8", "replace")
    method = environ.get("REQUEST_METHOD", "GET")
    for routing_map in (root._host_map, root.map):
        if routing_map is None:
            continue
        adapter = routing_map.bind_to_environ(environ)
        try:
            rule, params = adapter.match(path, method, return_rule=True, websocket=True)
        except (NotFound, WebsocketMismatch):
            continue
        return _route_of(rule), params, rule
    raise NotFound()


async def serve_websocket(
    ctx: HTTPRequestContext, route: Route, params: Mapping[str, Any], channel: Channel
) -> Response:
    """Run a ``websocket`` route's hooks and handler over ``channel``.

    :return: The response that answers the handshake when the handler did not accept it (its
        return value; ``None`` or :meth:`WebSocket.close` before accepting give 403), or a
        ``101`` response once an accepted session ended.
    :raises Exception: Whatever a hook or the handler raised before accepting (the caller's
        error handlers answer the handshake).
    """
    ws = WebSocket(ctx.request, channel)
    pre_hooks, _ = route.resolved_hooks()
    try:
        response = await route.invoke_function(ctx, pre_hooks, [], params, (ws,))
    except WebSocketDisconnect:
        pass  # the client left: nothing to report
    except Exception as exc:
        if not ws.accepted:
            raise
        ctx.exception = exc
        logger.error(
            "Unhandled exception in WebSocket %s; closing with 1011", ctx.request.path, exc_info=exc
        )
        await ws.close(1011, "internal error")
    else:
        if not ws.accepted:
            if ws.refused or response.status_code == 204:
                raise Forbidden("the server refused the WebSocket handshake")
            return response
    await ws.close(1000)
    return Response(status=101)
