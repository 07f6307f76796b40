"""The built-in HTTP/2 server: an asyncio protocol over h2's ``H2Connection``.

:class:`H2KyoukaiProtocol` feeds the bytes it receives to h2, dispatches on the type of each
event h2 returns, and writes what h2 has to send in one flush. Each request (stream) gets one
task, started on its HEADERS, that runs the application through
:class:`~kyoukai.backends._exchange.Exchange` and sends its response within the stream's and
the connection's flow-control windows; a request body streams to it as DATA arrives
(:mod:`kyoukai.backends._h2body`). The transport
side (server state, back-pressure, deadlines, connection events, shutdown) is
:class:`~kyoukai.backends._connection.Connection`, as for HTTP/1.1.

Priority signals are accepted and ignored (RFC 9113 deprecates the scheme); server push is
not offered. ``Kyoukai.run(..., http2=True)`` serves HTTP/2 and HTTP/1.1 on one port
(``kyoukai.backends._select``); :class:`~kyoukai.backends.http2.H2KyoukaiComponent` serves
HTTP/2 only.
"""

# Invariants of this module; a comment starting "invariant:" marks where each is enforced:
#
# * Nothing reaches h2 before the frame scanner has seen it: no frame over the frame-size
#   limit and no header block over ``h2_max_header_list_size`` is buffered.
# * Every stream reset, by either side, cancels its handler and is counted against
#   ``h2_max_resets``; every control frame is counted against ``h2_max_control_frames``.
# * Reading pauses while the transport's write buffer is over its high-water mark, so a
#   client that does not read cannot make the server queue answers to its control frames.
# * After a graceful GOAWAY (shutdown or ``h2_max_requests``) streams up to its last stream id
#   are answered and later ones get ``REFUSED_STREAM``; h2's own ``close_connection()`` is not
#   used then, because its state machine would refuse to send the answers.
# * A stream's receive window is withheld while its handler leaves ``body_buffer_size`` bytes
#   of its body unread; the connection's is handed back as DATA arrives (``_h2body``).

from __future__ import annotations

import asyncio
import io
import logging
from typing import TYPE_CHECKING, Any

import h2.events as ev
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.exceptions import H2Error
from h2.exceptions import ProtocolError as H2ProtocolError
from h2.settings import SettingCodes
from hpack.exceptions import HPACKError
from hyperframe.frame import GoAwayFrame

from kyoukai._context import PROTOCOL_ENVIRON_KEY
from kyoukai.backends._exchange import Exchange
from kyoukai.backends._flow import ClientGone
from kyoukai.backends._h2body import BodyH2Connection, H2BodyConnection
from kyoukai.backends._h2limits import (
    Budget,
    FloodError,
    FrameScanner,
    compression_error,
    initiate,
)
from kyoukai.backends._h2send import send_now, send_refusal, send_response
from kyoukai.backends._h2stream import (
    H2State,
    create_wsgi_environment,
    get_header,
    request_environ,
)
from kyoukai.backends._h2ws import H2WebSocket, close_websockets, open_websocket
from kyoukai.backends._settings import ProtocolError
from kyoukai.backends._state import ServerState

if TYPE_CHECKING:
    from asphalt.core import Context
    from werkzeug.wrappers import Response

    from kyoukai._h2component import H2KyoukaiComponent

__all__ = [
    "H2KyoukaiComponent",
    "H2KyoukaiProtocol",
    "H2State",
    "create_wsgi_environment",
    "get_header",
]

logger = logging.getLogger("kyoukai")

_TASK_NAME = "kyoukai h2 request"
#: The largest frame we accept: h2's default ``SETTINGS_MAX_FRAME_SIZE``, never raised.
_MAX_FRAME = 16384


def _config() -> H2Configuration:
    # Outbound headers are checked and lowercased by response_headers, once per distinct pair.
    return H2Configuration(
        client_side=False,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
    )


class H2KyoukaiProtocol(H2BodyConnection):
    """The base protocol for Kyoukai, using h2: one instance serves one HTTP/2 connection.

    :param component: The component (or any object with ``app`` and optionally ``settings``)
        this connection belongs to.
    :param parent_context: The parent context of every request context on this connection.
    :param server_ip: The address the server listens on.
    :param server_port: The port the server listens on.
    :param state: The shared state of the server; created for ``component`` if omitted.
    :param upgrade: For a connection upgraded from HTTP/1.1 (``Upgrade: h2c``): the
        environ of the request that asked, answered as stream 1, and its ``HTTP2-Settings``.
    """

    def __init__(
        self,
        component: Any,
        parent_context: Context | None,
        server_ip: str = "127.0.0.1",
        server_port: int = 4444,
        *,
        state: ServerState | None = None,
        upgrade: tuple[dict[str, Any], bytes] | None = None,
    ) -> None:
        if state is None:
            state = ServerState.standalone(component, parent_context)
        super().__init__(state, server_ip, server_port)
        settings = state.settings
        #: The component this connection was made for.
        self.component = component
        #: The application.
        self.app = component.app
        #: The parent context of every request context.
        self.parent_context = parent_context
        #: h2's state machine for this connection.
        self.conn = BodyH2Connection(config=_config())
        self._exchange = Exchange(
            self.app,
            parent_context,
            settings.handler_timeout,
            deliver=self._deliver,
            finish=self._finish_stream,
            form_limits=(settings.max_form_memory_size, settings.max_form_parts),
        )
        self._streams: dict[int, H2State] = {}
        self._requests = 0
        self._conn_owed = 0
        #: The last stream id of the graceful GOAWAY sent, or ``None``.
        self._goaway: int | None = None
        self._scanner = FrameScanner(_MAX_FRAME, settings.h2_max_header_list_size)
        self._control = Budget(settings.h2_max_control_frames)
        self._resets = Budget(settings.h2_max_resets)
        self._flush_handle: asyncio.Handle | None = None
        self._upgrade = upgrade
        self._lingering = False
        self._date_line = b""
        self._date = b""
        self._idle_delay = settings.keep_alive_timeout + state.slack
        self._handlers = {
            ev.RequestReceived: self.request_received,
            ev.DataReceived: self.receive_data,
            ev.StreamEnded: self.stream_complete,
            ev.StreamReset: self._stream_reset,
            ev.WindowUpdated: self.window_opened,
            ev.RemoteSettingsChanged: self._settings_changed,
            ev.ConnectionTerminated: self._terminated,
        }

    # -- the connection -----------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Called when a connection is made: send the server's preface (SETTINGS, see
        :func:`~kyoukai.backends._h2limits.initiate`).

        :param transport: The transport made by the connection.
        """
        super().connection_made(transport)
        if self._closed:
            return
        upgrade = self._upgrade
        initiate(self.conn, self._settings, None if upgrade is None else upgrade[1])
        if upgrade is not None:
            self._upgrade = None
            stream = H2State([], 1, self)
            stream.environ = upgrade[0]
            stream.environ["SERVER_PROTOCOL"] = "HTTP/2"
            stream.environ[PROTOCOL_ENVIRON_KEY] = self
            stream.environ["wsgi.input"] = io.BytesIO()
            stream.complete = True
            self._streams[1] = stream
            self._requests = 1
            self._start(stream)
        self._flush()

    def refusal(self, status: int, detail: str) -> bytes:
        """The bytes that refuse a connection over the cap: the preface and a GOAWAY."""
        conn = H2Connection(config=_config())
        conn.initiate_connection()
        conn.close_connection(ErrorCodes.REFUSED_STREAM, additional_data=detail.encode())
        return conn.data_to_send()

    def data_received(self, data: bytes) -> None:
        """Called when data is received from the underlying socket."""
        if self._closed or self._lingering:
            return
        now = self._state.clock
        try:
            control = self._scanner.feed(data)  # invariant: checked before h2 buffers it
            if control and not self._control.spend(control, now):
                raise FloodError(ErrorCodes.ENHANCE_YOUR_CALM, "too many control frames")
            try:
                events = self.conn.receive_data(data)
            except H2ProtocolError as exc:
                logger.debug("Closing an HTTP/2 connection after a protocol error: %s", exc)
                if isinstance(exc.__cause__, HPACKError):
                    conn = self.conn
                    data = conn.data_to_send()
                    self._raw_write(compression_error(data, conn.highest_inbound_stream_id))
                self.close(ErrorCodes.PROTOCOL_ERROR)  # if h2 queued no GOAWAY (a bad preface)
                return
            handlers = self._handlers
            for event in events:
                handler = handlers.get(type(event))
                if handler is not None:
                    handler(event)  # type: ignore[operator]
        except FloodError as exc:
            self._fail(exc.code, str(exc))
            return
        self._flush()

    def raw_write(self, data: bytes) -> None:
        """Writes to the underlying transport."""
        self._raw_write(data)

    def _flush(self) -> None:
        """Write everything h2 has to send, in one write."""
        self._flush_handle = None
        data = self.conn.data_to_send()
        if data and not self._closed and self.transport is not None:
            self.transport.write(data)

    def _flush_soon(self) -> None:
        # Responses finished in one loop iteration leave in one write.
        if self._flush_handle is None:
            self._flush_handle = self.loop.call_soon(self._flush)

    def pause_writing(self) -> None:
        """Called when the transport's buffer goes over the high-water mark: stop reading too."""
        super().pause_writing()
        assert self._flow is not None
        self._flow.pause_reading()  # invariant: a client that does not read is not read

    def resume_writing(self) -> None:
        """Called when the transport's buffer drains below the low-water mark."""
        super().resume_writing()
        assert self._flow is not None
        self._flow.resume_reading()

    def eof_received(self) -> bool:
        """Called when the client half-closes: the connection closes, handlers are cancelled."""
        return False

    def close(self, error_code: int = 0) -> None:
        """Terminate the connection with ``GOAWAY(error_code)`` and close the transport.

        Handlers still running are cancelled when the transport is gone.
        """
        if self._closed or self._lingering:
            return
        try:
            self.conn.close_connection(error_code)
        except H2Error:
            pass  # a GOAWAY already went out
        for stream in self._streams.values():
            stream.cancel()
        self._streams.clear()
        # Lingering close: a client still sending would otherwise get a TCP reset that
        # discards the GOAWAY before it is read.
        self._lingering = True
        self._linger(self.conn.data_to_send())

    def _fail(self, code: ErrorCodes, reason: str) -> None:
        logger.warning("Closing an HTTP/2 connection: %s", reason)
        self.close(code)

    def connection_lost(self, exc: Exception | None) -> None:
        """Called when the connection closes: cancel handlers still running, wake writers
        (a WebSocket's handler is told its session ended)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        streams, self._streams = self._streams, {}
        super().connection_lost(exc)
        for stream in streams.values():
            stream.cancel()

    def _goaway_frame(self, last_stream_id: int) -> None:
        """Send a graceful ``GOAWAY(NO_ERROR)`` h2 does not know of, so streams up to
        ``last_stream_id`` can still be answered."""
        if self._goaway is not None:
            return
        self._goaway = last_stream_id
        self._flush()
        self._raw_write(GoAwayFrame(0, last_stream_id=last_stream_id).serialize())
        if not self._streams:
            self._finish()

    def _finish(self) -> None:
        """Close after a graceful GOAWAY, once everything owed is written.

        Lingering: the client may still send (a WINDOW_UPDATE for the last response), and
        closing on unread bytes would reset the connection, discarding what it has not read.
        """
        if not self._lingering:
            self._lingering = True
            self._linger(self.conn.data_to_send())

    # -- deadlines and shutdown ---------------------------------------------------------------

    def read_deadline_passed(self, now: float) -> None:
        """Called by the server's timer: close an idle connection, reset stalled streams."""
        if self._lingering:
            self._close()
            return
        if not self._streams:
            self._goaway_frame(self.conn.highest_inbound_stream_id)
            self._finish()
            return
        nearest = 0.0
        streams = self._streams
        try:
            for stream in list(streams.values()):
                if stream.deadline and now >= stream.deadline:
                    stream.expired(now)
                deadline = stream.deadline
                if deadline and (not nearest or deadline < nearest):
                    if streams.get(stream.stream_id) is stream:
                        nearest = deadline
        except FloodError as exc:
            self._fail(exc.code, str(exc))
            return
        if self._streams:
            self._deadline = nearest  # else _after_stream set the idle deadline
        self._flush()

    def _watch(self, deadline: float) -> None:
        if not self._deadline or deadline < self._deadline:
            self._deadline = deadline

    def shutdown(self) -> None:
        """Begin a graceful close: ``GOAWAY`` now, the connection closes once streams end."""
        if not self._closed:
            self._goaway_frame(self.conn.highest_inbound_stream_id)

    def stop_reading_requests(self) -> None:
        """Accept no further stream: later ones are refused."""
        self._goaway_frame(self.conn.highest_inbound_stream_id)

    def pending_tasks(self) -> list[asyncio.Task[None]]:
        """The handler tasks of this connection that have not finished."""
        return [s.task for s in self._streams.values() if s.task is not None and not s.task.done()]

    def abort(self) -> None:
        """End of the grace period: open WebSockets close with 1001 (going away), the
        connection closes and the handlers still running are cancelled."""
        if not close_websockets(self):
            super().abort()

    # -- events -------------------------------------------------------------------------------

    def request_received(self, event: ev.RequestReceived) -> None:
        """Called when a request's headers have been received: a new stream."""
        stream_id = event.stream_id
        headers: Any = event.headers
        if self._goaway is not None and stream_id > self._goaway:
            self._refuse_stream(stream_id)
            return
        if len(self._streams) >= self._settings.h2_max_concurrent_streams:
            self._refuse_stream(stream_id)
            return
        stream = H2State(headers, stream_id, self)
        self._streams[stream_id] = stream
        self._requests += 1
        settings = self._settings
        try:
            if len(headers) > settings.max_header_count + 4:
                raise ProtocolError("too many headers")
            stream.environ = request_environ(self._base_environ, headers)
            if stream.environ["REQUEST_METHOD"] == "CONNECT":
                open_websocket(self, stream)  # or refused: this server is no proxy
            else:
                self._begin(stream, event.stream_ended is not None)
        except ProtocolError as exc:
            self._refuse(stream, exc)
        if self._requests >= settings.h2_max_requests:
            self._goaway_frame(stream_id)

    def receive_data(self, event: ev.DataReceived) -> None:
        """Called when a piece of a request body, or of a WebSocket's frames, has arrived."""
        stream = self._streams.get(event.stream_id)
        if isinstance(stream, H2WebSocket):
            stream.data_received(event)
        else:
            super().receive_data(event)

    def stream_complete(self, event: ev.StreamEnded) -> None:
        """Called when the client ended a stream: its body, or its WebSocket, is complete."""
        stream = self._streams.get(event.stream_id)
        if isinstance(stream, H2WebSocket):
            stream.client_ended()
        else:
            super().stream_complete(event)

    def _start(self, stream: H2State) -> None:
        loop = self.loop
        if loop.get_task_factory() is None:
            stream.task = asyncio.Task(self._handle(stream), loop=loop, name=_TASK_NAME)
        else:
            stream.task = loop.create_task(self._handle(stream))

    def window_opened(self, event: ev.WindowUpdated) -> None:
        """Called when a flow-control window has opened again: wake the streams waiting."""
        if event.stream_id:
            stream = self._streams.get(event.stream_id)
            if stream is not None:
                stream.wake()
        else:
            self._wake_all()

    def _wake_all(self) -> None:
        for stream in list(self._streams.values()):
            stream.wake()

    def _settings_changed(self, event: ev.RemoteSettingsChanged) -> None:
        if SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
            self._wake_all()

    def _stream_reset(self, event: ev.StreamReset) -> None:
        stream = self._streams.pop(event.stream_id, None)
        if stream is not None:
            stream.cancel()
        self._spend_reset()

    def _terminated(self, event: ev.ConnectionTerminated) -> None:
        # The client is going away: no more streams; finish what is running.
        last = event.last_stream_id or 0
        self._goaway = last if self._goaway is None else min(self._goaway, last)
        if not self._streams:
            self._finish()

    # -- resets and refusals ------------------------------------------------------------------

    def _spend_reset(self) -> None:
        # invariant: every reset is counted (Rapid Reset, MadeYouReset)
        if not self._resets.spend(1, self._state.clock):
            raise FloodError(ErrorCodes.ENHANCE_YOUR_CALM, "too many stream resets")

    def _refuse_stream(self, stream_id: int) -> None:
        self.conn.reset_stream(stream_id, ErrorCodes.REFUSED_STREAM)
        self._spend_reset()

    def _reset(self, stream: H2State, code: ErrorCodes) -> None:
        """Reset a stream we answer no further, cancelling its handler."""
        if self._streams.pop(stream.stream_id, None) is None:
            return
        stream.cancel()
        try:
            self.conn.reset_stream(stream.stream_id, code)
        except H2Error:
            pass  # already closed
        self._after_stream()

    def _refuse(self, stream: H2State, exc: ProtocolError) -> None:
        """Answer a request that will not reach the application with its status.

        The stream is reset (``NO_ERROR``) if the client has not finished sending it.
        """
        logger.debug("Refusing HTTP/2 stream %d with %d: %s", stream.stream_id, exc.status, exc)
        self._streams.pop(stream.stream_id, None)
        send_refusal(self, stream, exc)
        self._spend_reset()
        self._after_stream()

    def _after_stream(self) -> None:
        """A stream is gone: close a draining connection, or watch for idleness."""
        if self._streams:
            return
        if self._goaway is not None:
            self._finish()
        else:
            self._deadline = self._state.clock + self._idle_delay

    # -- responses ----------------------------------------------------------------------------

    def date_value(self) -> bytes:
        """The current ``Date`` value."""
        line = self._state.date_line
        if line is not self._date_line:
            self._date_line = line
            self._date = line[6:-2]
        return self._date

    @property
    def base_environ(self) -> dict[str, Any]:
        """The environ keys every request on this connection shares."""
        return self._base_environ

    async def _handle(self, stream: H2State) -> None:
        """Run the application for one stream, then send its response."""
        try:
            await self._exchange.serve(stream, stream.environ, self._server_address)
        except (asyncio.CancelledError, ClientGone):
            pass  # reset by the client, or the connection is gone
        except H2Error as exc:
            logger.debug("HTTP/2 stream %d ended early: %s", stream.stream_id, exc)
        finally:
            if self._streams.get(stream.stream_id) is stream:
                del self._streams[stream.stream_id]
                if not stream.complete:
                    self._answered(stream)
                self._after_stream()

    def _deliver(self, stream: H2State, response: Response) -> H2State | None:
        """Send a response that can go out at once; else leave it for :meth:`_finish_stream`."""
        stream.response = response
        if isinstance(stream, H2WebSocket):
            return stream.deliver()
        if stream.body is not None and not stream.body.finished:
            stream.body.abandon()  # answered: what still arrives is dropped
        return None if send_now(self, stream) else stream

    async def _finish_stream(self, stream: H2State) -> None:
        if isinstance(stream, H2WebSocket):
            await stream.finish()
        else:
            await self.sending_loop(stream.stream_id)

    async def sending_loop(self, stream_id: int) -> None:
        """Send the response of stream ``stream_id``: headers, then its body as it comes.

        A body in memory that fits the windows goes out at once; a larger or streamed one is
        sent piece by piece, each within the stream's and the connection's flow-control
        windows and while the client keeps reading. HEAD, 1xx, 204 and 304 get no DATA.
        """
        await send_response(self, self._streams[stream_id])

    async def _wait_window(self, stream: H2State) -> None:
        """Wait for the client to open a window; the stream is reset if it never does."""
        if stream.window is None:
            stream.window = asyncio.Event()
        stream.window.clear()
        stream.deadline = self._state.deadline(self._settings.write_timeout)
        self._watch(stream.deadline)
        self._flush()
        await stream.window.wait()
        if self._closed:
            raise ClientGone
        stream.deadline = 0.0
        self._track_body(stream)


def __getattr__(name: str) -> Any:
    # The component sits a layer above the backends; its spec path is this module.
    if name == "H2KyoukaiComponent":
        from kyoukai._h2component import H2KyoukaiComponent

        return H2KyoukaiComponent
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
