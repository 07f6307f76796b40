"""The Asphalt components that serve a Kyoukai application.

:class:`KyoukaiComponent` runs an application with the built-in server, configured from
``asphalt run config.yml``; ``docs/asphalt.md`` lists its configuration keys. The public path
of these names is :mod:`kyoukai.asphalt`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from contextvars import ContextVar
from typing import Any

from asphalt.core import Component, Context, context_teardown

from kyoukai._config import (
    build_ssl_context,
    check_address,
    check_keys,
    get_bool,
    get_unix_socket,
    resolve_app,
)
from kyoukai._version import SERVER_HEADER
from kyoukai.app import Kyoukai
from kyoukai.backends._select import SelectingProtocol
from kyoukai.backends._server import ProtocolFactory, start_server
from kyoukai.backends._settings import ServerSettings
from kyoukai.backends._state import ServerState
from kyoukai.backends.httptools_ import KyoukaiProtocol

__all__ = ["KyoukaiBaseComponent", "KyoukaiComponent"]

logger = logging.getLogger("kyoukai.asphalt")

#: True while an application is started for a server other than the component's own (an
#: ASGI server, gunicorn, a WSGI host): :class:`KyoukaiComponent` then serves nothing itself.
SERVED_ELSEWHERE: ContextVar[bool] = ContextVar("kyoukai_served_elsewhere", default=False)

#: Configuration keys of :class:`KyoukaiComponent` that are not server settings.
COMPONENT_KEYS = (
    "resource_name",
    "access_log",
    "debug",
    "run_server",
    "ssl",
    "http2",
    "uds",
    "uds_mode",
)


class KyoukaiBaseComponent(Component):
    """The base of every component that serves a Kyoukai application.

    Starting it finalizes the application, publishes it as a resource (as
    :class:`~kyoukai.app.Kyoukai` and as its own class) and keeps the context it was started in
    as the parent of every request context, so handlers reach the resources that other
    components publish there. It starts no server: a subclass does, with its own backend
    (:class:`KyoukaiComponent` runs the built-in one).

    :param app: The application, or a ``"module:attribute"`` reference to it.
    :param ip: The address to listen on.
    :param port: The port to listen on; ``0`` lets the system pick a free one.
    :param cfg: Further configuration. ``resource_name`` (default ``"default"``) names the
        application resource; ``access_log: false`` (default ``true``) stops the application
        logging each request; ``debug: true`` (default ``false``) shows tracebacks of
        unexpected errors, for development only; subclasses define the other keys.
    :raises TypeError: If ``app`` is not (or does not refer to) a Kyoukai application.
    :raises LookupError: If the reference cannot be imported.
    """

    #: The module of the server backend, for components that run a server.
    backend: str | None = None

    def __init__(
        self, app: Kyoukai | str, ip: str = "127.0.0.1", port: int = 4444, **cfg: Any
    ) -> None:
        check_address(ip, port)
        resource_name = cfg.get("resource_name", "default")
        if not isinstance(resource_name, str) or not resource_name.isidentifier():
            raise ValueError(
                f"resource_name must be a name of letters, digits and underscores, "
                f"not {resource_name!r}"
            )
        #: The application this component serves.
        self.app: Kyoukai = resolve_app(app)
        #: The address to listen on.
        self.ip = ip
        #: The port to listen on.
        self.port = port
        #: The configuration beyond ``app``, ``ip`` and ``port``.
        self.cfg = cfg
        #: The name the application is published under.
        self.resource_name: str = resource_name
        #: Whether the application logs each request (``Kyoukai.log_route``).
        self.access_log = get_bool(cfg, "access_log", default=True)
        #: Whether the application answers unexpected errors with their traceback
        #: (:attr:`.Kyoukai.debug`); never on by default.
        self.debug = get_bool(cfg, "debug", default=False)
        #: The running server (its handle), or ``None``.
        self.server: Any = None
        #: The context this component was started in: the parent of every request context.
        self.base_context: Context | None = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.app!r} on {self.ip}:{self.port}>"

    async def start(self, ctx: Context) -> None:
        """Finalize the application and publish it in ``ctx``.

        Subclasses extend this to start their server, with ``ctx`` as the base context.

        :param ctx: The context the component starts in.
        """
        self.base_context = ctx
        if not self.app.root.finalized:
            self.app.finalize()
        types: list[type] = [Kyoukai] if type(self.app) is Kyoukai else [Kyoukai, type(self.app)]
        ctx.add_resource(self.app, self.resource_name, types=types)
        if self.debug:
            self.app.debug = True
            self.app.warn_debug(self.ip)
        if not self.access_log:
            # Per application, where the logging configuration of the ``kyoukai`` logger would
            # silence every application in the process.
            app = self.app
            app.access_log = False

            def restore_access_log() -> None:
                app.access_log = True

            ctx.add_teardown_callback(restore_access_log)

    def get_server_name(self) -> str:
        """The name and version of the server, as in a ``Server`` header."""
        return SERVER_HEADER

    def get_protocol(self, ctx: Context, serv_info: tuple[str, int]) -> asyncio.Protocol:
        """Build the protocol object for one new connection.

        :param ctx: The base context of the requests on the connection.
        :param serv_info: The address and port the server listens on.
        """
        raise NotImplementedError(
            f"{type(self).__name__} runs no server of its own; a component for a server "
            "backend overrides get_protocol()"
        )


class KyoukaiComponent(KyoukaiBaseComponent):
    """Serves a Kyoukai application with the built-in HTTP/1.1 server (and HTTP/2 with
    ``http2: true``, on the same port).

    The server starts on the loop of the context the component starts in and shuts down
    gracefully (in-flight requests may finish) when that context is torn down. Every key of
    ``cfg`` is checked when the component is built, so a typo or a bad value stops the
    application at start-up with a message that names the key.

    :param app: The application, or a ``"module:attribute"`` reference to it.
    :param ip: The address to listen on.
    :param port: The port to listen on; ``0`` lets the system pick a free one.
    :param cfg: ``run_server`` (default ``True``; ``False`` publishes the application
        without serving it, for another server such as an ASGI one), ``ssl`` (a mapping with
        ``enabled``, ``ssl_certfile``, ``ssl_keyfile``, or an :class:`ssl.SSLContext`),
        ``http2`` (default ``False``; ``True`` serves HTTP/2 too: ALPN ``h2`` over TLS, prior
        knowledge and ``Upgrade: h2c`` on cleartext), ``uds`` (the path of a Unix socket to
        listen on instead of ``ip:port``) and ``uds_mode`` (its permissions, such as
        ``0o660``), ``resource_name``, ``access_log``, and any server setting of
        :class:`~kyoukai.backends._settings.ServerSettings` (limits and timeouts).
    :raises TypeError: If a key is unknown or a value has the wrong type.
    :raises ValueError: If a value is out of range or the combination is not supported.
    """

    backend = "kyoukai.backends.httptools_"

    def __init__(
        self, app: Kyoukai | str, ip: str = "127.0.0.1", port: int = 4444, **cfg: Any
    ) -> None:
        setting_names = ServerSettings.field_names()
        check_keys(cfg, ["app", "ip", "port", *COMPONENT_KEYS, *setting_names], "configuration key")
        super().__init__(app, ip, port, **cfg)
        #: Whether :meth:`start` starts the built-in server.
        self.run_server = get_bool(cfg, "run_server", default=True)
        #: Whether the server speaks HTTP/2 as well as HTTP/1.1, on the same port.
        self.http2 = get_bool(cfg, "http2", default=False)
        #: The TLS context of the server, or ``None`` for plain HTTP.
        self.ssl_context = build_ssl_context(cfg.get("ssl"), http2=self.http2)
        #: The Unix socket to listen on instead of ``ip:port``, and its permissions.
        self.uds, self.uds_mode = get_unix_socket(cfg)
        try:
            #: The limits and timeouts of the server.
            self.settings = ServerSettings(**{k: cfg[k] for k in setting_names if k in cfg})
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"invalid Kyoukai configuration: {exc}") from None
        # What the connections of get_protocol() share, made on its first call.
        self._state: ServerState | None = None

    @context_teardown
    async def start(self, ctx: Context) -> AsyncGenerator[None, BaseException | None]:
        """Publish the application and, unless ``run_server`` is false, serve it.

        :param ctx: The context the component starts in; requests run in its children.
        """
        await super().start(ctx)
        if not self.run_server or SERVED_ELSEWHERE.get():
            logger.info("Not serving %r here: another server serves it", self.app)
            return

        try:
            self.server = await start_server(
                self.app,
                self.ip,
                self.port,
                component=self,
                base_context=ctx,
                ssl=self.ssl_context,
                uds=self.uds,
                uds_mode=self.uds_mode,
                protocol_factory=self.protocol_class(),
            )
        except OSError as exc:
            where = f"unix:{self.uds}" if self.uds else f"{self.ip}:{self.port}"
            raise OSError(
                exc.errno,
                f"cannot listen on {where} ({exc.strerror or exc}); "
                "stop what uses that address or configure another ip, port or uds",
            ) from exc
        yield
        # Teardown: stop accepting, let in-flight requests finish (shutdown_timeout), close.
        server, self.server = self.server, None
        await server.stop()

    def protocol_class(self) -> ProtocolFactory:
        """The protocol each connection starts with: HTTP/1.1, or the one that picks HTTP/1.1
        or HTTP/2 when ``http2`` is on."""
        return SelectingProtocol if self.http2 else KyoukaiProtocol

    def get_protocol(self, ctx: Context, serv_info: tuple[str, int]) -> asyncio.Protocol:
        """Build the protocol object for one new connection (see :meth:`protocol_class`).

        :param ctx: The base context of the requests on the connection.
        :param serv_info: The address and port the server listens on.
        """
        if self._state is None:
            scheme = "http" if self.ssl_context is None else "https"
            self._state = ServerState(self.app, self.settings, ctx, url_scheme=scheme)
        return self.protocol_class()(self, ctx, *serv_info, state=self._state)
