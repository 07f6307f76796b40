"""Listening, timers and shutdown for the built-in HTTP/1.1 server.

:class:`ServerState` is what every connection of one server shares: the settings, the set of
open connections, a coarse clock and the cached ``Date`` line, both refreshed by one timer per
server (rather than one timer per connection and request). :func:`start_server` and
:func:`run_server` are what ``Kyoukai.start()`` and ``Kyoukai.run()`` call.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
import ssl as ssl_module
import sys
import time
import weakref
from typing import TYPE_CHECKING, Any, Protocol

from asphalt.core import Context

from kyoukai.backends._http1 import http_date_line
from kyoukai.backends._settings import ServerSettings

if TYPE_CHECKING:
    from kyoukai.app import Kyoukai

__all__ = ["KyoukaiServer", "ServerState", "run_server", "start_server"]

logger = logging.getLogger("kyoukai")


class _Connection(Protocol):
    def check_deadlines(self, now: float) -> None: ...
    def shutdown(self) -> None: ...
    def abort(self) -> None: ...
    def pending_tasks(self) -> list[asyncio.Task[None]]: ...


class _Holder:
    """Stands in for the Asphalt component when a server is started without one."""

    __slots__ = ("app", "settings")

    def __init__(self, app: Kyoukai, settings: ServerSettings) -> None:
        self.app = app
        self.settings = settings


class ServerState:
    """What all connections of one server share.

    :param app: The application.
    :param settings: The server's limits and timeouts.
    :param parent_context: The parent of every request context.
    :param url_scheme: ``"https"`` when the server runs TLS.
    """

    def __init__(
        self,
        app: Kyoukai,
        settings: ServerSettings,
        parent_context: Context | None,
        *,
        url_scheme: str = "http",
    ) -> None:
        self.loop = asyncio.get_running_loop()
        #: The application.
        self.app = app
        #: The server's limits and timeouts.
        self.settings = settings
        #: The parent of every request context.
        self.parent_context = parent_context
        #: ``wsgi.url_scheme`` of every request.
        self.url_scheme = url_scheme
        #: ``wsgi.errors`` of every request.
        self.errors_stream = sys.stderr
        #: Open connections.
        self.connections: set[_Connection] = set()
        #: True once a graceful shutdown began: responses close their connection.
        self.closing = False
        #: Loop time, refreshed by the timer; deadlines are set from it.
        self.clock = self.loop.time()
        #: The ``Date`` header line, refreshed once a second.
        self.date_line = http_date_line()
        self._second = int(time.time())
        # Bound signals, looked up once: a connection only checks for listeners.
        self.made_signal: Any = getattr(app, "connection_made", None)
        self.lost_signal: Any = getattr(app, "connection_lost", None)
        self._interval = max(0.01, min(1.0, settings.min_timeout / 4))
        self._timer: asyncio.TimerHandle | None = None
        self._drained: asyncio.Event | None = None

    @classmethod
    def for_component(cls, component: Any, parent_context: Context | None) -> ServerState:
        """The state shared by connections made for ``component`` outside :func:`start_server`."""
        try:
            state = _STATES.get(component)
        except TypeError:
            state = None
        if state is None:
            settings = getattr(component, "settings", None)
            if not isinstance(settings, ServerSettings):
                settings = ServerSettings()
            tls = getattr(component, "ssl_context", None) is not None
            state = cls(
                component.app, settings, parent_context, url_scheme="https" if tls else "http"
            )
            try:
                _STATES[component] = state
            except TypeError:
                pass
        return state

    def ensure_ticking(self) -> None:
        """Start the timer that checks deadlines and refreshes the clock, if not running."""
        if self._timer is None:
            self._timer = self.loop.call_later(self._interval, self._tick)

    def stop_ticking(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self.clock = now = self.loop.time()
        second = int(time.time())
        if second != self._second:
            self._second = second
            self.date_line = http_date_line(second)
        for connection in list(self.connections):
            connection.check_deadlines(now)
        self._timer = self.loop.call_later(self._interval, self._tick)

    def forget(self, connection: _Connection) -> None:
        """Drop a closed connection; the last one to go ends a shutdown's wait."""
        self.connections.discard(connection)
        if not self.connections and self._drained is not None:
            self._drained.set()

    async def shutdown(self, grace: float) -> None:
        """Close idle connections, give busy ones ``grace`` seconds, then close the rest."""
        self.closing = True
        self._drained = drained = asyncio.Event()
        for connection in list(self.connections):
            connection.shutdown()
        if self.connections:
            try:
                async with asyncio.timeout(grace):
                    await drained.wait()
            except TimeoutError:
                logger.warning(
                    "Closing %d connection(s) still busy after %.1f s",
                    len(self.connections),
                    grace,
                )
        tasks = [task for c in self.connections for task in c.pending_tasks()]
        for connection in list(self.connections):
            connection.abort()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        self.stop_ticking()


_STATES: weakref.WeakKeyDictionary[Any, ServerState] = weakref.WeakKeyDictionary()


class KyoukaiServer:
    """A running built-in server, as returned by ``await app.start(...)``.

    :param server: The listening asyncio server.
    :param state: The state its connections share.
    """

    def __init__(self, server: asyncio.Server, state: ServerState) -> None:
        self._server = server
        self._state = state
        self._stopped = asyncio.Event()
        self._stopping = False
        self._port: int = server.sockets[0].getsockname()[1] if server.sockets else 0

    @property
    def sockets(self) -> tuple[Any, ...]:
        """The listening sockets."""
        return tuple(self._server.sockets)

    @property
    def port(self) -> int:
        """The port the server is bound to (useful after listening on port 0)."""
        return self._port

    @property
    def settings(self) -> ServerSettings:
        """The server's limits and timeouts."""
        return self._state.settings

    @property
    def connections(self) -> int:
        """How many connections are open."""
        return len(self._state.connections)

    async def stop(self, grace: float | None = None) -> None:
        """Shut down gracefully.

        Stops accepting, closes idle keep-alive connections, lets in-flight requests finish
        within ``grace`` seconds (default: the ``shutdown_timeout`` setting), then closes the
        remaining connections, cancelling their handlers.

        :param grace: Seconds in-flight requests get to finish.
        """
        if self._stopping:
            await self._stopped.wait()
            return
        self._stopping = True
        try:
            self._server.close()
            if grace is None:
                grace = self._state.settings.shutdown_timeout
            await self._state.shutdown(grace)
            await self._server.wait_closed()
        finally:
            self._stopped.set()
        logger.info("Kyoukai server stopped")

    async def serve_forever(self) -> None:
        """Wait until the server is stopped; if cancelled, stop it gracefully first."""
        try:
            await self._stopped.wait()
        except asyncio.CancelledError:
            await self.stop()
            raise

    async def wait_closed(self) -> None:
        """Wait until :meth:`stop` has finished."""
        await self._stopped.wait()

    async def __aenter__(self) -> KyoukaiServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


def _resolve_settings(component: Any, options: dict[str, Any]) -> ServerSettings:
    base = getattr(component, "settings", None) if component is not None else None
    if isinstance(base, ServerSettings):
        if not options:
            return base
        ServerSettings.from_options(options)  # reject unknown names with the usual message
        return dataclasses.replace(base, **options)
    return ServerSettings.from_options(options)


async def start_server(
    app: Kyoukai,
    ip: str = "127.0.0.1",
    port: int = 4444,
    *,
    component: Any = None,
    base_context: Context | None = None,
    ssl: ssl_module.SSLContext | None = None,
    **server_options: Any,
) -> KyoukaiServer:
    """Listen on ``ip:port`` with the built-in server, inside the running event loop.

    :param app: The application; it is finalized here.
    :param ip: The address to listen on.
    :param port: The port to listen on; ``0`` picks a free one (see :attr:`KyoukaiServer.port`).
    :param component: An object with ``app`` and ``settings`` (the Asphalt component); its
        settings are the defaults for ``server_options``.
    :param base_context: The parent of every request context; a fresh context if omitted.
    :param ssl: A server-side TLS context, to serve HTTPS (the component's ``ssl_context``
        if omitted).
    :param server_options: Any :class:`~kyoukai.backends._settings.ServerSettings` field.
    :raises TypeError: For an option that is not a setting.
    :return: The running server; ``await server.stop()`` shuts it down.
    """
    from kyoukai.backends.httptools_ import KyoukaiProtocol

    settings = _resolve_settings(component, server_options)
    if ssl is None and component is not None:
        ssl = getattr(component, "ssl_context", None)
    app.finalize()
    if base_context is None:
        base_context = Context()
    holder = component if component is not None else _Holder(app, settings)
    scheme = "https" if ssl is not None else "http"
    state = ServerState(app, settings, base_context, url_scheme=scheme)

    def factory() -> KyoukaiProtocol:
        return KyoukaiProtocol(holder, base_context, ip, port, state=state)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        factory,
        ip,
        port,
        ssl=ssl,
        backlog=settings.backlog,
        reuse_address=True,
        ssl_handshake_timeout=settings.tls_handshake_timeout if ssl is not None else None,
    )
    handle = KyoukaiServer(server, state)
    state.ensure_ticking()
    logger.info("Kyoukai serving %s on %s://%s:%d", app.name, scheme, ip, handle.port)
    return handle


def run_server(
    app: Kyoukai,
    ip: str = "127.0.0.1",
    port: int = 4444,
    *,
    component: Any = None,
    use_uvloop: bool = True,
    **server_options: Any,
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM, then shut down gracefully. Blocks.

    Runs its own event loop: uvloop's when it is installed (unless ``use_uvloop=False``),
    asyncio's otherwise.

    :param app: The application.
    :param ip: The address to listen on.
    :param port: The port to listen on.
    :param component: An object with ``app`` and ``settings`` (the Asphalt component).
    :param use_uvloop: Whether to use uvloop when it is installed.
    :param server_options: ``ssl`` and any :class:`~kyoukai.backends._settings.ServerSettings`
        field.
    :raises TypeError: For an option that is not a setting (before anything starts).
    """
    options = dict(server_options)
    tls = options.pop("ssl", None)
    _resolve_settings(component, options)
    loop_factory = None
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            pass
        else:
            loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        runner.run(_serve_until_signal(app, ip, port, component, tls, options))


async def _serve_until_signal(
    app: Kyoukai,
    ip: str,
    port: int,
    component: Any,
    tls: ssl_module.SSLContext | None,
    options: dict[str, Any],
) -> None:
    server = await start_server(app, ip, port, component=component, ssl=tls, **options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop.set)
        except (NotImplementedError, RuntimeError):  # Windows, or not the main thread
            continue
        installed.append(signum)
    try:
        await stop.wait()
        logger.info("Shutting down: finishing in-flight requests")
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
        await server.stop()
