"""WebSockets under an ASGI server: the ``websocket`` scope over a
:class:`~kyoukai.websocket.Channel`.

The server speaks the wire protocol (its limits, pings and compression apply); Kyoukai routes
the handshake as on its own server: :class:`ASGIChannel` turns the handler's ``accept``,
``receive``, ``send`` and ``close`` into ASGI messages. A handshake the application answers with
an HTTP response is denied with that response where the server offers the
``websocket.http.response`` extension, and closed before accepting (a 403) where it does not.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from werkzeug.wrappers import Response

from kyoukai.websocket import ABNORMAL_CLOSURE, WebSocketDisconnect

__all__ = ["ASGIChannel"]

Message = MutableMapping[str, Any]


class ASGIChannel:
    """One ``websocket`` scope's session, as a :class:`~kyoukai.websocket.Channel`.

    :param scope: The ``websocket`` scope.
    :param receive: The scope's ``receive`` (its ``websocket.connect`` already taken).
    :param send: The scope's ``send``.
    """

    def __init__(
        self,
        scope: MutableMapping[str, Any],
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        self._receive = receive
        self._send = send
        self._denial = "websocket.http.response" in (scope.get("extensions") or {})
        #: ``True`` once the handler accepted.
        self.accepted = False
        self._closed: tuple[int, str] | None = None

    async def accept(self, subprotocol: str | None, headers: list[tuple[str, str]]) -> None:
        raw = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]
        await self._send({"type": "websocket.accept", "subprotocol": subprotocol, "headers": raw})
        self.accepted = True

    async def receive(self) -> str | bytes:
        if self._closed is not None:
            raise WebSocketDisconnect(*self._closed)
        message = await self._receive()
        if message["type"] == "websocket.receive":
            text = message.get("text")
            return text if text is not None else message.get("bytes") or b""
        self._closed = (message.get("code") or 1005, message.get("reason") or "")
        raise WebSocketDisconnect(*self._closed)

    async def send(self, message: str | bytes) -> None:
        if self._closed is not None:
            raise WebSocketDisconnect(*self._closed)
        key = "text" if isinstance(message, str) else "bytes"
        try:
            await self._send({"type": "websocket.send", key: message})
        except Exception:  # the servers raise their own errors once the client is gone
            self._closed = (ABNORMAL_CLOSURE, "")
            raise WebSocketDisconnect(ABNORMAL_CLOSURE, "") from None

    async def close(self, code: int, reason: str) -> None:
        if self._closed is None:
            self._closed = (code, reason)
            await self._send({"type": "websocket.close", "code": code, "reason": reason})

    async def finish(self, response: Response) -> None:
        """Answer a handshake the handler did not accept with ``response`` (nothing to do
        after an accepted session)."""
        if self.accepted:
            return
        if not self._denial:
            await self._send({"type": "websocket.close", "code": 1008, "reason": ""})
            return
        body = response.get_data()
        headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in response.headers.to_wsgi_list()
        ]
        start = {"type": "websocket.http.response.start", "status": response.status_code}
        await self._send({**start, "headers": headers})
        await self._send({"type": "websocket.http.response.body", "body": body})
