"""The transport side of a server connection, whatever protocol it speaks.

:class:`Connection` is what every protocol of the built-in server inherits: it sets up the
transport (buffer limits, back-pressure, the constant part of every environ), registers with
the server's shared state, dispatches the connection events, drops a client that stops
reading (the write deadline), closes with a lingering close after a refusal, and takes part
in graceful shutdown. How requests are read and answered — and so the read deadline, what
is in flight, and how to refuse — is the protocol's: the methods marked so below.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

from kyoukai._context import PROTOCOL_ENVIRON_KEY
from kyoukai.backends._flow import FlowControl
from kyoukai.backends._proxy import apply_proxy_headers
from kyoukai.backends._state import ServerState

__all__ = ["LINGER_SECONDS", "Connection"]

logger = logging.getLogger("kyoukai")

#: Seconds a refused client may keep sending before its connection is closed (lingering close
#: lets it read the error response instead of losing it to a TCP reset).
LINGER_SECONDS = 2.0


class Connection(asyncio.Protocol):
    """The transport side of a server connection; subclasses read and answer requests.

    :param state: The shared state of the server.
    :param server_ip: The address the server listens on.
    :param server_port: The port the server listens on.
    """

    #: What a protocol calls on the environ of each request when :attr:`proxied` is true.
    apply_proxy_headers = staticmethod(apply_proxy_headers)

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
        self._closed = False
        #: Read deadline (loop time), checked by the server's timer; 0 means none.
        self._deadline = 0.0
        self._write_deadline = 0.0
        self._write_buffered = 0
        #: Whether the peer is a trusted proxy, whose proxy headers are applied to environs.
        self.proxied = False

    # -- what each protocol provides ----------------------------------------------------------

    def refusal(self, status: int, detail: str) -> bytes:
        """The bytes that refuse the connection with ``status`` before a request was read."""
        raise NotImplementedError

    def read_deadline_passed(self, now: float) -> None:
        """Called by the server's timer once the read deadline (:attr:`_deadline`) passed."""
        raise NotImplementedError

    def stop_reading_requests(self) -> None:
        """Read no further request on this connection (its transport goes elsewhere)."""
        raise NotImplementedError

    def shutdown(self) -> None:
        """Begin a graceful close: idle connections close now, busy ones when done."""
        raise NotImplementedError

    def pending_tasks(self) -> list[asyncio.Task[None]]:
        """The handler tasks of this connection that have not finished."""
        raise NotImplementedError

    # -- the transport ------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Called when a connection is made via asyncio.

        :param transport: The transport this is using.
        """
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = transport = cast(asyncio.Transport, transport)
        state = self._state
        if len(state.connections) >= self._settings.max_connections:
            logger.warning("Refusing a connection: %d are open", len(state.connections))
            transport.write(self.refusal(503, "too many connections"))
            self._closed = True
            transport.close()
            return
        state.add(self)
        self._flow = FlowControl(transport, self._settings.write_timeout)
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
        self.proxied = state.trusted_proxies.trusts(remote_addr)
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
            PROTOCOL_ENVIRON_KEY: self,
        }
        # The first request is due within request_timeout of the accept.
        self._deadline = state.deadline(self._settings.request_timeout)
        signal = state.made_signal
        if signal is not None and signal.listeners:
            signal.dispatch(protocol=self)

    def connection_lost(self, exc: Exception | None) -> None:
        """Called when the connection closes: cancel handlers still running, wake writers."""
        if self._closed and self._flow is None:
            return
        self._closed = True
        self._state.forget(self)
        if self._flow is not None:
            self._flow.release()
        for task in self.pending_tasks():
            task.cancel()
        signal = self._state.lost_signal
        if signal is not None and signal.listeners:
            signal.dispatch(protocol=self)

    def pause_writing(self) -> None:
        """Called when the transport's buffer goes over the high-water mark."""
        assert self._flow is not None and self.transport is not None
        self._flow.pause_writing()
        self._write_deadline = self._state.deadline(self._settings.write_timeout)
        self._write_buffered = self.transport.get_write_buffer_size()

    def resume_writing(self) -> None:
        """Called when the transport's buffer drains below the low-water mark."""
        assert self._flow is not None
        self._flow.resume_writing()

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
        self._closed = True
        self.stop_reading_requests()
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

    def _linger(self, data: bytes) -> None:
        """Send a last response and close, letting the client read it before the socket goes."""
        transport = self.transport
        if self._closed or transport is None:
            return
        transport.write(data)
        if transport.can_write_eof():
            # Lingering close: stop writing, drop whatever still arrives, close on EOF or soon.
            try:
                transport.write_eof()
            except OSError:  # the client is gone already (ENOTCONN): nobody to linger for
                self._close()
                return
            self._deadline = self._state.clock + LINGER_SECONDS
        else:
            self._close()

    def _close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def check_deadlines(self, now: float) -> None:
        """Close this connection if a read or write deadline has passed (called by the
        server's timer)."""
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
        if deadline and now >= deadline:
            self.read_deadline_passed(now)

    def abort(self) -> None:
        """Close at once, cancelling any handler still running."""
        if self.transport is not None and not self._closed:
            self.transport.abort()
