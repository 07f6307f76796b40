"""Kyoukai as an ASGI 3 application: ``uvicorn app:kyk``, ``hypercorn app:kyk``, granian.

A :class:`~kyoukai.app.Kyoukai` object is an ASGI application itself (its ``__call__`` hands
each scope to an :class:`ASGIAdapter` made on first use); :meth:`ASGIAdapter.from_asphalt_config`
gives the ASGI application of a whole Asphalt configuration, whose components start and stop
with the server's lifespan.

Strategy, per ``http`` scope: the environ comes from the scope through the one builder
(:func:`kyoukai.wsgi.build_environ`); the body is pulled from ``receive`` by the application
as it reads it (``ReceivedBody``, the same channel API the built-in server feeds), within
``max_body_size`` and the route's limit (413 past them) and decoded from its
``Content-Encoding``; the application is called through
:class:`~kyoukai.backends._exchange.Exchange`; a body in memory goes out in one
message, a streamed one piece by piece with ``more_body``. A
:class:`~kyoukai.backends._asgi_disconnect.DisconnectWatch` waits for ``http.disconnect``:
while the handler runs it cancels the handler (as the built-in server does on connection
loss), while a body streams it stops the stream (its generator is cancelled and closed).

Under ASGI the connection is the server's: its limits, timeouts, protocols (HTTP/2, TLS) and
``Server``/``Date`` headers apply, and no connection events are dispatched. Other scope types
are served by the adapter's method of the same name (``http``, ``lifespan``, ``websocket``).
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote

from asphalt.core import Context
from werkzeug.exceptions import ClientDisconnected

from kyoukai._body import BODY_ENVIRON_KEY, BodyInput
from kyoukai._head import check_header
from kyoukai.backends._asgi_disconnect import DisconnectWatch
from kyoukai.backends._decode import ContentDecoder
from kyoukai.backends._flow import iter_body
from kyoukai.backends._inbound import http_error
from kyoukai.backends._lifecycle import Lifecycle, application_settings, body_decoder
from kyoukai.backends._settings import ProtocolError
from kyoukai.backends._ws_asgi import ASGIChannel
from kyoukai.websocket import WEBSOCKET_ENVIRON_KEY
from kyoukai.wsgi import build_environ, close_iter, response_parts

if TYPE_CHECKING:
    from werkzeug.wrappers import Response

    from kyoukai._deploy import ConfigSource
    from kyoukai.app import Kyoukai

__all__ = ["ASGIAdapter"]

logger = logging.getLogger("kyoukai")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

#: Response headers framing belongs to the ASGI server (RFC 9113 section 8.2.2 forbids them
#: on HTTP/2 outright).
_HOP_BY_HOP = frozenset(("connection", "transfer-encoding", "keep-alive", "upgrade"))
#: Encoded response header pairs seen before (empty: dropped), by ``(name, value)``.
_PAIRS: dict[tuple[str, str], tuple[bytes, bytes] | tuple[()]] = {}
_CACHE_CAP = 2048
_EMPTY_BODY: dict[str, Any] = {"type": "http.response.body", "body": b""}


def _encode_headers(headers: Any) -> list[tuple[bytes, bytes]]:
    """The response headers as ASGI wants them: lower-case latin-1 bytes, checked.

    :raises ValueError: If a header could split the response (:func:`check_header`).
    """
    pairs = _PAIRS
    out: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        pair = pairs.get((name, value))
        if pair is None:
            check_header(name, value)
            lower = name.lower()
            pair = () if lower in _HOP_BY_HOP else (lower.encode(), value.encode("latin-1"))
            if len(pairs) >= _CACHE_CAP:
                pairs.clear()  # per-response values (cookies, ETags) must not grow it
            pairs[(name, value)] = pair
        if pair:
            out.append(pair)
    return out


class ASGIAdapter:
    """Serves a Kyoukai application to an ASGI 3 server.

    The ``lifespan`` scope starts the application (finalizing it, and making its base
    context) and tears it down at shutdown. A server without lifespan support starts it on
    the first request and never tears it down.

    :param app: The application.
    :param base_context: The parent of every request context; if omitted, the adapter makes
        one at start-up and closes it at shutdown.
    :param options: ``max_body_size``, ``max_content_codings`` and ``handler_timeout``, as
        for the built-in server; every other limit is the ASGI server's.
    """

    def __init__(
        self, app: Kyoukai | None, base_context: Context | None = None, **options: Any
    ) -> None:
        settings = application_settings(options)
        self._lifecycle = Lifecycle(app, base_context, settings, self._respond)
        self._bases: dict[Any, dict[str, Any]] = {}

    @classmethod
    def from_asphalt_config(cls, *sources: ConfigSource, **options: Any) -> Self:
        """The ASGI application of an Asphalt configuration (``asphalt run``'s YAML).

        At lifespan start-up, the root component starts (the Kyoukai component's own server
        stays off, whatever ``run_server`` says) and its application is served; at shutdown,
        the components are torn down.

        :param sources: YAML files (later ones overlay earlier ones) or mappings.
        :param options: As for the constructor.
        """
        adapter = cls(None)
        adapter._lifecycle = Lifecycle.from_config(sources, options, adapter._respond)
        return adapter

    @property
    def app(self) -> Kyoukai | None:
        """The application (``None`` until a configured one has started)."""
        return self._lifecycle.app

    @property
    def base_context(self) -> Context | None:
        """The parent of every request context, once started."""
        return self._lifecycle.base_context

    async def ready(self) -> None:
        """Start the application if no lifespan did: :attr:`app` and :attr:`base_context` are
        then set (for handlers of other scope types)."""
        if self._lifecycle.exchange is None:
            await self._lifecycle.start()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self.http(scope, receive, send)
            return
        handler = getattr(self, kind, None) if kind in ("lifespan", "websocket") else None
        if handler is None:
            raise ValueError(f"Kyoukai cannot serve ASGI {kind!r} scopes")
        await handler(scope, receive, send)

    async def lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Start the application at ``lifespan.startup``, stop it at ``lifespan.shutdown``."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self._lifecycle.start()
                except Exception as exc:
                    logger.exception("The application failed to start")
                    await send({"type": "lifespan.startup.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self._lifecycle.stop()
                except Exception as exc:
                    logger.exception("The application failed to shut down")
                    await send({"type": "lifespan.shutdown.failed", "message": repr(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one WebSocket session: its handshake is routed as on the built-in server,
        and the session runs over an :class:`~kyoukai.backends._ws_asgi.ASGIChannel`."""
        exchange = self._lifecycle.exchange
        if exchange is None:
            exchange = await self._lifecycle.start()
        if (await receive())["type"] != "websocket.connect":
            return
        environ = self._environ({**scope, "method": "GET"})
        environ["wsgi.input"] = io.BytesIO()
        channel = environ[WEBSOCKET_ENVIRON_KEY] = ASGIChannel(scope, receive, send)
        server = scope.get("server")
        await exchange.serve(channel, environ, None if server is None else tuple(server))

    # -- http -----------------------------------------------------------------------------

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request."""
        exchange = self._lifecycle.exchange
        if exchange is None:
            exchange = await self._lifecycle.start()
        environ = self._environ(scope)
        version = scope.get("http_version", "1.1")
        watch = DisconnectWatch(receive, asyncio.current_task())
        if (
            version[0] == "1"
            and "CONTENT_LENGTH" not in environ
            and ("HTTP_TRANSFER_ENCODING" not in environ)
        ):
            # RFC 9112 section 6.3: an HTTP/1 request without either header has no body.
            environ["wsgi.input"] = io.BytesIO()
            watch.start_soon()
        else:
            try:
                channel = ReceivedBody(environ, receive, self._lifecycle.settings, watch)
            except ProtocolError as exc:
                await self._refuse(send, exc)
                return
            # The application pulls the body as it reads it (bounded by the route, after
            # routing and the pre-request hooks): pulling is the back-pressure.
            environ[BODY_ENVIRON_KEY] = channel
            environ["wsgi.input"] = BodyInput(channel)
        server = scope.get("server")
        try:
            await exchange.serve(
                (environ, watch, send), environ, None if server is None else tuple(server)
            )
        finally:
            watch.close()

    def _environ(self, scope: Scope) -> dict[str, Any]:
        server = scope.get("server")
        scheme = scope.get("scheme", "http")
        key = (None if server is None else tuple(server), scheme, scope.get("http_version"))
        base = self._bases.get(key)
        if base is None:
            base = self._bases[key] = _base_environ(scope)
            if len(self._bases) > _CACHE_CAP:
                self._bases.clear()
        root = scope.get("root_path", "")
        raw_path = scope.get("raw_path")
        if raw_path is not None:
            path = raw_path.decode("latin-1")
        else:
            path = quote(scope["path"], safe="/:@!$&'()*+,;=~")
        if root:
            quoted_root = quote(root, safe="/:@!$&'()*+,;=~")
            if path.startswith(quoted_root):
                # Servers differ: some give the path below the root, some (the ASGI spec's
                # later wording) the whole path.
                path = path[len(quoted_root) :]
        query = scope.get("query_string")
        target = path + "?" + query.decode("latin-1") if query else path
        environ = build_environ(
            base, scope["method"], base["SERVER_PROTOCOL"], target, scope["headers"]
        )
        if root:
            environ["SCRIPT_NAME"] = root.encode().decode("latin-1")
        client = scope.get("client")
        if client is not None:
            environ["REMOTE_ADDR"], port = client[0], client[1]
            environ["REMOTE_PORT"] = str(port)
        return environ

    async def _refuse(self, send: Send, exc: ProtocolError) -> None:
        logger.info("Refused a request: %s", exc)
        data = f"{exc.status} {HTTPStatus(exc.status).phrase}: {exc.problem}\n".encode()
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", b"%d" % len(data)),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": exc.status, "headers": headers})
        await send({"type": "http.response.body", "body": data})

    async def _respond(
        self,
        token: tuple[dict[str, Any], DisconnectWatch, Send] | ASGIChannel,
        response: Response,
    ) -> None:
        if type(token) is ASGIChannel:
            await token.finish(response)
            return
        assert isinstance(token, tuple)
        environ, watch, send = token
        watch.responding()
        code = response.status_code
        headers, body, stream = response_parts(response, environ, code)
        channel = environ.get(BODY_ENVIRON_KEY)
        if type(channel) is ReceivedBody and channel.gone:
            await _discard(stream)  # the client left before its body was complete
            return
        try:
            raw = _encode_headers(headers)
        except ValueError:
            logger.exception(
                "Cannot send the response to %s %s", environ["REQUEST_METHOD"], environ["RAW_URI"]
            )
            await _discard(stream)
            raw, code, body, stream = [(b"content-length", b"0")], 500, b"", None
        await send({"type": "http.response.start", "status": code, "headers": raw})
        if stream is None:
            if environ["REQUEST_METHOD"] == "HEAD":
                await send(_EMPTY_BODY)
            else:
                await send({"type": "http.response.body", "body": body})
        elif environ["REQUEST_METHOD"] == "HEAD" or code in (204, 304) or code < 200:
            await _discard(stream)
            await send(_EMPTY_BODY)
        else:
            await _stream(stream, watch, send)


def _base_environ(scope: Scope) -> dict[str, Any]:
    """The keys every request of a server address, scheme and HTTP version shares."""
    server = scope.get("server")
    if server is None:
        name, port = "localhost", "80"
    else:
        name, port = server[0], "" if server[1] is None else str(server[1])
    return {
        "SCRIPT_NAME": "",
        "SERVER_NAME": name,
        "SERVER_PORT": port,
        "SERVER_PROTOCOL": "HTTP/" + scope.get("http_version", "1.1"),
        "REMOTE_ADDR": "",
        "REMOTE_PORT": "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
    }


async def _discard(stream: Any) -> None:
    """Close a body that will not be sent."""
    if stream is None:
        return
    aclose = getattr(stream, "aclose", None)
    if aclose is not None:
        await aclose()
    else:
        close_iter(stream)


async def _stream(stream: Any, watch: DisconnectWatch, send: Send) -> None:
    """Send a streamed body piece by piece until it ends or the client disconnects."""
    pump = asyncio.ensure_future(_pump(stream, send))
    try:
        await asyncio.wait((pump, watch.watcher()), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not pump.done():
            pump.cancel()  # the client left: the handler's generator is cancelled and closed
        await asyncio.gather(pump, return_exceptions=True)


async def _pump(stream: Any, send: Send) -> None:
    body = iter_body(stream)
    try:
        async for data in body:
            await send({"type": "http.response.body", "body": data, "more_body": True})
    except OSError:
        return  # ASGI 2.4: the server says the client is gone
    except Exception:
        # Returning without the last message makes the server close the connection, so the
        # truncated body does not look complete.
        logger.exception("Error while streaming a response body")
        return
    finally:
        await body.aclose()
    await send(_EMPTY_BODY)


class ReceivedBody:
    """The :class:`~kyoukai._body.BodyChannel` of an ASGI request: ``http.request`` messages
    pulled from ``receive`` as the application reads, counted against the limit on the wire
    and decoded under it.

    :param watch: Started when the body has been received to its end (``receive`` is then
        free to watch for the client's disconnect).
    :raises ProtocolError: As the built-in server refuses a head: 413 for a declared length
        over ``max_body_size``, 415 for an unknown coding, 400 for a bad ``Content-Length``.
    """

    __slots__ = (
        "_decoder",
        "_done",
        "_limit",
        "_receive",
        "_watch",
        "gone",
        "length",
        "received",
    )

    def __init__(
        self, environ: dict[str, Any], receive: Receive, settings: Any, watch: DisconnectWatch
    ) -> None:
        self._decoder: ContentDecoder | None = body_decoder(environ, settings)
        self._receive = receive
        self._watch = watch
        self._limit: int = settings.max_body_size
        self._done = False
        declared = environ.get("CONTENT_LENGTH")
        #: The declared length on the wire, or ``None``.
        self.length = int(declared) if declared and self._decoder is None else None
        #: Wire bytes received so far.
        self.received = 0
        #: The client disconnected before its body was complete.
        self.gone = False
        if self._decoder is not None:
            # The application gets the decoded body, whose length nobody knows yet.
            del environ["HTTP_CONTENT_ENCODING"]
            environ.pop("CONTENT_LENGTH", None)

    def set_limit(self, limit: int) -> None:
        if limit >= self._limit:
            return
        self._limit = limit
        if self._decoder is not None:
            self._decoder.lower_limit(limit)
        if max(self.length or 0, self.received) > limit:
            raise http_error(ProtocolError("body too large", f"over {limit} bytes"))

    async def receive(self) -> bytes:
        while not self._done:
            message = await self._receive()
            if message["type"] != "http.request":
                self._done = self.gone = True
                raise ClientDisconnected()
            data = message.get("body") or b""
            self._done = not message.get("more_body", False)
            if self._done:
                self._watch.start_soon()
            self.received += len(data)
            try:
                if self.received > self._limit:
                    raise ProtocolError("body too large")
                if self._decoder is not None:
                    data = self._decoder.feed(data)
                    if self._done:
                        self._decoder.finish()
            except ProtocolError as exc:
                self._done = True
                raise http_error(exc) from None
            if data:
                return data
        return b""
