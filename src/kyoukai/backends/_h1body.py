"""The body half of the HTTP/1.x protocol: request bodies that flow to a running handler.

:class:`BodyConnection` is what :class:`~kyoukai.backends.httptools_.KyoukaiProtocol` builds on:
a request with a body gets its handler started once its head is parsed, and its bytes go to a
:class:`~kyoukai.backends._inbound.BodyStream` as they arrive. Here are the decisions around
it: when ``100 Continue`` goes out, when reading pauses for a handler that does not keep up,
and what becomes of a body the handler did not read whole when its response goes out.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from kyoukai._body import BODY_ENVIRON_KEY, BodyInput
from kyoukai.backends._connection import Connection
from kyoukai.backends._decode import ContentDecoder
from kyoukai.backends._http1 import Cycle, Stage
from kyoukai.backends._inbound import BodyStream
from kyoukai.backends._settings import ProtocolError

__all__ = ["BodyConnection"]

_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


_IDLE, _HEAD, _BODY, _DONE = Stage.IDLE, Stage.HEAD, Stage.BODY, Stage.DONE


class _StopParsing(Exception):
    """Raised from a parser callback to stop at a request the server will not read."""


class BodyConnection(Connection):
    """An HTTP/1.x connection whose request bodies stream to their handlers.

    The protocol's per-connection state it works on is set by the protocol's ``__init__``.
    """

    _stage: Stage
    _pipeline: deque[Cycle]
    _reading: Cycle | None
    _chunked: bool
    _trailers: int
    _quiet: int
    _continue_pending: bool
    _queue_paused: bool
    _body_paused: bool
    _unparsed: bytes | None
    _environ: dict[str, Any] | None
    _body: list[bytes] | None
    _body_size: int
    _decoder: ContentDecoder | None
    _max_body: int
    _buffer_size: int
    _body_delay: float
    _idle_delay: float

    def _begin_cycle(self, environ: dict[str, Any]) -> Cycle:
        """Queue the request of ``environ`` and start its handler (the protocol's)."""
        raise NotImplementedError

    def _begin_body(self, environ: dict[str, Any]) -> None:
        """Start reading a request's body.

        A body that arrives with its head (the usual small one) is read whole, and the request
        goes to the application complete, as a request without a body does. One that does not
        (:meth:`_stream_body`, at the end of the read), or passes ``body_buffer_size``, streams
        to a handler started at once, as do a body whose client waits for ``100 Continue`` and
        a coded one: it is decoded as the application reads it, under the route's limit.
        """
        coding = environ.get("HTTP_CONTENT_ENCODING")
        if coding is not None:
            decoder = ContentDecoder(coding, self._max_body, self._settings.max_content_codings)
            if decoder.active:
                self._decoder = decoder
        self._environ = environ
        self._deadline = self._state.clock + self._body_delay
        expect = environ.get("HTTP_EXPECT")
        waits = (
            expect is not None
            and expect.lower() == "100-continue"
            and environ["SERVER_PROTOCOL"] == "HTTP/1.1"
        )
        if waits:
            # A client waiting for 100 Continue is not late; its deadline starts with the 100.
            self._deadline = 0.0
        if waits or self._decoder is not None:
            self._stream_body(expect=waits)

    def _buffer_body(self, body: bytes) -> None:
        """Take a piece of a body read whole, under the server's limit."""
        size = self._body_size + len(body)
        if size > self._max_body:
            raise ProtocolError("body too large")
        self._body_size = size
        if self._body is None:
            self._body = [body]
        else:
            self._body.append(body)
        if size > self._buffer_size:
            self._stream_body()

    def _finish_body(self, environ: dict[str, Any]) -> bytes:
        """Join a body read whole and reset the body state for the next request. A de-chunked
        body gets its real ``Content-Length``."""
        parts = self._body
        body = b"".join(parts) if parts is not None else b""
        if self._chunked:
            del environ["HTTP_TRANSFER_ENCODING"]
            environ["CONTENT_LENGTH"] = str(len(body))
        self._body = None
        self._body_size = 0
        self._chunked = False
        self._trailers = 0
        self._quiet = 0
        return body

    def _stream_body(self, *, expect: bool = False) -> None:
        """Start the application on the request whose body is arriving; the body, and what
        of it was read already, flows to it as it comes."""
        environ = self._environ
        assert environ is not None
        self._environ = None
        decoder = self._decoder
        if decoder is not None:
            # The application gets the decoded body, whose length nobody knows yet.
            del environ["HTTP_CONTENT_ENCODING"]
            declared = None
            environ.pop("CONTENT_LENGTH", None)
        else:
            declared = None if self._chunked else int(environ["CONTENT_LENGTH"])
        stream = BodyStream(
            self, declared, self._max_body, decoder, expect=expect, buffer_size=self._buffer_size
        )
        stream.prime(self._body_size, self._body)
        self._body = None
        self._body_size = 0
        self._decoder = None
        environ[BODY_ENVIRON_KEY] = stream
        environ["wsgi.input"] = BodyInput(stream)
        self._reading = cycle = self._begin_cycle(environ)
        cycle.body = stream

    def body_wanted(self, stream: BodyStream) -> None:
        """The application reads the body: the client waiting for ``100 Continue`` gets it,
        once the responses before are out."""
        reading = self._reading
        if not stream.expect or reading is None or reading.body is not stream:
            return
        if reading.response is not None:
            return  # its response is out already: an interim one cannot follow
        if self._pipeline and self._pipeline[0] is reading:
            self._send_continue()
        else:
            self._continue_pending = True

    def _send_continue(self) -> None:
        self._continue_pending = False
        self._raw_write(_CONTINUE)
        if not self._body_paused:
            self._deadline = self._state.clock + self._body_delay

    def body_flow(self, stream: BodyStream, paused: bool) -> None:
        """Stop reading while a handler leaves its body unread; go on once it reads."""
        flow = self._flow
        if flow is None or paused is self._body_paused:
            return
        self._body_paused = paused
        if paused:
            flow.pause_reading()
            self._deadline = 0.0  # the handler is slow, not the client
            return
        if self._stage is _BODY:
            self._deadline = self._state.clock + self._body_delay
        if not self._queue_paused:
            flow.resume_reading()
            if self._unparsed is not None:
                data, self._unparsed = self._unparsed, None
                self.data_received(data)

    def _body_failed(self, cycle: Cycle) -> None:
        """Read nothing more after a body that failed; its handler answers (or answered)."""
        self._reading = None
        self._stage = _DONE
        if cycle.body is not None and cycle.body.abandoned and not self._pipeline:
            self._linger(b"")  # its response is out: nobody else will answer

    def _end_body(self, cycle: Cycle) -> bool:
        """The body of ``cycle`` is complete on the wire: hand over its end, reset the body
        state for the next request.

        :return: Whether the connection reads another request.
        """
        self._reading = None
        self._continue_pending = False
        self._chunked = False
        self._trailers = 0
        self._quiet = 0
        stream = cycle.body
        assert stream is not None
        if not stream.end():
            self._stage = _DONE
            raise _StopParsing
        if not self._pipeline and cycle.keep_alive:
            # Its response went out while the body was still arriving (and drained).
            if self._state.closing:
                self._close()
            else:
                self._deadline = self._state.clock + self._idle_delay
        return cycle.keep_alive

    def _settle_body(self, cycle: Cycle, body: BodyStream) -> None:
        """Before a response goes out with its request body unread: close after it if the body
        failed or the client still waits for ``100 Continue`` (it may send the body or not,
        so nothing after it can be parsed); otherwise the body is drained."""
        if body.error is None and (body.wanted or not body.expect):
            return
        cycle.keep_alive = False
        if self._reading is cycle:
            self._reading = None
            self._stage = _DONE

    def _close_after(self, cycle: Cycle) -> None:
        """Close after the last response; linger if its request's body may still arrive."""
        body = cycle.body
        if body is not None and not body.done:
            self._stage = _DONE
            self._linger(b"")
        else:
            self._close()
