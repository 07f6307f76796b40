"""WebSockets over HTTP/2 (RFC 8441): one extended ``CONNECT`` stream carries one session.

The server always advertises ``SETTINGS_ENABLE_CONNECT_PROTOCOL`` (see
:func:`._h2limits.initiate`). A client then opens a WebSocket as a stream of an HTTP/2
connection it already has: ``:method CONNECT``, ``:protocol websocket``, ``:scheme``,
``:path``, ``:authority`` and ``sec-websocket-version: 13``. :func:`open_websocket` checks
the request and turns the stream into an :class:`H2WebSocket` with a
:class:`~kyoukai.backends._ws.WebSocketWire`, and the application routes it as it routes an
HTTP/1.1 handshake (as a ``GET``: the same routes, hooks, ``ctx``, subprotocols and
permessage-deflate). Accepted, the stream is answered ``:status 200`` (HTTP/2 has no
``Sec-WebSocket-Accept``) and its DATA frames carry the WebSocket frames both ways; refused,
it gets the application's response, then ``RST_STREAM(NO_ERROR)``. A plain ``CONNECT``, or
another ``:protocol``, is answered **501**; another WebSocket version **426**.

The stream is the session's transport and flow control (:class:`~._ws.WireTransport`,
:class:`~._ws.WireFlow`), as the TCP connection is on HTTP/1.1.
"""

# Invariants:
#
# * Frames go out only within the stream's and the connection's send windows; the handler's
#   sends wait while frames are waiting for a window, and once more than COALESCE_LIMIT
#   bytes wait the client's data is no longer acknowledged, so that answers to its pings
#   cannot pile up behind a window it keeps closed. A window closed for longer than
#   ``write_timeout`` resets the stream (CANCEL).
# * The connection's receive window is handed back at once (other streams never wait for a
#   slow session); the stream's is withheld while the session's queue is full and before the
#   handshake is accepted, as reading pauses on HTTP/1.1.
# * The stream closes as a TCP connection does (RFC 8441 section 5): END_STREAM both ways
#   after the closing handshake, RST_STREAM(CANCEL) when it does not finish in time; a reset
#   or a lost connection reaches the handler as a closed session (1006).

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING

from h2.errors import ErrorCodes
from h2.exceptions import H2Error

from kyoukai.backends._flow import ClientGone
from kyoukai.backends._h2send import send_now, send_response
from kyoukai.backends._h2stream import H2State, response_headers
from kyoukai.backends._settings import ProtocolError
from kyoukai.backends._ws import COALESCE_LIMIT, WebSocketWire
from kyoukai.websocket import WEBSOCKET_ENVIRON_KEY

if TYPE_CHECKING:
    import h2.events as ev

    from kyoukai.backends.http2 import H2KyoukaiProtocol

__all__ = ["H2WebSocket", "close_websockets", "open_websocket"]

logger = logging.getLogger("kyoukai")


def open_websocket(protocol: H2KyoukaiProtocol, stream: H2State) -> None:
    """Serve a ``CONNECT`` stream: a WebSocket handshake for the application, or refused.

    :param stream: The stream, its environ built from the request headers.
    """
    problem = _problem(stream)
    state = protocol._state
    if problem is None and state.websockets >= state.settings.max_websockets:
        problem = "too many WebSockets"
    if problem is not None:
        protocol._refuse(stream, ProtocolError(problem))
        return
    socket = H2WebSocket(stream)
    protocol._streams[stream.stream_id] = socket
    environ = socket.environ
    environ["REQUEST_METHOD"] = "GET"  # routed as the HTTP/1.1 handshake is
    socket.wire = environ[WEBSOCKET_ENVIRON_KEY] = WebSocketWire(state, environ, socket.switch)
    protocol._start(socket)


def _problem(stream: H2State) -> str | None:
    """Why a ``CONNECT`` request is no WebSocket handshake (``None``: it is one)."""
    value = None
    for name, field in stream.headers:
        if name[:1] != b":":
            break  # h2 has checked that the pseudo-headers come first
        if name == b":protocol":
            value = field
    if value is None or value.lower() != b"websocket":
        return "CONNECT is not supported"  # this server is no proxy (RFC 9110 section 9.3.6)
    if stream.environ.get("HTTP_SEC_WEBSOCKET_VERSION") != "13":
        return "unsupported WebSocket version"
    return None


def close_websockets(protocol: H2KyoukaiProtocol) -> bool:
    """End of a shutdown's grace period: close the connection's WebSockets with 1001.

    :return: Whether the connection is closing gracefully now (``False``: it has no open
        WebSocket, or its client does not read, and is to be aborted).
    """
    sockets = [s for s in protocol._streams.values() if isinstance(s, H2WebSocket) and s.live]
    if not sockets or protocol._closed:
        return False
    for socket in sockets:
        socket.going_away()
    protocol._flush()
    flow = protocol._flow
    if flow is None or flow.write_paused:
        return False
    protocol._close()
    return True


class H2WebSocket(H2State):
    """An HTTP/2 stream that carries a WebSocket: the wire's transport and flow control.

    :param stream: The ``CONNECT`` stream as the connection received it.
    """

    __slots__ = (
        "_done",
        "_early",
        "_end",
        "_ended",
        "_eof",
        "_out",
        "_out_size",
        "_paused",
        "_stall_at",
        "_tick_at",
        "_withheld",
        "_writable",
        "accepted",
        "wire",
    )

    def __init__(self, stream: H2State) -> None:
        super().__init__(stream.headers, stream.stream_id, stream.protocol)
        self.environ = stream.environ
        #: The session (set by :func:`open_websocket`).
        self.wire: WebSocketWire | None = None
        #: True once the handshake is accepted (``:status 200`` sent).
        self.accepted = False
        self._out: deque[memoryview] = deque()
        self._out_size = 0
        self._writable = asyncio.Event()
        self._early: list[bytes] = []
        self._withheld = 0
        self._paused = False
        self._end = False
        self._ended = False
        self._eof = False
        self._done = asyncio.Event()
        self._stall_at = 0.0
        self._tick_at = 0.0

    # -- the handshake ------------------------------------------------------------------------

    def switch(self, headers: list[tuple[str, str]]) -> None:
        """Accept the handshake: ``:status 200`` with ``headers``, then frames."""
        protocol = self.protocol
        wire = self.wire
        assert wire is not None
        header_list = response_headers(200, headers, protocol.date_value(), None)
        protocol.conn.send_headers(self.stream_id, header_list)
        protocol._flush_soon()
        state = protocol._state
        state.websockets += 1
        self.accepted = True
        wire.attach(self, self)
        self._tick_at = wire.tick(state.clock)
        self._schedule()
        if self._early:
            early, self._early = b"".join(self._early), []
            wire.data_received(early)
        self._give_back()

    def deliver(self) -> H2WebSocket | None:
        """The handler is done (:attr:`response` set): answer a refused handshake; after a
        session, wait for the stream's end (:meth:`finish`) unless it came already."""
        if self._done.is_set():
            return None
        if not self.accepted:
            if not send_now(self.protocol, self):
                return self
            self._refused()
            return None
        return self

    async def finish(self) -> None:
        """What :meth:`deliver` left: a refusal's response that waits for the windows, or the
        end of the stream, which the client has ``websocket_close_timeout`` to bring."""
        if not self.accepted:
            await send_response(self.protocol, self)
            self._refused()
            return
        try:
            async with asyncio.timeout(self.protocol._settings.websocket_close_timeout):
                await self._done.wait()
        except TimeoutError:
            self.abort()

    def _refused(self) -> None:
        # RFC 9113 section 8.1: the response is complete, the request stream need not be.
        self._done.set()
        if not self._eof:
            try:
                self.protocol.conn.reset_stream(self.stream_id, ErrorCodes.NO_ERROR)
            except H2Error:
                pass  # already closed
            self.protocol._flush_soon()

    # -- what the connection calls --------------------------------------------------------------

    def data_received(self, event: ev.DataReceived) -> None:
        """DATA from the client: WebSocket frames for the session."""
        size = event.flow_controlled_length
        conn = self.protocol.conn
        if size:
            if self._done.is_set() or not self._withholding():
                conn.acknowledge_received_data(size, self.stream_id)
            else:
                self._withheld += size
                conn.increment_flow_control_window(size)  # the connection's share, at once
        if self._done.is_set():
            return
        if self.accepted:
            assert self.wire is not None
            self.wire.data_received(event.data)
        elif event.data:
            self._early.append(event.data)  # sent before the 200; bounded by the window

    def client_ended(self) -> None:
        """The client ended the stream (its TCP FIN): end ours, the session is over."""
        self._eof = True
        if self.live:
            self.close()

    def wake(self) -> None:
        """A send window opened: send what waits for it."""
        if self.live:
            self._pump()

    def cancel(self) -> None:
        """Reset, or the connection is gone: a session's handler is told (1006) and cancelled
        after ``websocket_close_timeout``; a handshake's handler is cancelled."""
        if self.accepted:
            self._lose()
        elif not self._done.is_set():
            self._done.set()
            super().cancel()

    def expired(self, now: float) -> None:
        """The stream's deadline: a send window closed too long, or the session's ping."""
        if self._stall_at and now >= self._stall_at:
            logger.debug("Resetting WebSocket stream %d: the client stops reading", self.stream_id)
            self.abort()
            return
        if self._tick_at and now >= self._tick_at and self.wire is not None:
            self._tick_at = self.wire.tick(now)
        self._schedule()

    def going_away(self) -> None:
        """Server shutdown: close the session with 1001."""
        if self.wire is not None and not self._done.is_set():
            self.wire.going_away()

    # -- the wire's transport and flow control --------------------------------------------------

    def write(self, data: bytes) -> None:
        """Send ``data`` (frames) as DATA, as the windows allow."""
        if self._end or self._done.is_set() or not data:
            return
        self._out.append(memoryview(data))
        self._out_size += len(data)
        self._pump()

    def writelines(self, data: Iterable[bytes]) -> None:
        """Send each of ``data`` in turn (:meth:`write`)."""
        for piece in data:
            self.write(piece)

    def close(self) -> None:
        """End the stream (END_STREAM) once everything written has been sent."""
        self._end = True
        self._pump()

    def abort(self) -> None:
        """Reset the stream (``CANCEL``): the closing handshake did not finish in time."""
        self.protocol._reset(self, ErrorCodes.CANCEL)
        self.protocol._flush_soon()
        self._lose()

    @property
    def read_paused(self) -> bool:
        """True while the session's queue is full: the stream's window is withheld."""
        return self._paused

    @property
    def write_paused(self) -> bool:
        """True while frames wait for a window or the connection's write buffer is full."""
        flow = self.protocol._flow
        return bool(self._out) or (flow is not None and flow.write_paused)

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        self._paused = False
        self._give_back()

    async def drain(self) -> None:
        """Wait until what was written is sent and the connection's buffer has room.

        :raises ClientGone: If the stream or the connection ends meanwhile.
        """
        while self._out and not self._done.is_set():
            self._writable.clear()
            await self._writable.wait()
        if self._done.is_set():
            raise ClientGone
        flow = self.protocol._flow
        if flow is not None and flow.write_paused:
            self.protocol._flush()
            await flow.drain()

    # -- sending and receiving ------------------------------------------------------------------

    def _pump(self) -> None:
        protocol = self.protocol
        conn = protocol.conn
        sid = self.stream_id
        out = self._out
        sent = False
        try:
            while out:
                size = min(conn.local_flow_control_window(sid), conn.max_outbound_frame_size)
                if size <= 0:
                    break
                head = out[0]
                if len(head) <= size:
                    out.popleft()
                else:
                    out[0], head = head[size:], head[:size]
                conn.send_data(sid, head)
                self._out_size -= len(head)
                sent = True
            if not out and self._end and not self._ended:
                self._ended = True
                conn.end_stream(sid)
                sent = True
        except H2Error:  # the stream is closed already (reset)
            self._lose()
            return
        if sent:
            protocol._flush_soon()
        if out:
            if sent or not self._stall_at:
                self._stall_at = protocol._state.deadline(self.protocol._settings.write_timeout)
        else:
            self._stall_at = 0.0
            self._writable.set()
            self._give_back()
        self._schedule()
        if self._ended and self._eof:
            self._lose()  # closed both ways

    def _withholding(self) -> bool:
        return not self.accepted or self._paused or self._out_size > COALESCE_LIMIT

    def _give_back(self) -> None:
        """Hand the stream's withheld receive window back, if the session has room now."""
        if not self._withheld or self._withholding() or self._eof or self._done.is_set():
            return
        held, self._withheld = self._withheld, 0
        try:
            self.protocol.conn.increment_flow_control_window(held, self.stream_id)
        except H2Error:
            return  # closed meanwhile
        self.protocol._flush_soon()

    def _schedule(self) -> None:
        deadline = self._tick_at
        if self._stall_at and (not deadline or self._stall_at < deadline):
            deadline = self._stall_at
        self.deadline = deadline
        if deadline:
            self.protocol._watch(deadline)

    @property
    def live(self) -> bool:
        """True from the handshake's acceptance to the end of the stream."""
        return self.accepted and not self._done.is_set()

    def _lose(self) -> None:
        """The session is over: release it and tell its handler."""
        if self._done.is_set():
            return
        self._done.set()
        if self.accepted:
            self.protocol._state.websockets -= 1
            self._out.clear()
            self._out_size = 0
            self.deadline = self._stall_at = self._tick_at = 0.0
            self._writable.set()
            assert self.wire is not None
            self.wire.connection_lost()
