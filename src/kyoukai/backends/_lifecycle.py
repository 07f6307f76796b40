"""The application side of a server that is not Kyoukai's own: start once, bound bodies, stop.

An ASGI server (through its lifespan) and a WSGI host (on its own loop) both need the same
three things before the first request: the application, the base Asphalt context its request
contexts are children of, and an :class:`~kyoukai.backends._exchange.Exchange` to call it
with. :class:`Lifecycle` makes them once, either from an application object (the base context
is the one given, or a fresh one the lifecycle owns) or from an Asphalt configuration (its
components are started, and stopped at the end, by :class:`kyoukai._deploy.ConfiguredApp`).
:class:`RequestBody` collects a request body under the same limits as the built-in server.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from asphalt.core import Context
from werkzeug.wrappers import Response

from kyoukai.backends._decode import ContentDecoder
from kyoukai.backends._exchange import Exchange
from kyoukai.backends._settings import ProtocolError, ServerSettings

if TYPE_CHECKING:
    from kyoukai._deploy import ConfigSource, ConfiguredApp
    from kyoukai.app import Kyoukai

#: How an adapter sends a response: ``await respond(token, response)``, with the token it gave
#: :meth:`Exchange.serve <kyoukai.backends._exchange.Exchange.serve>`.
Respond = Callable[[Any, Response], Awaitable[None]]


def _pair(token: Any, response: Response) -> tuple[Any, Response]:
    return token, response


__all__ = [
    "APPLICATION_SETTINGS",
    "Lifecycle",
    "RequestBody",
    "application_settings",
    "body_decoder",
]

logger = logging.getLogger("kyoukai")

#: The settings that still mean something behind another server: the body limits and the
#: handler timeout. Connection limits, timeouts and protocols are that server's.
APPLICATION_SETTINGS = ("max_body_size", "max_content_codings", "handler_timeout")


def application_settings(options: dict[str, Any]) -> ServerSettings:
    """Settings from keyword options, refusing those that belong to the hosting server.

    :raises TypeError: If an option is not one of :data:`APPLICATION_SETTINGS`.
    """
    unknown = sorted(set(options) - set(APPLICATION_SETTINGS))
    if unknown:
        raise TypeError(
            f"unknown option(s) {', '.join(map(repr, unknown))}: behind another server only "
            f"{', '.join(APPLICATION_SETTINGS)} apply; set connection limits and timeouts "
            "on that server"
        )
    return ServerSettings(**options)


class Lifecycle:
    """Starts an application for another server, once, and stops it.

    :param app: The application, or ``None`` when ``configured`` provides it.
    :param base_context: The parent of every request context; if omitted, a fresh context
        is made at start-up and closed at shutdown.
    :param settings: The body limits and handler timeout.
    :param respond: How the adapter sends each response.
    :param configured: An application from an Asphalt configuration, started at start-up.
    """

    def __init__(
        self,
        app: Kyoukai | None,
        base_context: Context | None,
        settings: ServerSettings,
        respond: Respond,
        configured: ConfiguredApp | None = None,
    ) -> None:
        self._app = app
        self._respond = respond
        self._given_context = base_context
        self._configured = configured
        #: The body limits and handler timeout.
        self.settings = settings
        #: The parent of every request context, once started.
        self.base_context: Context | None = None
        #: How requests reach the application, once started.
        self.exchange: Exchange | None = None
        self._owned: Context | None = None
        self._starting: asyncio.Task[Exchange] | None = None
        # The options given for a configured application, which override its component's.
        self._options: dict[str, Any] = {}

    @classmethod
    def from_config(
        cls, sources: tuple[ConfigSource, ...], options: dict[str, Any], respond: Respond
    ) -> Lifecycle:
        """A lifecycle for the application an Asphalt configuration describes.

        :param sources: YAML files or mappings, as :class:`~kyoukai._deploy.ConfiguredApp`
            takes them.
        :param options: Application settings (:data:`APPLICATION_SETTINGS`).
        :param respond: As for the constructor.
        """
        # Deployment sits above the backends; only this constructor reaches up to it.
        from kyoukai._deploy import ConfiguredApp

        lifecycle = cls(None, None, application_settings(options), respond, ConfiguredApp(*sources))
        lifecycle._options = options
        return lifecycle

    @property
    def app(self) -> Kyoukai | None:
        """The application (``None`` until a configured one has started)."""
        return self._app

    async def start(self) -> Exchange:
        """Start the application once; concurrent callers wait for the same start."""
        if self.exchange is not None:
            return self.exchange
        if self._starting is None:
            self._starting = asyncio.ensure_future(self._start())
        try:
            return await asyncio.shield(self._starting)
        except BaseException:
            if self._starting.done():
                self._starting = None  # a failed start may be tried again
            raise

    async def _start(self) -> Exchange:
        if self._configured is not None:
            self._app = await self._configured.start()
            context = self._configured.context
            found = _component_settings(self._configured.component, self._app)
            if found is not None:
                chosen = {name: getattr(found, name) for name in APPLICATION_SETTINGS}
                self.settings = ServerSettings(**{**chosen, **self._options})
        else:
            context = self._given_context
            if context is None:
                context = self._owned = Context()
        app = self._app
        assert app is not None
        if not app.root.finalized:
            app.finalize()
        # The hosting server's address is not known here: warn as for every interface.
        app.warn_debug("")
        self.base_context = context
        respond = self._respond
        self.exchange = Exchange(
            app,
            context,
            self.settings.handler_timeout,
            deliver=_pair,
            finish=lambda rest: respond(*rest),
        )
        return self.exchange

    async def stop(self) -> None:
        """Tear down what :meth:`start` started (the components, or the owned context)."""
        self.exchange = None
        self._starting = None
        self.base_context = None
        if self._configured is not None:
            await self._configured.stop()
        owned, self._owned = self._owned, None
        if owned is not None:
            await owned.close()


def _component_settings(root: Any, app: Kyoukai) -> ServerSettings | None:
    """The settings of the component that serves ``app`` in the tree under ``root``, so that
    a configuration's ``max_body_size`` (say) holds behind another server too."""
    stack = [root]
    while stack:
        component = stack.pop()
        settings = getattr(component, "settings", None)
        if isinstance(settings, ServerSettings) and getattr(component, "app", None) is app:
            return settings
        stack.extend(getattr(component, "child_components", {}).values())
    return None


def body_decoder(environ: dict[str, Any], settings: ServerSettings) -> ContentDecoder | None:
    """Check a request's declared body against ``max_body_size``; the decoder of its
    ``Content-Encoding``, if it has one.

    :raises ProtocolError: 413 if the declared length is over the limit, 415 for an unknown
        coding, 400 for a bad ``Content-Length``.
    """
    declared = environ.get("CONTENT_LENGTH")
    if declared:
        if not declared.isdigit() or not declared.isascii():
            raise ProtocolError("malformed request", "invalid Content-Length")
        if int(declared) > settings.max_body_size:
            raise ProtocolError("body too large")
    coding = environ.get("HTTP_CONTENT_ENCODING")
    if coding is not None:
        decoder = ContentDecoder(coding, settings.max_body_size, settings.max_content_codings)
        if decoder.active:
            return decoder
    return None


class RequestBody:
    """A request body collected piece by piece, within ``max_body_size`` (on the wire and
    decoded) and decoded from its ``Content-Encoding``.

    :param environ: The request's environ; a decoded or chunked body gets its real
        ``CONTENT_LENGTH`` in it when finished (and loses ``Transfer-Encoding``).
    :param settings: The limits.
    :raises ProtocolError: 413 if the declared length is over the limit already, 415 for an
        unknown coding, 400 for a bad ``Content-Length``.
    """

    __slots__ = ("_decoder", "_environ", "_limit", "_parts", "_size")

    def __init__(self, environ: dict[str, Any], settings: ServerSettings) -> None:
        self._environ = environ
        self._limit = settings.max_body_size
        self._decoder = body_decoder(environ, settings)
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes) -> None:
        """Add the next piece of the body as received.

        :raises ProtocolError: 413 past the limit, 400 for data that cannot be decoded.
        """
        self._size += len(data)
        if self._size > self._limit:
            raise ProtocolError("body too large")
        self._parts.append(data if self._decoder is None else self._decoder.feed(data))

    def finish(self) -> bytes:
        """The whole body, decoded.

        :raises ProtocolError: 400 for a truncated coded body.
        """
        body = b"".join(self._parts)
        environ = self._environ
        if self._decoder is not None:
            self._decoder.finish()
            del environ["HTTP_CONTENT_ENCODING"]
        elif not body or environ.get("CONTENT_LENGTH"):
            return body
        # Framed by its length now, as the built-in server hands a de-chunked body over:
        # Werkzeug reads nothing of a body still marked chunked.
        environ["CONTENT_LENGTH"] = str(len(body))
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        return body
