"""The test client's WebSockets: a session with the application in process, no sockets.

:meth:`TestKyoukai.websocket_connect <kyoukai.testing.TestKyoukai.websocket_connect>` runs
the handshake through ``process_request`` with an :class:`InProcessChannel` in the environ, the
way the servers do with theirs. Messages travel through two queues; a close travels as a
:class:`_Close` item, so each side sees the other's code and reason.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from werkzeug import wrappers

from kyoukai.websocket import (
    ABNORMAL_CLOSURE,
    WEBSOCKET_ENVIRON_KEY,
    WebSocketDisconnect,
    check_close_code,
)

if TYPE_CHECKING:
    from asphalt.core import Context

    from kyoukai.app import Kyoukai

__all__ = [
    "HANDSHAKE_HEADERS",
    "InProcessChannel",
    "WebSocketConnect",
    "WebSocketRejected",
    "WebSocketTestSession",
]

#: The headers of a client's opening handshake (RFC 6455 section 4.1), key included.
HANDSHAKE_HEADERS = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}

#: Seconds the handler gets to finish after the test session closed, before it is cancelled
#: (the server cancels a handler whose connection is gone, too).
HANDLER_GRACE = 1.0


class WebSocketRejected(Exception):
    """The application answered the handshake with an HTTP response instead of accepting.

    :param response: That response (``status_code``, headers, body).
    """

    def __init__(self, response: wrappers.Response) -> None:
        super().__init__(f"the WebSocket handshake was refused with {response.status}")
        #: The response that answered the handshake.
        self.response = response


class _Close:
    __slots__ = ("code", "reason")

    def __init__(self, code: int, reason: str) -> None:
        self.code = code
        self.reason = reason


Item = str | bytes | _Close


class _End:
    """One direction of the session: a queue of messages, then maybe a close."""

    __slots__ = ("closed", "queue")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Item] = asyncio.Queue()
        #: ``(code, reason)`` once this direction carried a close.
        self.closed: tuple[int, str] | None = None

    async def get(self) -> str | bytes:
        if self.closed is not None:
            raise WebSocketDisconnect(*self.closed)
        item = await self.queue.get()
        if isinstance(item, _Close):
            self.closed = (item.code, item.reason)
            raise WebSocketDisconnect(item.code, item.reason)
        return item


class InProcessChannel:
    """The application's side of an in-process session (a :class:`~kyoukai.websocket.Channel`)."""

    def __init__(self) -> None:
        self.to_server = _End()
        self.to_client = _End()
        #: Set once the application accepted the handshake.
        self.accepted = asyncio.Event()
        #: The subprotocol and headers the application accepted with.
        self.subprotocol: str | None = None
        self.headers: list[tuple[str, str]] = []
        self._sent_close = False

    async def accept(self, subprotocol: str | None, headers: list[tuple[str, str]]) -> None:
        self.subprotocol, self.headers = subprotocol, headers
        self.accepted.set()

    async def receive(self) -> str | bytes:
        return await self.to_server.get()

    async def send(self, message: str | bytes) -> None:
        self._check_open()
        self.to_client.queue.put_nowait(message)

    async def close(self, code: int, reason: str) -> None:
        self.end(code, reason)

    def end(self, code: int, reason: str) -> None:
        """Send the application's close to the client, unless it already went."""
        if not self._sent_close:
            self._sent_close = True
            self.to_client.queue.put_nowait(_Close(code, reason))

    def _check_open(self) -> None:
        if self.to_server.closed is not None:
            raise WebSocketDisconnect(*self.to_server.closed)
        if self._sent_close:
            raise WebSocketDisconnect(1000, "")


class WebSocketTestSession:
    """The client's side of an in-process WebSocket, inside ``websocket_connect``'s block."""

    def __init__(self, channel: InProcessChannel, task: asyncio.Task[Any]) -> None:
        self._channel = channel
        self._task = task
        self._closed: tuple[int, str] | None = None
        #: The subprotocol the application chose, or ``None``.
        self.subprotocol = channel.subprotocol
        #: The extra headers of the application's ``101`` response.
        self.headers = channel.headers

    async def send(self, data: str | bytes) -> None:
        """Send a text (``str``) or binary (``bytes``) message.

        :raises WebSocketDisconnect: If the session is closed.
        """
        if self._closed is not None:
            raise WebSocketDisconnect(*self._closed)
        if self._channel.to_client.closed is not None:
            raise WebSocketDisconnect(*self._channel.to_client.closed)
        self._channel.to_server.queue.put_nowait(data)

    async def send_text(self, data: str) -> None:
        """Send a text message."""
        await self.send(data)

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary message."""
        await self.send(data)

    async def send_json(self, data: Any) -> None:
        """Send ``data`` as JSON in a text message."""
        await self.send(json.dumps(data))

    async def receive(self) -> str | bytes:
        """The next message from the application.

        :raises WebSocketDisconnect: Once the application closed the session.
        """
        return await self._channel.to_client.get()

    async def receive_text(self) -> str:
        """The next message, which must be a text one (``TypeError`` otherwise)."""
        message = await self.receive()
        if not isinstance(message, str):
            raise TypeError(f"expected a text message, got {len(message)} bytes of binary")
        return message

    async def receive_bytes(self) -> bytes:
        """The next message, which must be a binary one (``TypeError`` otherwise)."""
        message = await self.receive()
        if not isinstance(message, bytes):
            raise TypeError(f"expected a binary message, got the text {message[:40]!r}")
        return message

    async def receive_json(self) -> Any:
        """The next message decoded as JSON."""
        return json.loads(await self.receive())

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the session from the client's side (a no-op once closed)."""
        check_close_code(code)
        if self._closed is None:
            self._closed = (code, reason)
            self._channel.to_server.queue.put_nowait(_Close(code, reason))


class WebSocketConnect:
    """The async context manager :meth:`TestKyoukai.websocket_connect` returns."""

    def __init__(self, app: Kyoukai, environ: dict[str, Any], parent: Context) -> None:
        self._app = app
        self._environ = environ
        self._parent = parent
        self._session: WebSocketTestSession | None = None

    async def __aenter__(self) -> WebSocketTestSession:
        channel = InProcessChannel()
        self._environ[WEBSOCKET_ENVIRON_KEY] = channel
        request = self._app.request_class(self._environ)
        task = asyncio.ensure_future(self._app.process_request(request, self._parent))
        accepted = asyncio.ensure_future(channel.accepted.wait())
        await asyncio.wait({task, accepted}, return_when=asyncio.FIRST_COMPLETED)
        if not channel.accepted.is_set():
            accepted.cancel()
            raise WebSocketRejected(task.result())
        # A handler that ends without closing (it was cancelled, say) still ends the session.
        task.add_done_callback(lambda _: channel.end(ABNORMAL_CLOSURE, ""))
        self._session = WebSocketTestSession(channel, task)
        return self._session

    async def __aexit__(self, *exc_info: object) -> None:
        session = self._session
        assert session is not None
        await session.close()
        task = session._task
        done, _ = await asyncio.wait({task}, timeout=HANDLER_GRACE)
        if not done:
            task.cancel()
            await asyncio.wait({task})
