"""Listening and stopping: what ``Kyoukai.start()`` and ``Kyoukai.run()`` call.

:func:`start_server` listens on an address (or on sockets a process manager bound) with a
protocol factory, HTTP/1.1's by default, and returns a :class:`KyoukaiServer` handle;
:func:`run_server` runs one until SIGINT or SIGTERM. What the connections of a server share
is :class:`~kyoukai.backends._state.ServerState`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import logging
import os
import signal
import socket
import ssl as ssl_module
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from asphalt.core import Context

from kyoukai.backends._settings import ServerSettings
from kyoukai.backends._state import ServerState
from kyoukai.backends.httptools_ import KyoukaiProtocol

if TYPE_CHECKING:
    from kyoukai.app import Kyoukai

__all__ = [
    "KyoukaiServer",
    "ProtocolFactory",
    "listen_error",
    "loop_factory",
    "run_server",
    "serve_until_signal",
    "start_server",
]

logger = logging.getLogger("kyoukai")


class _Holder:
    """Stands in for the Asphalt component when a server is started without one."""

    __slots__ = ("app", "settings", "ssl_context")

    def __init__(
        self, app: Kyoukai, settings: ServerSettings, ssl_context: ssl_module.SSLContext | None
    ) -> None:
        self.app = app
        self.settings = settings
        self.ssl_context = ssl_context


class KyoukaiServer:
    """A running built-in server, as returned by ``await app.start(...)``.

    :param servers: The listening asyncio servers (one per socket it serves).
    :param state: The state its connections share.
    :param uds: The Unix socket it listens on, if any: the file is removed when it stops.
    """

    def __init__(
        self, servers: list[asyncio.Server], state: ServerState, uds: _UnixSocket | None = None
    ) -> None:
        self._servers = servers
        self._state = state
        #: The path of the Unix socket the server listens on, or ``None``.
        self.uds = uds.path if uds is not None else None
        self._uds = uds
        self._stopped = asyncio.Event()
        self._stopping = False
        sockets = self.sockets
        name = sockets[0].getsockname() if sockets else None
        self._port: int = name[1] if isinstance(name, tuple) else 0

    @property
    def sockets(self) -> tuple[Any, ...]:
        """The listening sockets."""
        return tuple(sock for server in self._servers for sock in server.sockets)

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
            for server in self._servers:
                server.close()
            if grace is None:
                grace = self._state.settings.shutdown_timeout
            await self._state.shutdown(grace)
            for server in self._servers:
                await server.wait_closed()
        finally:
            if self._uds is not None:
                self._uds.remove()
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
        """Wait until ``stop()`` has finished."""
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


class _UnixSocket:
    """The file of a Unix socket the server bound; removed at the end only if it is still
    the one bound (a newer server may have replaced it)."""

    __slots__ = ("inode", "path")

    def __init__(self, path: str, mode: int | None) -> None:
        self.path = path
        if mode is not None:
            os.chmod(path, mode)
        self.inode = os.stat(path).st_ino

    def remove(self) -> None:
        try:
            if os.stat(self.path).st_ino == self.inode:
                os.unlink(self.path)
        except FileNotFoundError:
            pass


#: How a server builds the protocol of each new connection: ``factory(component,
#: parent_context, server_ip, server_port, state=state)``, as :class:`KyoukaiProtocol` takes.
ProtocolFactory = Callable[..., asyncio.Protocol]


async def start_server(
    app: Kyoukai,
    ip: str = "127.0.0.1",
    port: int = 4444,
    *,
    component: Any = None,
    base_context: Context | None = None,
    ssl: ssl_module.SSLContext | None = None,
    sockets: Iterable[socket.socket] | None = None,
    uds: str | os.PathLike[str] | None = None,
    uds_mode: int | None = None,
    protocol_factory: ProtocolFactory | None = None,
    http2: bool | None = None,
    **server_options: Any,
) -> KyoukaiServer:
    """Listen on ``ip:port`` (or on ``sockets``, or a Unix socket) with the built-in server, in
    the running loop.

    :param app: The application; it is finalized here.
    :param ip: The address to listen on.
    :param port: The port to listen on; ``0`` picks a free one (see :attr:`KyoukaiServer.port`).
    :param component: An object with ``app`` and ``settings`` (the Asphalt component); its
        settings are the defaults for ``server_options``.
    :param base_context: The parent of every request context; a fresh context if omitted.
    :param ssl: A server-side TLS context, to serve HTTPS (the component's ``ssl_context``
        if omitted).
    :param sockets: Sockets already bound and listening (a process manager's, such as
        gunicorn's), served instead of opening ``ip:port``.
    :param uds: The path of a Unix socket to listen on instead of ``ip:port`` (a reverse
        proxy's upstream); a stale socket file there is replaced, and the file is removed
        when the server stops.
    :param uds_mode: The permissions of the socket file (such as ``0o660``); the umask's
        if omitted.
    :param protocol_factory: What builds each connection's protocol (by default HTTP/1.1,
        or HTTP/1.1 and HTTP/2 with ``http2``).
    :param http2: Serve HTTP/2 on the same port too: ALPN ``h2`` over TLS (offered on
        ``ssl``), prior knowledge and ``Upgrade: h2c`` on cleartext. Defaults to the
        component's ``http2``.
    :param server_options: Any :class:`~kyoukai.backends._settings.ServerSettings` field.
    :raises TypeError: For an option that is not a setting.
    :return: The running server; ``await server.stop()`` shuts it down.
    """
    settings = _resolve_settings(component, server_options)
    if ssl is None and component is not None:
        ssl = getattr(component, "ssl_context", None)
    if http2 is None:
        http2 = bool(getattr(component, "http2", False))
    if protocol_factory is None:
        protocol_factory = KyoukaiProtocol
        if http2:
            from kyoukai.backends._select import ALPN_PROTOCOLS, SelectingProtocol

            protocol_factory = SelectingProtocol
            if ssl is not None:
                ssl.set_alpn_protocols(ALPN_PROTOCOLS)
    app.finalize()
    if base_context is None:
        base_context = Context()
    holder = component if component is not None else _Holder(app, settings, ssl)
    scheme = "https" if ssl is not None else "http"
    state = ServerState(app, settings, base_context, url_scheme=scheme)

    def factory() -> asyncio.Protocol:
        return protocol_factory(holder, base_context, ip, port, state=state)

    loop = asyncio.get_running_loop()
    options: dict[str, Any] = {
        "ssl": ssl,
        "backlog": settings.backlog,
        "ssl_handshake_timeout": settings.tls_handshake_timeout if ssl is not None else None,
    }
    unix_socket = None
    if uds is not None:
        path = os.fspath(uds)
        servers = [await loop.create_unix_server(factory, path, **options)]
        try:
            unix_socket = _UnixSocket(path, uds_mode)
        except OSError:
            servers[0].close()
            raise
    elif sockets is None:
        servers = [await loop.create_server(factory, ip, port, reuse_address=True, **options)]
    else:
        servers = [await loop.create_server(factory, sock=sock, **options) for sock in sockets]
    handle = KyoukaiServer(servers, state, unix_socket)
    if uds is not None:
        logger.info("Kyoukai serving %s on %s://unix:%s", app.name, scheme, handle.uds)
    else:
        logger.info("Kyoukai serving %s on %s://%s:%d", app.name, scheme, ip, handle.port)
    return handle


def run_server(
    app: Kyoukai,
    ip: str = "127.0.0.1",
    port: int = 4444,
    *,
    component: Any = None,
    use_uvloop: bool = True,
    uds: str | os.PathLike[str] | None = None,
    uds_mode: int | None = None,
    **server_options: Any,
) -> None:
    """Serve ``app`` until SIGINT or SIGTERM, then shut down gracefully. Blocks.

    Runs its own event loop: uvloop's when it is installed (unless ``use_uvloop=False``),
    asyncio's otherwise. Unless the application configured logging, the address served and
    the access log go to stderr at INFO. An address that cannot be served ends the program
    with one line that says why.

    :param app: The application.
    :param ip: The address to listen on.
    :param port: The port to listen on.
    :param component: An object with ``app`` and ``settings`` (the Asphalt component).
    :param use_uvloop: Whether to use uvloop when it is installed.
    :param uds: A Unix socket to listen on instead of ``ip:port`` (see :func:`start_server`).
    :param uds_mode: The permissions of the socket file.
    :param server_options: ``ssl``, ``http2`` and any
        :class:`~kyoukai.backends._settings.ServerSettings` field.
    :raises TypeError: For an option that is not a setting (before anything starts).
    :raises SystemExit: If the address cannot be served (in use, no permission).
    """
    options = dict(server_options)
    tls = options.pop("ssl", None)
    http2 = options.pop("http2", None)
    _resolve_settings(component, options)
    if uds is not None:
        options.update(uds=uds, uds_mode=uds_mode)
    handler = _log_to_console()
    try:
        with asyncio.Runner(loop_factory=loop_factory(use_uvloop)) as runner:
            runner.run(_serve_until_signal(app, ip, port, component, tls, http2, options))
    finally:
        if handler is not None:
            logger.removeHandler(handler)
            logger.setLevel(logging.NOTSET)


def loop_factory(use_uvloop: bool = True) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop factory when it is wanted and installed; ``None`` (asyncio's) otherwise."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError:
            return None
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
        return factory
    return None


def _log_to_console() -> logging.Handler | None:
    """Log Kyoukai's INFO lines (the address, the access log) to stderr, as ``flask run`` and
    uvicorn do, unless the application configured logging itself."""
    if logging.getLogger().handlers or logger.handlers or logger.level != logging.NOTSET:
        return None
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return handler


def listen_error(where: str, exc: OSError) -> SystemExit:
    """One line that says why the address cannot be served, instead of a traceback."""
    reason = {
        errno.EADDRINUSE: "the address is already in use; stop what uses it or pick another port",
        errno.EACCES: "permission denied; ports below 1024 need privileges, pick another port",
        errno.EADDRNOTAVAIL: "the address is not one of this machine's; pick another ip",
    }.get(exc.errno or 0, exc.strerror or str(exc))
    if where.startswith("unix:") and exc.errno in (errno.EACCES, errno.ENOENT):
        reason = "no such directory, or no permission to create the socket there; pick another path"
    return SystemExit(f"Kyoukai cannot listen on {where}: {reason}")


async def _serve_until_signal(
    app: Kyoukai,
    ip: str,
    port: int,
    component: Any,
    tls: ssl_module.SSLContext | None,
    http2: bool | None,
    options: dict[str, Any],
) -> None:
    try:
        server = await start_server(
            app, ip, port, component=component, ssl=tls, http2=http2, **options
        )
    except OSError as exc:
        where = f"unix:{os.fspath(options['uds'])}" if "uds" in options else f"{ip}:{port}"
        raise listen_error(where, exc) from None
    await serve_until_signal(server)


async def serve_until_signal(server: KyoukaiServer) -> None:
    """Serve until SIGINT or SIGTERM, then stop ``server`` gracefully."""
    logger.info("Press Ctrl+C to quit")
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
