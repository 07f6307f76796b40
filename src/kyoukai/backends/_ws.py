"""The WebSocket wire protocol (RFC 6455, RFC 7692) on the sans-I/O core of ``websockets``.

:class:`WebSocketWire` is the :class:`~kyoukai.websocket.Channel` of one session: bytes from
the connection go in (:meth:`WebSocketWire.data_received`), messages come out to the
handler, and what the handler sends goes back as frames. It knows nothing of HTTP: the
connection that carries it answers the handshake (its :data:`Switch`) and attaches a
transport: an HTTP/1.1 connection after its ``101`` (:mod:`._ws_http1`), or an HTTP/2 stream
after its ``200`` (RFC 8441, :mod:`._h2ws`).

``websockets`` was chosen over ``wsproto`` by measurement (one echoed message, server side,
this machine): 6.7 µs against 15.3 µs for 32 bytes of text, 20 µs against 150 µs for 64 KiB
(its C masking), and it bounds decompression by the message size limit itself.
"""

# Invariants:
#
# * Nothing the client sends is buffered without bound: a message over
#   ``websocket_max_message_size`` (counted after decompression, across fragments) closes the
#   session with 1009 before it is kept, and once ``websocket_max_queue`` messages wait for the
#   handler the server stops reading until the handler has taken half of them.
# * Every protocol violation (bad framing, unmasked or oversized control frames, bad close
#   codes, invalid UTF-8) fails the connection with the RFC's code and closes it; the handler
#   sees that code in its WebSocketDisconnect, the server carries on.
# * A handler outlives its connection by at most ``websocket_close_timeout`` seconds: it is
#   told (WebSocketDisconnect) at once, and cancelled if it is still running then.

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, Protocol, cast

from websockets.exceptions import InvalidHeader, NegotiationError
from websockets.extensions.base import Extension
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.headers import build_extension, parse_extension
from websockets.protocol import OPEN, Side
from websockets.protocol import Protocol as FrameProtocol

from kyoukai.backends._flow import ClientGone
from kyoukai.backends._frames import FrameBoundaries, FrameReader, data_frame, frame_header
from kyoukai.websocket import ABNORMAL_CLOSURE, WebSocketDisconnect

if TYPE_CHECKING:
    from kyoukai.backends._settings import ServerSettings
    from kyoukai.backends._state import ServerState

__all__ = [
    "COALESCE_LIMIT",
    "Switch",
    "WebSocketWire",
    "WireFlow",
    "WireTransport",
    "negotiate_deflate",
]

#: What a connection does when its WebSocket is accepted: answer the handshake with the headers
#: given (subprotocol, extensions, the handler's) — a ``101`` on HTTP/1.1, a ``200`` on an
#: HTTP/2 stream (RFC 8441) — and :meth:`WebSocketWire.attach` the transport frames go over.
Switch = Callable[[list[tuple[str, str]]], None]


class WireTransport(Protocol):
    """Where a session's frames go: an ``asyncio.Transport`` (HTTP/1.1), or the DATA of an
    HTTP/2 stream (:mod:`._h2ws`). ``close()`` ends the connection or the stream cleanly."""

    def write(self, data: bytes) -> None: ...
    def writelines(self, data: Iterable[bytes]) -> None: ...
    def close(self) -> None: ...
    def abort(self) -> None: ...


class WireFlow(Protocol):
    """Back-pressure both ways, as :class:`~kyoukai.backends._flow.FlowControl` has it: the
    session stops the client's sending while its queue is full, and waits while the client
    is behind in reading."""

    @property
    def read_paused(self) -> bool: ...
    @property
    def write_paused(self) -> bool: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    async def drain(self) -> None: ...


#: Bytes of frames held for one write before they go out anyway (see WebSocketWire._write).
COALESCE_LIMIT = 64 * 1024
_TEXT, _BINARY, _CONT, _PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PONG
#: The extension offered back to clients that ask for compression (websockets' defaults:
#: 4 KiB windows and a small memory level keep a compressed session's cost near 64 KiB).
_DEFLATE = ServerPerMessageDeflateFactory(
    server_max_window_bits=12, client_max_window_bits=12, compress_settings={"memLevel": 5}
)


def negotiate_deflate(offer: str | None) -> tuple[str | None, list[Extension]]:
    """Accept the first acceptable ``permessage-deflate`` offer of a client.

    :return: The ``Sec-WebSocket-Extensions`` response value (``None``: no extension) and the
        extensions for the frame protocol.
    """
    if not offer:
        return None, []
    try:
        offers = parse_extension(offer)
    except InvalidHeader:
        return None, []
    for name, params in offers:
        if name != _DEFLATE.name:
            continue
        try:
            response_params, extension = _DEFLATE.process_request_params(params, [])
        except NegotiationError:
            continue
        return build_extension([(name, response_params)]), [extension]
    return None, []


class WebSocketWire:
    """One WebSocket session, from the handshake to the closing handshake (a
    :class:`~kyoukai.websocket.Channel`).

    :param state: The server's shared state (settings, clock, ``Date``).
    :param environ: The handshake request's environ.
    :param switch: How the carrying connection answers an accepted handshake.
    """

    def __init__(self, state: ServerState, environ: dict[str, Any], switch: Switch) -> None:
        self._state = state
        settings: ServerSettings = state.settings
        self._settings = settings
        self._environ = environ
        self._switch = switch
        self._transport: WireTransport | None = None
        self._flow: WireFlow | None = None
        self._frames: FrameProtocol | None = None
        self._queue: deque[str | bytes] = deque()
        self._max_queue = settings.websocket_max_queue
        self._max_size = settings.websocket_max_message_size
        #: No extension: whole data frames take the direct path (._frames).
        self._plain = False
        self._reader = FrameReader(self._max_size)
        #: Where the frames given to the protocol end (the shortcut resumes only there).
        self._given = FrameBoundaries()
        self._out: list[bytes] = []
        self._out_size = 0
        self._write_scheduled = False
        self._waiter: asyncio.Future[None] | None = None
        self._parts: list[bytes] = []
        self._text = False
        self._invalid = False
        #: ``(code, reason)`` once the session is closed, for the handler's disconnect.
        self.closed: tuple[int, str] | None = None
        self._gone = asyncio.Event()
        self._next_ping = 0.0
        self._pong_due = 0.0
        #: The handler's task, once it accepted.
        self.task: asyncio.Task[Any] | None = None

    # -- the Channel --------------------------------------------------------------------------

    async def accept(self, subprotocol: str | None, headers: list[tuple[str, str]]) -> None:
        """Answer the handshake (``101``, or ``200`` on HTTP/2) and start speaking WebSocket."""
        if self.closed is not None:
            raise WebSocketDisconnect(ABNORMAL_CLOSURE, "the client went away")
        response, extensions = negotiate_deflate(self._environ.get("HTTP_SEC_WEBSOCKET_EXTENSIONS"))
        if subprotocol is not None:
            headers = [("Sec-WebSocket-Protocol", subprotocol), *headers]
        if response is not None:
            headers = [("Sec-WebSocket-Extensions", response), *headers]
        frames = FrameProtocol(Side.SERVER, max_size=self._max_size)
        frames.extensions = extensions
        self._frames = frames
        self._plain = not extensions
        self.task = asyncio.current_task()
        self._next_ping = self._state.deadline(self._settings.websocket_ping_interval)
        self._switch(headers)

    def attach(self, transport: WireTransport, flow: WireFlow) -> None:
        """Speak over ``transport`` from now on (the handshake is answered)."""
        self._transport = transport
        self._flow = flow

    async def receive(self) -> str | bytes:
        """The next message; raises :class:`WebSocketDisconnect` once the session closed."""
        queue = self._queue
        while not queue:
            if self.closed is not None:
                raise WebSocketDisconnect(*self.closed)
            self._waiter = waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None
        message = queue.popleft()
        flow = self._flow
        if flow is not None and flow.read_paused and len(queue) <= self._max_queue // 2:
            flow.resume_reading()
        return message

    async def send(self, message: str | bytes) -> None:
        """Send one message, then wait while the client is behind in reading."""
        frames = self._frames
        if self.closed is not None or frames is None or frames.state is not OPEN:
            raise self._disconnect()
        if self._plain:
            if isinstance(message, str):
                payload, text = message.encode("utf-8"), True
            else:
                payload, text = message, False
            if len(payload) >= COALESCE_LIMIT:
                self._write_large(frame_header(len(payload), text), payload)
            else:
                self._write(data_frame(payload, text))
        else:
            if isinstance(message, str):
                frames.send_text(message.encode("utf-8"))
            else:
                frames.send_binary(message)
            self._flush()
        flow = self._flow
        if flow is not None and flow.write_paused:
            try:
                await flow.drain()
            except ClientGone:
                raise self._disconnect() from None

    def _disconnect(self) -> WebSocketDisconnect:
        return WebSocketDisconnect(*(self.closed or (ABNORMAL_CLOSURE, "")))

    async def close(self, code: int, reason: str) -> None:
        """Send a close frame and wait, at most ``websocket_close_timeout``, for the client's
        answer and the end of the connection; then drop it."""
        frames = self._frames
        if frames is not None and frames.state is OPEN:
            frames.send_close(code, reason)
            self._flush()
        if self._gone.is_set():
            return
        try:
            async with asyncio.timeout(self._settings.websocket_close_timeout):
                await self._gone.wait()
        except TimeoutError:
            if self._transport is not None:
                self._transport.abort()

    # -- the connection's side ----------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Bytes from the client: frames in, messages to the handler, answers out.

        Plain data frames are read directly (:mod:`._frames`, also across reads) while the
        protocol is between frames; the rest goes to the protocol from that frame on. A
        frame begun directly when the session closes is handed to the protocol whole.
        """
        frames = self._frames
        if frames is None:
            return
        reader = self._reader
        if self._plain and frames.state is OPEN and self._given.between and not self._parts:
            messages, data = reader.feed(data)
            for payload, text in messages:
                self._push(payload, text)
        elif reader.pending:
            data = reader.release() + data
        if data:
            if self._plain:
                self._given.feed(data)
            frames.receive_data(data)
        for frame in frames.events_received():
            frame = cast(Frame, frame)
            opcode = frame.opcode
            if opcode is _TEXT or opcode is _BINARY:
                if frame.fin:
                    self._push(frame.data, opcode is _TEXT)
                else:
                    self._parts, self._text = [bytes(frame.data)], opcode is _TEXT
            elif opcode is _CONT:
                self._parts.append(bytes(frame.data))
                if frame.fin:
                    data, self._parts = b"".join(self._parts), []
                    self._push(data, self._text)
            elif opcode is _PONG:
                self._pong_due = 0.0
        if frames.state is not OPEN:
            self._ended()
        self._flush()
        if len(self._queue) >= self._max_queue and self._flow is not None:
            self._flow.pause_reading()

    def _push(self, data: Any, text: bool) -> None:
        frames = self._frames
        assert frames is not None
        if self._invalid:
            return  # an earlier message of this read failed the connection
        if text:
            try:
                message: str | bytes = str(data, "utf-8")
            except UnicodeDecodeError as exc:
                # RFC 6455 section 8.1: invalid UTF-8 in a text message fails the connection.
                frames.fail(1007, f"invalid UTF-8 at position {exc.start}")
                self._invalid = True
                return
        else:
            message = data if type(data) is bytes else bytes(data)
        self._queue.append(message)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _ended(self) -> None:
        """The session is over (closing handshake, failure or lost connection): tell the
        handler, with the code it should see."""
        if self.closed is None:
            frames = self._frames
            if frames is not None and frames.close_rcvd is not None:
                self.closed = (frames.close_rcvd.code, frames.close_rcvd.reason)
            elif frames is not None and frames.close_sent is not None:
                self.closed = (frames.close_sent.code, frames.close_sent.reason)
            else:
                self.closed = (ABNORMAL_CLOSURE, "")
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _flush(self) -> None:
        """Write what the protocol has to send."""
        frames = self._frames
        if frames is None or self._transport is None:
            return
        for data in frames.data_to_send():
            if data:
                self._write(data)
            else:
                # websockets' end-of-stream mark: the server closes the TCP connection first.
                self._write_out()
                self._transport.close()

    def _write(self, data: bytes) -> None:
        """Queue ``data`` for the transport: the frames sent while the loop runs one
        callback go out in one write, unless they pass :data:`COALESCE_LIMIT` first."""
        self._out.append(data)
        self._out_size += len(data)
        if self._out_size >= COALESCE_LIMIT:
            self._write_out()
        elif not self._write_scheduled:
            self._write_scheduled = True
            asyncio.get_running_loop().call_soon(self._write_out)

    def _write_large(self, header: bytes, payload: bytes) -> None:
        """Send a frame of :data:`COALESCE_LIMIT` or more, after the frames held: its
        payload goes to the transport as it is, not copied behind its header."""
        out = self._out
        out.append(header)
        head = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        self._out_size = 0
        if self._transport is not None:
            self._transport.writelines((head, payload))

    def _write_out(self) -> None:
        self._write_scheduled = False
        out = self._out
        if out and self._transport is not None:
            self._transport.write(out[0] if len(out) == 1 else b"".join(out))
        out.clear()
        self._out_size = 0

    def tick(self, now: float) -> float:
        """Keep-alive, from the server's timer: ping every ``websocket_ping_interval``, fail
        with 1011 a client that has not answered within ``websocket_ping_timeout``.

        :return: When to be called next (0: never).
        """
        frames = self._frames
        if frames is None or frames.state is not OPEN:
            return 0.0
        settings = self._settings
        if self._pong_due and now >= self._pong_due:
            frames.fail(1011, "keepalive ping timeout")
            self._ended()
            self._flush()
            return 0.0
        if now >= self._next_ping:
            frames.send_ping(b"kyoukai")
            self._flush()
            self._next_ping = now + settings.websocket_ping_interval
            if not self._pong_due:
                self._pong_due = now + settings.websocket_ping_timeout
        return min(self._next_ping, self._pong_due or self._next_ping)

    def going_away(self) -> None:
        """Server shutdown: close with 1001 (going away) and end the connection."""
        frames = self._frames
        if frames is not None and frames.state is OPEN:
            frames.fail(1001, "server shutting down")
            self._ended()
            self._flush()
        elif self._transport is not None:
            self._write_out()
            self._transport.close()

    def connection_lost(self) -> None:
        """The connection is gone: tell the handler, cancel it after the close timeout."""
        frames = self._frames
        if frames is not None:
            frames.receive_eof()
        self._ended()
        self._gone.set()
        task = self.task
        if task is not None and not task.done():
            loop = task.get_loop()
            handle = loop.call_later(self._settings.websocket_close_timeout, task.cancel)
            task.add_done_callback(lambda _: handle.cancel())
