"""The built-in HTTP/1.0 and HTTP/1.1 server: an asyncio protocol on the httptools parser.

:class:`KyoukaiProtocol` turns bytes into WSGI environs, hands each request to
:meth:`Kyoukai.process_request <kyoukai.app.Kyoukai.process_request>` and writes the response
back; ``Kyoukai.start()`` and ``Kyoukai.run()`` listen with it
(:mod:`kyoukai.backends._server`). The limits and timeouts are
:class:`~kyoukai.backends._settings.ServerSettings`. The transport side it inherits is
:class:`~kyoukai.backends._connection.Connection`; the I/O-free framing rules are in
:mod:`kyoukai.backends._http1`.
"""

# Invariants of this module; a comment starting "invariant:" marks where each is enforced:
#
# * Responses leave in request order. Every parsed request becomes a ``Cycle`` appended to
#   ``_pipeline``; handlers of pipelined requests run concurrently, but only the cycle at the
#   head of the pipeline is written, and whoever finishes the head (its own task, or the task
#   that wrote the one before) goes on to write the next cycles that are ready.
# * A request starts its handler when it is complete, or, if its body did not come with its
#   head, once the read ends: the body then flows to the handler through a ``BodyStream``
#   (``_reading``); ``100 Continue`` goes out when the application first receives from it,
#   after earlier responses, never after the request's own response began.
# * Reading pauses when ``max_pipelined_requests`` cycles wait for their response, or a handler
#   leaves ``body_buffer_size`` bytes unread (not counted against the client's body deadline);
#   the bytes received stay in ``_unparsed`` until then. A slow reader does not pause reading:
#   the writer waits in ``FlowControl.drain``, and the queue bound caps what piles up. After a
#   refusal the connection keeps reading but discards everything (lingering close). A body
#   left unread when its response goes out is drained, or, if it failed or its client waits
#   for ``100 Continue``, the connection closes after the response (lingering).
# * Each limit maps to one status (``_settings.STATUS_FOR``): 400 bad framing, 408 timeouts,
#   413 body, 414 request line, 415 content coding, 431 head, 501 transfer coding, 505 version,
#   503 over the connection cap. The response to a refused request is the last one on the
#   connection, and the application never sees that request; a body the application is
#   already reading fails with that status instead, so its error handlers answer.
# * No head longer than ``max_head_size`` reaches the application, and the parser never
#   buffers more than that of an unfinished one: raw bytes are handed to httptools in pieces
#   no longer than the limit, and a head that spans pieces is counted as they arrive, before
#   httptools sees them (it has no limits of its own and joins header pieces quadratically).

from __future__ import annotations

import asyncio
import enum
import io
import logging
from collections import deque
from typing import TYPE_CHECKING, Any

import httptools
from werkzeug.wrappers import Response

from kyoukai._head import error_response
from kyoukai.backends._decode import ContentDecoder
from kyoukai.backends._exchange import Exchange
from kyoukai.backends._flow import ClientGone, write_stream
from kyoukai.backends._h1body import _BODY, _DONE, _HEAD, _IDLE, BodyConnection, _StopParsing
from kyoukai.backends._http1 import (
    PROTOCOLS,
    Cycle,
    StreamJob,
    check_transfer_encoding,
    parse_content_length,
    partial_head_size,
    prepare_response,
    split_target,
    unsupported_version,
)
from kyoukai.backends._settings import ProtocolError
from kyoukai.backends._state import ServerState
from kyoukai.backends._ws_http1 import start_websocket
from kyoukai.wsgi import build_environ, get_formatted_response, to_wsgi_environment

if TYPE_CHECKING:
    from asphalt.core import Context

__all__ = [
    "KyoukaiProtocol",
    "get_formatted_response",
    "to_wsgi_environment",
]

logger = logging.getLogger("kyoukai")

#: Bytes handed to the parser at once; bounds how many pipelined requests one read can queue
#: beyond ``max_pipelined_requests``, and how far a fresh head can run before it is counted.
PARSE_SLICE = 16 * 1024

#: The name of every request's task (asyncio would format a new one per task).
_TASK_NAME = "kyoukai request"


class Pending(enum.Enum):
    """What the pipeline's writer waits for when it stops, besides a streamed body."""

    DRAIN = "drain"  #: the client must drain the write buffer before more is written


class KyoukaiProtocol(BodyConnection):
    """The base protocol for Kyoukai using httptools for a HTTP/1.0 or HTTP/1.1 interface.

    One instance serves one connection. Requests are parsed as bytes arrive; each complete
    request gets one task that runs the application, and responses are written in request
    order with back-pressure. Refused requests never reach the application.

    :param component: The :class:`~kyoukai.asphalt.KyoukaiComponent` (or any object with
        ``app`` and ``settings``) this connection belongs to.
    :param parent_context: The parent context of every request context on this connection.
    :param server_ip: The address the server listens on.
    :param server_port: The port the server listens on.
    :param state: The shared state of the server; created for ``component`` if omitted.
    """

    def __init__(
        self,
        component: Any,
        parent_context: Context | None,
        server_ip: str,
        server_port: int,
        *,
        state: ServerState | None = None,
    ) -> None:
        if state is None:
            state = ServerState.standalone(component, parent_context)
        super().__init__(state, server_ip, server_port)
        #: The component this connection was made for.
        self.component = component
        #: The application.
        self.app = component.app
        #: The parent context of every request context.
        self.parent_context = parent_context
        settings = state.settings
        self._exchange = Exchange(
            self.app,
            parent_context,
            settings.handler_timeout,
            deliver=self._write_ready,
            finish=self._write_rest,
            form_limits=(settings.max_form_memory_size, settings.max_form_parts),
        )
        self._stage = _IDLE
        self._pipeline: deque[Cycle] = deque()
        #: The httptools parser; it calls the ``on_*`` methods.
        self.parser = httptools.HttpRequestParser(self)
        self._max_url = settings.max_request_line_size
        self._max_line = settings.max_header_line_size
        self._max_headers = settings.max_header_count
        self._max_head = settings.max_head_size
        self._max_body = settings.max_body_size
        self._max_queue = settings.max_pipelined_requests
        self._buffer_size = settings.body_buffer_size
        # Deadlines are the coarse clock plus these (ServerState.deadline, without a call).
        self._head_delay = settings.request_timeout + state.slack
        self._body_delay = settings.body_timeout + state.slack
        self._idle_delay = settings.keep_alive_timeout + state.slack
        # No piece handed to the parser is longer than a head may be, so a head that starts
        # and ends within one piece is within the limit without being counted.
        self._slice = min(PARSE_SLICE, settings.max_head_size)
        self._queue_paused = False
        self._body_paused = False
        self._unparsed: bytes | None = None
        self._continue_pending = False
        self._requests_seen = 0
        # Per-request parsing state: the head's is reset by on_message_begin, the body's by
        # _end_body when there was one.
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._environ: dict[str, Any] | None = None
        self._body: list[bytes] | None = None
        self._body_size = 0
        self._decoder: ContentDecoder | None = None
        #: The request whose body streams to its handler, if any.
        self._reading: Cycle | None = None
        self._chunked = False
        self._trailers = 0
        # Raw-byte accounting (see the last invariant).
        self._head_bytes = 0
        self._began = False
        self._progress = False
        self._quiet = 0

    # -- reading ------------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        """Called when data is received into the connection.

        Small reads go to the parser whole. Larger ones are fed in slices, so that the head
        limit is checked before httptools buffers too much and so that a read packed with
        pipelined requests stops once the pipeline is full.
        """
        stage = self._stage
        if stage is _DONE:
            return  # a refused or closing connection: discard (lingering close)
        if stage is _BODY:
            self._deadline = self._state.clock + self._body_delay
        if self._unparsed is not None:
            data, self._unparsed = self._unparsed + data, None
        if stage is _IDLE and len(data) <= self._slice and not self._queue_paused:
            self._feed(data)
        else:
            pos, end = 0, len(data)
            while pos < end and self._stage is not _DONE:
                if self._queue_paused or self._body_paused:
                    self._unparsed = data[pos:]
                    return
                size = self._slice
                if self._stage is _HEAD:
                    size = min(size, self._max_head - self._head_bytes)
                piece = data[pos : pos + size] if pos or end > size else data
                pos += len(piece)
                self._feed(piece)
        if self._environ is not None and self._stage is _BODY:
            self._stream_body()  # a body that did not come with its head streams

    def _feed(self, piece: bytes) -> None:
        was_head = self._stage is _HEAD
        self._began = False
        try:
            self.parser.feed_data(piece)
        except httptools.HttpParserUpgrade as exc:
            self.on_upgrade(piece[exc.args[0] :] if exc.args else b"")
            return
        except _StopParsing:
            return
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _StopParsing):
                return
            if not isinstance(cause, ProtocolError):
                logger.error("Error in a parser callback", exc_info=cause)
            self.handle_parser_exception(cause if isinstance(cause, ProtocolError) else exc)
            return
        except httptools.HttpParserError as exc:
            self.handle_parser_exception(exc)
            return
        stage = self._stage
        if stage is _HEAD:  # invariant: heads are bounded before the parser buffers them
            if was_head and not self._began:
                self._head_bytes += len(piece)
            else:
                self._head_bytes = partial_head_size(piece, self._url, self._headers)
            if self._head_bytes >= self._max_head:
                self.handle_parser_exception(ProtocolError("head too large"))
        elif stage is _BODY and self._chunked:
            # Chunk-size lines and trailer fields are buffered by the parser with no callback;
            # bytes that make no progress are counted like a head.
            if self._progress:
                self._progress = False
                self._quiet = 0
            else:
                self._quiet += len(piece)
                if self._quiet >= self._max_head:
                    self.handle_parser_exception(ProtocolError("trailer section too large"))

    def on_upgrade(self, rest: bytes) -> None:
        """After an ``Upgrade``: WebSockets go to ``_ws_http1``, others stay HTTP/1.1."""
        if not start_websocket(self, rest) and rest and self._stage is not _DONE:
            self._feed(rest)

    def on_message_begin(self) -> None:
        """Called when a message begins."""
        if self._stage is _DONE:
            raise _StopParsing
        self._began = True
        self._stage = _HEAD
        self._url = b""
        self._headers = []
        if self._requests_seen:
            # Later heads are due within request_timeout of their first byte.
            self._deadline = self._state.clock + self._head_delay

    def on_url(self, url: bytes) -> None:
        """Called when a URL is received from the client."""
        self._url += url
        if len(self._url) > self._max_url:
            raise ProtocolError("request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        """Called when a header has been received.

        :param name: The name of the header.
        :param value: The value of the header.
        """
        if len(name) + len(value) > self._max_line:
            raise ProtocolError("header line too long")
        if self._stage is _BODY:
            # A trailer field after a chunked body: counted, never merged into the headers
            # (RFC 9110 section 6.5.1; aiohttp CVE-2025-53643).
            self._progress = True
            self._trailers += 1
            if self._trailers > self._max_headers:
                raise ProtocolError("too many headers", "in the trailer section")
            return
        headers = self._headers
        headers.append((name, value))
        if len(headers) > self._max_headers:
            raise ProtocolError("too many headers")

    def on_headers_complete(self) -> None:
        """Called when the headers have been completely sent.

        Builds the request's environ and applies the framing rules that close request
        smuggling (RFC 9112), before a byte of the body is read: only HTTP/1.0 and 1.1,
        exactly one ``Host`` on HTTP/1.1 (section 3.2) — replaced by the authority of an
        absolute-form target (section 3.2.2) —, one ``Content-Length`` of plain digits, and no
        transfer coding but a lone ``chunked`` on HTTP/1.1 (section 6.1).
        """
        parser = self.parser
        method = parser.get_method().decode("ascii")
        version = parser.get_http_version()
        protocol = PROTOCOLS.get(version) or unsupported_version(version)
        target = self._url.decode("latin-1")
        authority = None
        if target[:1] != "/":
            target, authority = split_target(target, method)
        environ = build_environ(self._base_environ, method, protocol, target, self._headers)
        host = environ.get("HTTP_HOST")
        if host is None:
            if version == "1.1":
                raise ProtocolError("malformed request", "HTTP/1.1 request without Host")
        elif "," in host:
            raise ProtocolError("malformed request", "repeated Host")
        if authority is not None:
            environ["HTTP_HOST"] = authority
        transfer = environ.get("HTTP_TRANSFER_ENCODING")
        if transfer is not None:
            check_transfer_encoding(transfer, version)
            self._chunked = True
        length = environ.get("CONTENT_LENGTH")
        declared = parse_content_length(length) if length is not None else 0
        if self.proxied:
            self.apply_proxy_headers(environ)
        if declared > self._max_body:
            raise ProtocolError("body too large")
        if declared or self._chunked:
            if parser.should_upgrade():
                # The parser skips the body of an upgrade request; refuse rather than hand the
                # application an empty body and parse the real one as a request.
                raise ProtocolError("malformed request", "Upgrade with a request body")
            self._stage = _BODY
            self._begin_body(environ)
            return
        self._environ = environ
        self._stage = _BODY
        self._deadline = self._state.clock + self._body_delay

    def on_body(self, body: bytes) -> None:
        """Called when part of the body has been received.

        :param body: The body text.
        """
        self._progress = True
        reading = self._reading
        if reading is None:
            self._buffer_body(body)
        elif not reading.body.feed(body):  # type: ignore[union-attr]
            self._body_failed(reading)
            raise _StopParsing

    def on_chunk_complete(self) -> None:
        """Called when a chunk of a chunked body ends: the client is making progress."""
        self._progress = True

    def on_message_complete(self) -> None:
        """Called when a message is complete. This creates the worker task which will begin
        processing the request (one with a body has it already)."""
        reading = self._reading
        if reading is None:
            environ = self._environ
            assert environ is not None
            if self._body is None and not self._chunked:
                body = b""  # the usual GET
            else:
                body = self._finish_body(environ)
            environ["wsgi.input"] = io.BytesIO(body)
            self._environ = None
            keep_alive = self._begin_cycle(environ).keep_alive
        else:
            keep_alive = self._end_body(reading)
        self._requests_seen += 1
        self._stage = _IDLE if keep_alive else _DONE
        if len(self._pipeline) >= self._max_queue and self._flow is not None:
            # invariant: reading pauses only for a full pipeline (or an unread body)
            self._queue_paused = True
            self._flow.pause_reading()

    def _begin_cycle(self, environ: dict[str, Any]) -> Cycle:
        """Queue the request of ``environ`` and start its handler."""
        keep_alive = self.parser.should_keep_alive() and not self._state.closing
        cycle = Cycle(environ, keep_alive, environ["SERVER_PROTOCOL"] == "HTTP/1.0")
        self._pipeline.append(cycle)
        loop = self.loop
        # What create_task would do, less its wrapper and the per-task name formatting.
        serve = self._exchange.serve(cycle, environ, self._server_address)
        if loop.get_task_factory() is None:
            cycle.task = asyncio.Task(serve, loop=loop, name=_TASK_NAME)
        else:
            cycle.task = loop.create_task(serve)
        return cycle

    def handle_parser_exception(self, exc: Exception) -> None:
        """Handles an exception when parsing.

        This will not call into the app (hence why it is a normal function, and not a
        coroutine). It answers with the status the problem maps to (400 for anything the parser
        rejects) once earlier responses are out, and closes the connection.

        :param exc: The exception to handle.
        """
        self.refuse(exc)

    def refuse(self, exc: Exception) -> None:
        """Answer a request that will not reach the application, then close.

        The status is the one the problem maps to (400 for anything else); the answer waits
        for earlier responses on the connection.

        :param exc: What is wrong with the request.
        """
        if self._stage is _DONE or self._closed:
            return
        status = exc.status if isinstance(exc, ProtocolError) else 400  # invariant: one status
        detail = str(exc) if isinstance(exc, ProtocolError) else f"malformed request: {exc}"
        logger.debug("Refusing a request with %d: %s", status, exc)
        reading = self._reading
        if reading is not None and reading.body is not None:
            # The application is reading this body: its error handlers answer.
            problem = exc if isinstance(exc, ProtocolError) else ProtocolError("malformed request")
            reading.body.fail(problem)
            self._body_failed(reading)
            return
        self._stage = _DONE
        cycle = Cycle(None, False, False)
        cycle.raw = self.refusal(status, detail)
        self._pipeline.append(cycle)
        if len(self._pipeline) == 1:
            self._linger(cycle.raw)

    def refusal(self, status: int, detail: str) -> bytes:
        """A plain-text HTTP/1.1 response with ``status`` that closes the connection."""
        return error_response(status, self._state.date_line, detail)

    def eof_received(self) -> bool:
        """Called when the client half-closes; the connection then closes.

        A FIN looks the same whether the client half-closed or went away, and clients that
        half-close and still wait for a response are rare, so it counts as a disconnect:
        handlers still running are cancelled instead of working for nobody.
        """
        self._stage = _DONE
        return False

    def stop_reading_requests(self) -> None:
        """Parse nothing more: the connection is closing or goes to another protocol."""
        self._stage = _DONE

    def connection_lost(self, exc: Exception | None) -> None:
        """Called when the connection closes: cancel handlers still running, wake writers."""
        self._stage = _DONE
        if self._reading is not None and self._reading.body is not None:
            self._reading.body.fail(None)
        super().connection_lost(exc)

    def read_deadline_passed(self, now: float) -> None:
        """Refuse a request whose head or body is late; close an idle or lingering connection."""
        stage = self._stage
        if stage is _DONE:
            if not self._pipeline or self._pipeline[0].raw is not None:
                self._close()  # lingering ended
            return
        reading = self._reading
        if reading is not None and reading.body is not None:
            if reading.body.abandoned:
                self._close()  # a body nobody reads any more stopped arriving
            else:
                self.refuse(ProtocolError("request body timeout"))
            return
        if self._pipeline:
            return  # a response is owed; the client is waiting on us, not the reverse
        if stage is _HEAD:
            self.refuse(ProtocolError("request head timeout"))
        elif stage is _BODY:
            self.refuse(ProtocolError("request body timeout"))
        else:
            self._close()  # idle keep-alive, or a client that never sent a byte

    def shutdown(self) -> None:
        """Begin a graceful close: idle connections close now, busy ones after their response."""
        if self._closed:
            return
        if not self._pipeline and self._stage is _IDLE:
            self._close()
        elif self._pipeline:
            self._pipeline[-1].keep_alive = False

    def pending_tasks(self) -> list[asyncio.Task[None]]:
        """The handler tasks of this connection that have not finished."""
        return [c.task for c in self._pipeline if c.task is not None and not c.task.done()]

    # -- writing ------------------------------------------------------------------------------

    def _write_ready(
        self, cycle: Cycle | None = None, response: Response | None = None
    ) -> StreamJob | Pending | None:
        """Take ``cycle``'s ``response`` (when given), then write the responses at the head of
        the pipeline that are in memory, in request order.

        This is how the exchange delivers a response. It stops at a response still being made
        (its own task writes it), or at one that needs awaiting, which it returns for
        :meth:`_write_rest`: a streamed body's job, or :attr:`Pending.DRAIN` to wait for the
        client to drain the write buffer first. When the pipeline empties, it resumes reading
        and sets the keep-alive deadline.
        """
        pipeline = self._pipeline
        if cycle is not None:
            cycle.response = response
            if not pipeline or pipeline[0] is not cycle:  # invariant: request order
                return None
        flow = self._flow
        while pipeline and not self._closed:
            if flow is not None and flow.write_paused:
                return Pending.DRAIN
            cycle = pipeline[0]
            if self._continue_pending and cycle is self._reading:
                self._send_continue()
            if cycle.raw is not None:
                self._stage = _DONE
                self._linger(cycle.raw)
                return None
            if cycle.response is None:
                return None
            body = cycle.body
            if body is not None and (not body.done or body.error is not None):
                self._settle_body(cycle, body)
            prepared = prepare_response(cycle, self._state.date_line, self._state.closing)
            if isinstance(prepared, StreamJob):
                return prepared
            data, more, keep_alive = prepared
            transport = self.transport
            assert transport is not None
            transport.write(data)
            if more is not None:
                transport.write(more)
            pipeline.popleft()
            if not keep_alive:
                self._close_after(cycle)
                return None
            if body is not None and not body.finished:
                body.abandon()  # drained from now on
        if self._closed:
            return None
        if self._queue_paused and len(pipeline) < self._max_queue:
            self._queue_paused = False
            assert flow is not None
            if not self._body_paused:
                flow.resume_reading()
                if self._unparsed is not None:
                    data, self._unparsed = self._unparsed, None
                    self.data_received(data)
        if pipeline:
            return None
        if self._stage is _IDLE:
            if self._state.closing:
                self._close()
            else:
                self._deadline = self._state.clock + self._idle_delay
        return None

    async def _write_rest(self, wait: StreamJob | Pending | None) -> None:
        """Finish what :meth:`_write_ready` could not: streamed bodies and full buffers."""
        try:
            while wait is not None:
                flow = self._flow
                assert self.transport is not None and flow is not None
                if wait is Pending.DRAIN:
                    await flow.drain()
                else:
                    assert isinstance(wait, StreamJob)
                    self.transport.write(wait.head)
                    ok = await write_stream(
                        self.transport, flow, wait.stream, chunked=wait.chunked, length=wait.length
                    )
                    cycle = self._pipeline.popleft()
                    if not (wait.keep_alive and ok):
                        self._close_after(cycle)
                        return
                    if cycle.body is not None and not cycle.body.finished:
                        cycle.body.abandon()
                wait = self._write_ready()
        except (asyncio.CancelledError, ClientGone):
            pass  # the client went away, or the server is shutting down

    def write_response(self, response: Response, fake_environ: dict[str, Any]) -> None:
        """Writes a Werkzeug response to the transport, whole, outside the request pipeline.

        For responses the server did not get from the application (a streamed body is joined
        first); requests answered by the application never need this.

        :param response: The response to write.
        :param fake_environ: The environ of the request it answers.
        """
        self.write(get_formatted_response(response, fake_environ))
