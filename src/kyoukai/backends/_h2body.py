"""The body half of the HTTP/2 protocol: request bodies that stream to running handlers.

:class:`H2BodyConnection` is what :class:`~kyoukai.backends.http2.H2KyoukaiProtocol` builds
on. A request whose HEADERS do not end the stream gets its handler started at once, with a
:class:`~kyoukai.backends._inbound.BodyStream` as its body (the stream's
:attr:`~kyoukai.backends._h2stream.H2State.body`); each DATA frame feeds it, ``END_STREAM``
ends it, and a reset, a lost connection or the body timeout fails it. The application bounds
it with the route's ``max_body_size`` and reads it as it arrives (``stream_body=True``) or
whole before the handler runs, as on HTTP/1.1.

Flow control is the back-pressure. The connection's window is handed back as DATA arrives
(what is buffered is bounded per stream, so one slow handler cannot starve the others); a
stream's window is handed back too until its handler leaves ``body_buffer_size`` bytes
unread, then withheld until the handler reads again. A stream thus never holds more than
``body_buffer_size`` plus its window (``h2_initial_window_size``). A failed body gets no
window back: its handler answers (413, 408...), and the stream is then reset with
``NO_ERROR`` (RFC 9113 section 8.1), as is any stream answered before its body ended.

A body longer or shorter than its ``content-length`` is malformed (RFC 9113 section 8.1.1):
a stream error, ``PROTOCOL_ERROR``. h2 counts it as a connection error, so its own count is
turned off (:class:`BodyH2Connection`) and the check is made here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from h2.connection import AllowedStreamIDs, H2Connection
from h2.errors import ErrorCodes
from h2.exceptions import H2Error

from kyoukai.backends._connection import Connection
from kyoukai.backends._decode import ContentDecoder
from kyoukai.backends._h2limits import FloodError
from kyoukai.backends._http1 import parse_content_length
from kyoukai.backends._settings import ProtocolError

if TYPE_CHECKING:
    import h2.events as ev
    from h2.stream import H2Stream

    from kyoukai.backends._h2stream import H2State

__all__ = ["BodyH2Connection", "H2BodyConnection"]


def _uncounted(length: int, end_stream: bool) -> None:
    """Stands in for h2's ``content-length`` count, which ends the whole connection."""


class BodyH2Connection(H2Connection):
    """h2's connection, leaving the ``content-length`` check of request bodies to the server,
    which makes a mismatch the stream error RFC 9113 asks for."""

    def _begin_new_stream(self, stream_id: int, allowed_ids: AllowedStreamIDs) -> H2Stream:
        stream = super()._begin_new_stream(stream_id, allowed_ids)
        stream._track_content_length = _uncounted  # type: ignore[method-assign]
        return stream


class H2BodyConnection(Connection):
    """An HTTP/2 connection whose request bodies stream to their handlers.

    The protocol's state it works on is set by the protocol's ``__init__``.
    """

    conn: H2Connection
    _streams: dict[int, H2State]
    _conn_owed: int

    def _start(self, stream: H2State) -> None:
        """Start the handler of ``stream`` (the protocol's)."""
        raise NotImplementedError

    def _reset(self, stream: H2State, code: ErrorCodes) -> None:
        """Reset ``stream`` and forget it (the protocol's)."""
        raise NotImplementedError

    def _spend_reset(self) -> None:
        """Count a reset against the budget (the protocol's)."""
        raise NotImplementedError

    def _fail(self, code: ErrorCodes, reason: str) -> None:
        """End the connection with ``GOAWAY(code)`` (the protocol's)."""
        raise NotImplementedError

    def _watch(self, deadline: float) -> None:
        """Have the server's timer call back by ``deadline`` (the protocol's)."""
        raise NotImplementedError

    def _flush_soon(self) -> None:
        """Write what h2 has to send, soon (the protocol's)."""
        raise NotImplementedError

    def _begin(self, stream: H2State, ended: bool) -> None:
        """Set up the body of a new request (``ended``: it has none) and start its handler.

        :raises ~kyoukai.backends._settings.ProtocolError: For a declared length over the
            server's limit, or a content coding that is not supported.
        """
        environ = stream.environ
        settings = self._settings
        length = environ.get("CONTENT_LENGTH")
        if length is not None:
            stream.declared = parse_content_length(length)
            if stream.declared > settings.max_body_size:
                raise ProtocolError("body too large")
        if ended:
            stream.complete = True
            if stream.declared:
                self._malformed(stream)
                return
        else:
            decoder = None
            coding = environ.get("HTTP_CONTENT_ENCODING")
            if coding is not None:
                decoder = ContentDecoder(
                    coding, settings.max_body_size, settings.max_content_codings
                )
                if decoder.active:
                    # The application gets the decoded body, whose length nobody knows yet.
                    del environ["HTTP_CONTENT_ENCODING"]
                    environ.pop("CONTENT_LENGTH", None)
                else:
                    decoder = None
            stream.open_body(decoder)
            self._track_body(stream)
        stream.attach_body(environ)
        self._start(stream)

    def receive_data(self, event: ev.DataReceived) -> None:
        """Called when a piece of a request body has been received: it goes to the handler."""
        size = event.flow_controlled_length
        if size:
            self._hand_back(size)
        stream = self._streams.get(event.stream_id)
        if stream is None or stream.body is None:
            return  # answered or refused already
        body = stream.body
        data = event.data
        if stream.declared is not None and body.received + len(data) > stream.declared:
            self._malformed(stream)
            return
        fed = body.feed(data) if data else body.error is None
        if not fed or body.paused:
            stream.owed += size  # withheld: the body failed, or its handler is behind
        elif event.stream_ended is None:
            self._open_window(stream, size)
        self._track_body(stream)

    def stream_complete(self, event: ev.StreamEnded) -> None:
        """Called when the client ended a stream: its body is complete."""
        stream = self._streams.get(event.stream_id)
        if stream is None or stream.complete:
            return
        body = stream.body
        if body is not None and stream.declared not in (None, body.received):
            self._malformed(stream)
            return
        stream.end()
        self._track_body(stream)

    def body_flow(self, stream: H2State, paused: bool) -> None:
        """Withhold the stream's window while its handler leaves the body unread (``paused``);
        hand back what was withheld once it reads again."""
        body = stream.body
        if not paused and body is not None and body.error is None and stream.owed:
            owed, stream.owed = stream.owed, 0
            self._window_update(stream, owed)
        self._track_body(stream)

    def _open_window(self, stream: H2State, size: int) -> None:
        """Hand ``size`` bytes back in the stream's window, in increments of half of it."""
        owed = stream.owed + size
        if owed < self._settings.h2_initial_window_size // 2:
            stream.owed = owed
        else:
            stream.owed = 0
            self._window_update(stream, owed)

    def _window_update(self, stream: H2State, size: int) -> None:
        if stream.complete:
            return
        try:
            self.conn.increment_flow_control_window(size, stream.stream_id)
        except (H2Error, KeyError):
            pass  # the stream closed meanwhile
        self._flush_soon()

    def _hand_back(self, size: int) -> None:
        """Hand ``size`` bytes back in the connection's window, in increments of half of it."""
        owed = self._conn_owed + size
        if owed < self._settings.h2_connection_window_size // 2:
            self._conn_owed = owed
        else:
            self._conn_owed = 0
            self.conn.increment_flow_control_window(owed)

    def _track_body(self, stream: H2State) -> None:
        """Set the stream's deadline for its body: the client's pace while the body arrives
        and the handler keeps up; none otherwise. A send window being awaited keeps its own."""
        window = stream.window
        if window is not None and not window.is_set():
            return
        body = stream.body
        if body is None or stream.complete or body.paused or body.error is not None:
            stream.deadline = 0.0
        else:
            stream.deadline = self._state.deadline(self._settings.body_timeout)
            self._watch(stream.deadline)

    def _body_late(self, stream: H2State) -> bool:
        """The deadline of ``stream`` passed: fail its body if that is what was late.

        :return: False if it was not the body (the client stopped reading the response).
        """
        window = stream.window
        body = stream.body
        if body is None or stream.complete or (window is not None and not window.is_set()):
            return False
        body.fail(ProtocolError("request body timeout"))  # its handler answers 408
        stream.deadline = 0.0
        return True

    def _answered(self, stream: H2State) -> None:
        """The response to ``stream`` is out while the client still sends its body: ask it to
        stop (``RST_STREAM(NO_ERROR)``, RFC 9113 section 8.1)."""
        if stream.body is not None:
            stream.body.abandon()
        try:
            self.conn.reset_stream(stream.stream_id, ErrorCodes.NO_ERROR)
        except H2Error:
            pass  # already closed
        self._flush_soon()
        try:
            self._spend_reset()
        except FloodError as exc:
            self._fail(exc.code, str(exc))

    def _malformed(self, stream: H2State) -> None:
        """A body that does not match its ``content-length``: a stream error."""
        if stream.body is not None:
            stream.body.fail(ProtocolError("malformed request", "body length mismatch"))
        self._reset(stream, ErrorCodes.PROTOCOL_ERROR)
        self._spend_reset()  # invariant: provoked resets are counted (MadeYouReset)
