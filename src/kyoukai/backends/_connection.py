"""One connection of the built-in server: its transport, back-pressure, deadlines, shutdown.

:class:`Connection` is the part of :class:`~kyoukai.backends.httptools_.KyoukaiProtocol` that
does not depend on how requests are parsed: it sets up the transport and the constant part of
every environ, keeps the per-connection deadlines the server's timer checks, refuses requests
(one response, then a lingering close), and takes part in graceful shutdown.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from typing import Any, cast

from werkzeug.wrappers import Response

from kyoukai.backends._flow import FlowControl
from kyoukai.backends._http1 import ProtocolError, error_response
from kyoukai.backends._server import ServerState
from kyoukai.wsgi import get_formatted_response

__all__ = ["LINGER_SECONDS", "Connection", "Cycle", "Stage"]

logger = logging.getLogger("kyoukai")

#: Seconds a refused client may keep sending before its connection is closed (lingering close
#: lets it read the error response instead of losing it to a TCP reset).
LINGER_SECONDS = 2.0


class Stage(enum.Enum):
    """Where the connection is in reading the current request."""

    IDLE = "idle"  #: between requests: nothing of the next one has arrived
    HEAD = "head"  #: request line and headers arriving
    BODY = "body"  #: head parsed, body (or trailers) arriving
    DONE = "done"  #: no further request will be read (close pending, or lingering)


_IDLE, _HEAD, _BODY, _DONE = Stage.IDLE, Stage.HEAD, Stage.BODY, Stage.DONE


class Cycle:
    """One request on the connection, from its parsed head to its written response."""

    __slots__ = ("environ", "http10", "keep_alive", "raw", "response", "task")

    def __init__(self, environ: dict[str, Any] | None, keep_alive: bool, http10: bool) -> None:
        self.environ = environ
        self.keep_alive = keep_alive
        self.http10 = http10
        #: The application's response, once the handler has returned.
        self.response: Response | None = None
        #: Bytes to send instead of a response (a refusal); always the last on the connection.
        self.raw: bytes | None = None
        self.task: asyncio.Task[None] | None = None


class Connection(asyncio.Protocol):
    """The transport side of a server connection; subclasses parse and answer requests.

    :param state: The shared state of the server.
    :param server_ip: The address the server listens on.
    :param server_port: The port the server listens on.
    """

    def __init__(self, state: ServerState, server_ip: str, server_port: int) -> None:
        #: The address and port the server listens on.
        self.server_ip = server_ip
        self.server_port = server_port
        #: The transport, once :meth:`connection_made` has run.
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()
        self._state = state
        self._settings = state.settings
        self._flow: FlowControl | None = None
        self._base_environ: dict[str, Any] = {}
        #: ``(host, port)`` of the local end, as Werkzeug's ``Request.server`` has it.
        self._server_address: tuple[str, int | None] | None = None
        self._stage = _IDLE
        self._pipeline: deque[Cycle] = deque()
        self._closed = False
        #: Read deadline (loop time) for the current stage; 0 means none.
        self._deadline = 0.0
        self._write_deadline = 0.0
        self._write_buffered = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Called when a connection is made via asyncio.

        :param transport: The transport this is using.
        """
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = transport = cast(asyncio.Transport, transport)
        state = self._state
        if len(state.connections) >= self._settings.max_connections:
            logger.warning("Refusing a connection: %d are open", len(state.connections))
            transport.write(error_response(503, state.date_line, "too many connections"))
            self._closed = True
            self._stage = _DONE
            transport.close()
            return
        state.connections.add(self)
        self._flow = FlowControl(transport)
        high = self._settings.write_buffer_size
        transport.set_write_buffer_limits(high, high // 4)
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        remote_addr, remote_port = (peer[0], str(peer[1])) if isinstance(peer, tuple) else ("", "")
        if isinstance(local, tuple):
            server_name, server_port = local[0], str(local[1])
        else:
            server_name, server_port = self.server_ip, str(self.server_port)
        self._server_address = (server_name, int(server_port))
        self._base_environ = {
            "SCRIPT_NAME": "",
            "SERVER_NAME": server_name,
            "SERVER_PORT": server_port,
            "REMOTE_ADDR": remote_addr,
            "REMOTE_PORT": remote_port,
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": state.url_scheme,
            "wsgi.errors": state.errors_stream,
            "wsgi.multithread": False,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "kyoukai.protocol": self,
        }
        # The head of the first request is due within request_timeout of the accept.
        self._deadline = state.clock + self._settings.request_timeout
        state.ensure_ticking()
        signal = state.made_signal
        if signal is not None and signal.listeners:
            signal.dispatch(protocol=self)

    def connection_lost(self, exc: Exception | None) -> None:
        """Called when the connection closes: cancel handlers still running, wake writers."""
        if self._closed and self._flow is None:
            return
        self._closed = True
        self._stage = _DONE
        self._state.forget(self)
        if self._flow is not None:
            self._flow.release()
        for cycle in self._pipeline:
            if cycle.task is not None and not cycle.task.done():
                cycle.task.cancel()
        signal = self._state.lost_signal
        if signal is not None and signal.listeners:
            signal.dispatch(protocol=self)

    def eof_received(self) -> bool:
        """Called when the client half-closes; the connection then closes.

        A FIN looks the same whether the client half-closed or went away, and clients that
        half-close and still wait for a response are rare, so it counts as a disconnect:
        handlers still running are cancelled instead of working for nobody.
        """
        self._stage = _DONE
        return False

    def pause_writing(self) -> None:
        """Called when the transport's buffer goes over the high-water mark."""
        assert self._flow is not None and self.transport is not None
        self._flow.pause_writing()
        self._write_deadline = self._state.clock + self._settings.write_timeout
        self._write_buffered = self.transport.get_write_buffer_size()

    def resume_writing(self) -> None:
        """Called when the transport's buffer drains below the low-water mark."""
        assert self._flow is not None
        self._flow.resume_writing()

    def refuse(self, exc: Exception) -> None:
        """Answer a request that will not reach the application, then close.

        The status is the one the problem maps to (400 for anything else); the answer waits
        for earlier responses on the connection.

        :param exc: What is wrong with the request.
        """
        if self._stage is _DONE or self._closed:
            return
        status = exc.status if isinstance(exc, ProtocolError) else 400  # invariant: one status
        detail = exc.problem if isinstance(exc, ProtocolError) else "malformed request"
        logger.debug("Refusing a request with %d: %s", status, exc)
        self._stage = _DONE
        cycle = Cycle(None, False, False)
        cycle.raw = error_response(status, self._state.date_line, detail)
        self._pipeline.append(cycle)
        if len(self._pipeline) == 1:
            self._write_refusal(cycle.raw)

    def write_response(self, response: Response, fake_environ: dict[str, Any]) -> None:
        """Writes a Werkzeug response to the transport, whole, outside the request pipeline.

        For responses the server did not get from the application (a streamed body is joined
        first); requests answered by the application never need this.

        :param response: The response to write.
        :param fake_environ: The environ of the request it answers.
        """
        self.write(get_formatted_response(response, fake_environ))

    def write(self, data: bytes) -> None:
        """Writes data to the transport, unless the connection is closed."""
        self._raw_write(data)

    def replace(self, other: type[asyncio.Protocol], *args: Any, **kwargs: Any) -> asyncio.Protocol:
        """Replaces our type with the other: hand the connection to another protocol.

        This connection stops reading requests; ``other(*args, **kwargs)`` takes over the
        transport and gets ``connection_made`` (for example, to switch to HTTP/2).

        :param other: The protocol class to switch to.
        :return: The new protocol object.
        """
        transport = self.transport
        if transport is None:
            raise RuntimeError("replace() needs a connection: call it after connection_made()")
        protocol = other(*args, **kwargs)
        self._stage = _DONE
        self._closed = True
        self._state.forget(self)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        return protocol

    def _raw_write(self, data: bytes) -> None:
        """Does a raw write to the underlying transport, if we can.

        :param data: The data to write.
        """
        if not self._closed and self.transport is not None:
            self.transport.write(data)

    def _write_refusal(self, data: bytes) -> None:
        """Send a refusal and close, letting the client read it before the socket goes."""
        transport = self.transport
        if self._closed or transport is None:
            return
        transport.write(data)
        self._stage = _DONE
        if transport.can_write_eof():
            # Lingering close: stop writing, drop whatever still arrives, close on EOF or soon.
            transport.write_eof()
            self._deadline = self._state.clock + LINGER_SECONDS
        else:
            self._close()

    def _close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def check_deadlines(self, now: float) -> None:
        """Close this connection if a read or write deadline has passed (called by the server
        about once a second)."""
        flow = self._flow
        transport = self.transport
        if flow is None or transport is None or self._closed:
            return
        if flow.write_paused:
            buffered = transport.get_write_buffer_size()
            if buffered < self._write_buffered:
                self._write_buffered = buffered
                self._write_deadline = now + self._settings.write_timeout
            elif now >= self._write_deadline:
                logger.debug("Closing a connection whose client stopped reading")
                transport.abort()
                return
        deadline = self._deadline
        if not deadline or now < deadline:
            return
        stage = self._stage
        if stage is _DONE:
            if not self._pipeline or self._pipeline[0].raw is not None:
                self._close()  # lingering ended
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

    def abort(self) -> None:
        """Close at once, cancelling any handler still running."""
        if self.transport is not None and not self._closed:
            self.transport.abort()
