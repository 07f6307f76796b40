"""Asphalt integration: the request context and the events Kyoukai dispatches.

Every request runs in an :class:`HTTPRequestContext`, a child of the context the server (or
the Asphalt component) was started with, so resources published by other components are
reachable from handlers, and resources added during a request are torn down when it ends.

:class:`KyoukaiComponent` runs an application as an Asphalt component, configured from
``asphalt run config.yml``; ``docs/asphalt.md`` lists its configuration keys.
"""

from __future__ import annotations

import contextvars
import logging
import os
import ssl
import sys
from collections.abc import AsyncGenerator, Mapping
from contextvars import Token
from difflib import get_close_matches
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING, Any

from asphalt.core import Component, Context, Event, context_teardown

# Asphalt 4 tracks the current context in this variable (``current_context()`` reads it).
# Setting it directly costs a fraction of ``async with ctx`` on every request.
from asphalt.core.context import ContextState, _current_context
from werkzeug.wrappers import Request, Response

if TYPE_CHECKING:
    import asyncio

    from werkzeug.routing import Rule

    from kyoukai.app import Kyoukai
    from kyoukai.blueprint import Blueprint
    from kyoukai.route import Route

__all__ = [
    "ConnectionLostEvent",
    "ConnectionMadeEvent",
    "CtxEvent",
    "HTTPRequestContext",
    "KyoukaiBaseComponent",
    "KyoukaiComponent",
    "RouteInvokedEvent",
    "RouteMatchedEvent",
    "RouteReturnedEvent",
]

# Enum members looked up once: reading them off the class costs more than the rest of
# setting up a request context.
_OPEN, _CLOSED = ContextState.open, ContextState.closed

#: The environ key under which a server backend puts its protocol object.
PROTOCOL_ENVIRON_KEY = "kyoukai.protocol"


class HTTPRequestContext(Context):
    """The context every handler, hook and error handler receives as ``ctx``.

    It is an Asphalt :class:`~asphalt.core.Context` whose parent is the server's base
    context: ``ctx.require_resource(...)`` finds resources published there, and resources
    or teardown callbacks added to ``ctx`` live only as long as the request.

    :param parent: The parent context (the component's or server's base context).
    :param request: The request being handled.
    """

    #: The :class:`~kyoukai.app.Kyoukai` application handling the request.
    app: Kyoukai | None = None
    #: The matched :class:`~kyoukai.route.Route`, or ``None`` if nothing matched.
    route: Route | None = None
    #: The blueprint of the matched route.
    bp: Blueprint | None = None
    #: The matched Werkzeug :class:`~werkzeug.routing.Rule`.
    rule: Rule | None = None
    #: The exception that escaped the handler or a hook, if any (the response is then an
    #: error response); teardown callbacks see it.
    exception: BaseException | None = None

    def __init__(self, parent: Context | None, request: Request) -> None:
        if _LEAN_CONTEXTS:
            # Exactly what Context.__init__ sets (checked below, at import), without its
            # current-context lookup: this runs for every request.
            self._parent = parent
            self._state = _OPEN
            self._resources = {}
            self._resource_factories = {}
            self._resource_factories_by_context_attr = {}
            self._teardown_callbacks = []
        else:
            # Asphalt 4.12 deprecates Context(parent); build a parentless context, link it.
            super().__init__()
            self._parent = parent
        environ = request.environ
        #: The request being handled.
        self.request = request
        #: The path parameters the route matched with (also set for error handlers).
        self.params: Mapping[str, Any] = {}
        #: The WSGI environ of the request.
        self.environ: dict[str, Any] = environ
        #: The protocol object of the connection (``None`` under the test client).
        self.proto: Any = environ.get(PROTOCOL_ENVIRON_KEY)

    def activate(self) -> Token[Context | None]:
        """Make this the current context (for ``asphalt.core.current_context()``)."""
        return _current_context.set(self)

    def deactivate(self, token: Token[Context | None]) -> bool:
        """Undo :meth:`activate`; close the context at once if nothing needs tearing down.

        :return: ``True`` when teardown callbacks wait: the caller then awaits :meth:`close`,
            passing :attr:`exception`, so a per-request database session rolls back instead
            of committing a failed request.
        """
        _current_context.reset(token)
        if self._teardown_callbacks:
            return True
        self._state = _CLOSED
        return False

    def url_for(self, endpoint: str, *, method: str | None = None, **kwargs: Any) -> str:
        """Build the URL of ``endpoint`` for this request's host and scheme.

        See :meth:`kyoukai.blueprint.Blueprint.url_for`; ``force_external=True`` gives an
        absolute URL.
        """
        if self.app is None:
            raise RuntimeError("this context is not attached to an application")
        return self.app.url_for(self.environ, endpoint, method=method, **kwargs)


def _lean_contexts_match() -> bool:
    """Whether a new Asphalt context holds exactly what HTTPRequestContext sets directly."""
    blank = contextvars.Context().run(Context)  # no current context: no parent
    return vars(blank) == {
        "_parent": None,
        "_state": ContextState.open,
        "_resources": {},
        "_resource_factories": {},
        "_resource_factories_by_context_attr": {},
        "_teardown_callbacks": [],
    }


_LEAN_CONTEXTS = _lean_contexts_match()


class ConnectionMadeEvent(Event):
    """Dispatched on :attr:`Kyoukai.connection_made` when a client connects to the server.

    Not dispatched by WSGI/ASGI adapters, which do not see connections.

    :ivar protocol: The protocol object of the new connection.
    """

    __slots__ = ("protocol",)

    def __init__(self, source: Any, topic: str, *, protocol: Any) -> None:
        super().__init__(source, topic)
        self.protocol = protocol


class ConnectionLostEvent(ConnectionMadeEvent):
    """Dispatched on :attr:`Kyoukai.connection_lost` when a connection closes.

    :ivar protocol: The protocol object of the closed connection.
    """

    __slots__ = ()


class CtxEvent(Event):
    """Base class of the per-request events.

    :ivar ctx: The :class:`HTTPRequestContext` of the request.
    """

    __slots__ = ("ctx",)

    def __init__(self, source: Any, topic: str, *, ctx: HTTPRequestContext) -> None:
        super().__init__(source, topic)
        self.ctx = ctx


class RouteMatchedEvent(CtxEvent):
    """Dispatched on :attr:`Kyoukai.route_matched` when a request matched a route
    (``ctx.route``, ``ctx.params`` are set)."""

    __slots__ = ()


class RouteInvokedEvent(CtxEvent):
    """Dispatched on :attr:`Kyoukai.route_invoked` just before the route runs."""

    __slots__ = ()


class RouteReturnedEvent(CtxEvent):
    """Dispatched on :attr:`Kyoukai.route_returned` after the route returned its response.

    :ivar result: The response the route returned.
    """

    __slots__ = ("result",)

    def __init__(
        self, source: Any, topic: str, *, ctx: HTTPRequestContext, result: Response
    ) -> None:
        super().__init__(source, topic, ctx=ctx)
        self.result = result


# -- components ---------------------------------------------------------------------------------

logger = logging.getLogger("kyoukai.asphalt")

#: Configuration keys of :class:`KyoukaiComponent` that are not server settings.
COMPONENT_KEYS = ("resource_name", "access_log", "run_server", "ssl", "http2")
#: Keys of the ``ssl`` section.
SSL_KEYS = ("enabled", "ssl_certfile", "ssl_keyfile")


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
        logging each request; subclasses define the other keys.
    :raises TypeError: If ``app`` is not (or does not refer to) a Kyoukai application.
    :raises LookupError: If the reference cannot be imported.
    """

    #: The module of the server backend, for components that run a server.
    backend: str | None = None

    def __init__(
        self, app: Kyoukai | str, ip: str = "127.0.0.1", port: int = 4444, **cfg: Any
    ) -> None:
        _check_address(ip, port)
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
        self.access_log = _get_bool(cfg, "access_log", default=True)
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
        from kyoukai.app import Kyoukai

        self.base_context = ctx
        if not self.app.root.finalized:
            self.app.finalize()
        types: list[type] = [Kyoukai] if type(self.app) is Kyoukai else [Kyoukai, type(self.app)]
        ctx.add_resource(self.app, self.resource_name, types=types)
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
        from kyoukai import __version__

        return f"Kyoukai/{__version__}"

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
    """Serves a Kyoukai application with the built-in HTTP/1.1 server.

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
        ``http2``, ``resource_name``, ``access_log``, and any server setting of
        :class:`~kyoukai.backends._settings.ServerSettings` (limits and timeouts).
    :raises TypeError: If a key is unknown or a value has the wrong type.
    :raises ValueError: If a value is out of range or the combination is not supported.
    """

    backend = "kyoukai.backends.httptools_"

    def __init__(
        self, app: Kyoukai | str, ip: str = "127.0.0.1", port: int = 4444, **cfg: Any
    ) -> None:
        from kyoukai.backends._settings import ServerSettings

        setting_names = ServerSettings.field_names()
        _check_keys(cfg, [*COMPONENT_KEYS, *setting_names], "configuration key")
        super().__init__(app, ip, port, **cfg)
        #: Whether :meth:`start` starts the built-in server.
        self.run_server = _get_bool(cfg, "run_server", default=True)
        if _get_bool(cfg, "http2", default=False):
            raise ValueError(
                "http2: HTTP/2 is not available in this version of Kyoukai; "
                "remove the key or set it to false to serve HTTP/1.1"
            )
        #: The TLS context of the server, or ``None`` for plain HTTP.
        self.ssl_context = build_ssl_context(cfg.get("ssl"))
        try:
            #: The limits and timeouts of the server.
            self.settings = ServerSettings(**{k: cfg[k] for k in setting_names if k in cfg})
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"invalid Kyoukai configuration: {exc}") from None

    @context_teardown
    async def start(self, ctx: Context) -> AsyncGenerator[None, BaseException | None]:
        """Publish the application and, unless ``run_server`` is false, serve it.

        :param ctx: The context the component starts in; requests run in its children.
        """
        await super().start(ctx)
        if not self.run_server:
            logger.info("Not serving %r: run_server is false", self.app)
            return

        from kyoukai.backends.httptools_ import start_server

        try:
            self.server = await start_server(
                self.app, self.ip, self.port, component=self, base_context=ctx, ssl=self.ssl_context
            )
        except OSError as exc:
            raise OSError(
                exc.errno,
                f"cannot listen on {self.ip}:{self.port} ({exc.strerror or exc}); "
                "stop what uses that address or configure another ip or port",
            ) from exc
        yield
        # Teardown: stop accepting, let in-flight requests finish (shutdown_timeout), close.
        server, self.server = self.server, None
        await server.stop()

    def get_protocol(self, ctx: Context, serv_info: tuple[str, int]) -> asyncio.Protocol:
        """Build the HTTP/1.1 protocol object for one new connection.

        :param ctx: The base context of the requests on the connection.
        :param serv_info: The address and port the server listens on.
        """
        from kyoukai.backends.httptools_ import KyoukaiProtocol

        return KyoukaiProtocol(self, ctx, *serv_info)


def build_ssl_context(config: Mapping[str, Any] | ssl.SSLContext | None) -> ssl.SSLContext | None:
    """Build the server's TLS context from the ``ssl`` configuration section.

    The context has the standard library's secure server defaults and accepts TLS 1.2 or
    newer. A section without ``enabled`` counts as enabled; ``enabled: false`` keeps the
    server on plain HTTP without reading the files.

    :param config: The section (``enabled``, ``ssl_certfile``, ``ssl_keyfile``), a ready
        :class:`ssl.SSLContext` (returned as is), or ``None`` for plain HTTP.
    :raises TypeError: If the section has an unknown key or a value of the wrong type.
    :raises ValueError: If the certificate is missing or does not load.
    """
    if config is None or isinstance(config, ssl.SSLContext):
        return config
    if not isinstance(config, Mapping):
        raise TypeError(
            f"ssl must be a mapping with enabled, ssl_certfile and ssl_keyfile, not {config!r}"
        )
    _check_keys(config, SSL_KEYS, "key in the ssl section")
    if not _get_bool(config, "enabled", default=True, prefix="ssl."):
        return None
    certfile = config.get("ssl_certfile")
    keyfile = config.get("ssl_keyfile")
    if not isinstance(certfile, str) or not certfile:
        raise ValueError(
            "ssl.ssl_certfile: the path of the certificate (PEM) is required when ssl is enabled"
        )
    if keyfile is not None and not isinstance(keyfile, str):
        raise TypeError(f"ssl.ssl_keyfile must be the path of the private key, not {keyfile!r}")
    for key, path in (("ssl_certfile", certfile), ("ssl_keyfile", keyfile)):
        if path is not None and not os.path.isfile(path):
            raise ValueError(f"ssl.{key}: no such file: {os.path.abspath(path)!r}")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(certfile, keyfile)
    except ssl.SSLError as exc:
        raise ValueError(
            f"ssl: cannot load the certificate {certfile!r} with the key {keyfile!r}: {exc}"
        ) from None
    return context


def resolve_app(app: object) -> Kyoukai:
    """Return the application ``app`` is, or refers to as ``"module:attribute"``.

    A module that is not importable is also looked for in the working directory: ``asphalt
    run`` does not put it on :data:`sys.path` (``python -m asphalt run`` does), and the
    configuration ``app: app:kyk`` names a module next to ``config.yml``.

    :raises TypeError: If the object is not a :class:`~kyoukai.app.Kyoukai` application.
    :raises ValueError: If the string is not a ``"module:attribute"`` reference.
    :raises LookupError: If the module or the attribute does not exist.
    """
    from kyoukai.app import Kyoukai

    target = _import_reference(app) if isinstance(app, str) else app
    if not isinstance(target, Kyoukai):
        raise TypeError(
            f"app: {app!r} is {target!r}, not a Kyoukai application; pass the application "
            "or a 'module:attribute' reference to it"
        )
    return target


def _import_reference(ref: str) -> Any:
    module_name, _, attribute = ref.partition(":")
    if not module_name or not attribute:
        raise ValueError(
            f"app: {ref!r} is not a 'module:attribute' reference such as 'myproject.web:app'"
        )
    target: Any = _import_module(module_name, ref)
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise LookupError(
                f"app: cannot resolve {ref!r}: {target!r} has no attribute {part!r}"
            ) from None
    return target


def _import_module(name: str, ref: str) -> ModuleType:
    top = name.partition(".")[0]
    try:
        return import_module(name)
    except ModuleNotFoundError as exc:
        # Only a missing top-level module of the reference itself is worth a second look; a
        # dependency missing inside the application is the user's error to see as it is.
        if exc.name != top and exc.name != name:
            raise
        cwd = os.getcwd()
        if any(os.path.abspath(entry or os.curdir) == cwd for entry in sys.path):
            raise LookupError(
                f"app: cannot import {name!r} for {ref!r}; run from the directory that holds "
                "it or add that directory to PYTHONPATH"
            ) from None
    sys.path.insert(0, cwd)
    try:
        return import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != top and exc.name != name:
            raise
        sys.path.remove(cwd)
        raise LookupError(
            f"app: cannot import {name!r} for {ref!r}, not even from {cwd!r}; run from the "
            "directory that holds it or add that directory to PYTHONPATH"
        ) from None


def _check_keys(config: Mapping[str, Any], valid: list[str] | tuple[str, ...], what: str) -> None:
    """Raise :exc:`TypeError` naming the first unknown key, with the closest valid one."""
    for key in config:
        if key not in valid:
            close = get_close_matches(str(key), valid, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(
                f"unknown Kyoukai {what} {key!r}{hint}; valid keys are: {', '.join(valid)}"
            )


def _check_address(ip: object, port: object) -> None:
    # The values come from YAML or --set, so their types are not to be trusted.
    if not isinstance(ip, str) or not ip:
        raise TypeError(f"ip must be an address string such as '127.0.0.1', not {ip!r}")
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ValueError(f"port must be an integer from 0 to 65535, not {port!r}")


def _get_bool(config: Mapping[str, Any], key: str, *, default: bool, prefix: str = "") -> bool:
    value = config.get(key, default)
    if not isinstance(value, bool):
        raise TypeError(f"{prefix}{key} must be true or false, not {value!r}")
    return value
