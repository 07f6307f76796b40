"""A test client that drives an application in process, through the real ``process_request``."""

from __future__ import annotations

import json as jsonlib
from collections.abc import Generator, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from asphalt.core import Context
from werkzeug.wrappers import Response

from kyoukai._body import BODY_ENVIRON_KEY, BodyInput, MemoryBody
from kyoukai._testing_ws import (
    HANDSHAKE_HEADERS,
    WebSocketConnect,
    WebSocketRejected,
    WebSocketTestSession,
)
from kyoukai._types import Handler
from kyoukai.app import Kyoukai
from kyoukai.blueprint import Blueprint
from kyoukai.route import Route
from kyoukai.wsgi import to_wsgi_environment

__all__ = ["RequestOrRoute", "TestKyoukai", "WebSocketRejected", "WebSocketTestSession"]

#: Printable ASCII passes through unchanged; everything else is percent-encoded as UTF-8.
_URL_SAFE = "".join(chr(code) for code in range(0x21, 0x7F))


class _TestingBpCtxManager:
    """Swaps a fresh root blueprint into a test application for the ``with`` block."""

    def __init__(self, app: TestKyoukai) -> None:
        self.app = app
        self._old_root: Blueprint | None = None

    def __enter__(self) -> Blueprint:
        self._old_root = self.app._root
        old = self._old_root
        self.app._root = Blueprint(old.name, host_matching=old.host_matching, host=old.host)
        return self.app._root

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._old_root is not None
        self.app._root = self._old_root


class TestKyoukai(Kyoukai):
    """An application that can be tested without a server.

    Requests are built in process and go through :meth:`.Kyoukai.process_request`, exactly as
    a server would send them. The routing map is built on the first request (by
    ``process_request``).

    :param base_context: The parent context of every request context (a fresh
        :class:`~asphalt.core.Context` if omitted); publish test resources on it.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, *args: Any, base_context: Context | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The parent context of every request context.
        self.base_context = base_context

    @classmethod
    def wrap_existing_app(
        cls, other_app: Kyoukai, base_context: Context | None = None
    ) -> TestKyoukai:
        """Wrap an existing application for testing.

        The new object shares the other application's routing tree, settings and event
        listeners, so requests injected into it are processed exactly as ``other_app`` would
        process them. Its class derives from both this class and ``other_app``'s, so a
        ``process_request`` override of the application still runs, on the wrapper:
        :meth:`testing_bp` swaps the wrapper's root and leaves ``other_app`` alone.
        """
        new = object.__new__(_testing_class(cls, type(other_app)))
        new.__dict__.update(other_app.__dict__)
        new.base_context = base_context
        # Both objects dispatch to the same listeners, whichever one they were connected on.
        for name in ("route_matched", "route_invoked", "route_returned"):
            getattr(cls, name).bound_signals[new] = getattr(other_app, name)
        return new

    def testing_bp(self) -> _TestingBpCtxManager:
        """A context manager giving a fresh root blueprint for the ``with`` block.

        Routes registered on it exist only inside the block; the old root comes back after,
        so each test's routes stay apart from the others'::

            with app.testing_bp() as bp:
                @bp.route("/")
                async def index(ctx): ...
        """
        return _TestingBpCtxManager(self)

    async def inject_request(
        self,
        headers: Mapping[str, str] | list[tuple[str, str]] | None,
        url: str,
        method: str = "GET",
        body: bytes | str | None = None,
    ) -> Response:
        """Process a request built from its parts and return the response.

        :param headers: The request headers.
        :param url: The path and query string, e.g. ``"/users/1?full=yes"``.
        :param method: The request method.
        :param body: The request body. It reaches the application as on a server: bounded by
            the route's ``max_body_size``, loaded before the handler or streamed to it.
        """
        request = self.request_class(self.build_environ(headers, url, method, body))
        if self.base_context is None:
            self.base_context = Context()
        return await self.process_request(request, self.base_context)

    def build_environ(
        self,
        headers: Mapping[str, str] | list[tuple[str, str]] | None,
        url: str,
        method: str = "GET",
        body: bytes | str | None = None,
    ) -> dict[str, Any]:
        """The WSGI environ of a request built from its parts, as :meth:`inject_request`
        sends it (``Host`` and ``Content-Length`` added when missing)."""
        # The URL is text: send non-ASCII characters percent-encoded, as a client would.
        url = quote(url, safe=_URL_SAFE)
        if isinstance(body, str):
            body = body.encode("utf-8")
        header_pairs = (
            list(headers.items()) if isinstance(headers, Mapping) else list(headers or ())
        )
        names = {name.lower() for name, _ in header_pairs}
        if body and "content-length" not in names:
            header_pairs.append(("Content-Length", str(len(body))))
        if "host" not in names:
            header_pairs.append(("Host", self.server_name or "localhost"))
        environ = to_wsgi_environment(header_pairs, method.upper(), url, "1.1", body)
        environ["REMOTE_ADDR"] = "127.0.0.1"
        environ["REMOTE_PORT"] = "0"
        if body and type(self).process_request is Kyoukai.process_request:
            # The body arrives as on a server: bounded by the route, streamed or loaded.
            channel = environ[BODY_ENVIRON_KEY] = MemoryBody(body)
            environ["wsgi.input"] = BodyInput(channel)
        return environ

    def websocket_connect(
        self,
        url: str,
        subprotocols: list[str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> WebSocketConnect:
        """Open a WebSocket to ``url``, in process: ``async with app.websocket_connect(url) as
        ws:`` gives a :class:`WebSocketTestSession` (``send*``,
        ``receive*``, ``close``).

        :param url: The path and query string of the handshake.
        :param subprotocols: The subprotocols to offer.
        :param headers: Extra handshake headers (cookies, ``Authorization``).
        :raises WebSocketRejected: On entering the block, if the
            application answered the handshake with an HTTP response (``.response``).
        """
        handshake = dict(HANDSHAKE_HEADERS)
        if subprotocols:
            handshake["Sec-WebSocket-Protocol"] = ", ".join(subprotocols)
        handshake.update(headers or {})
        if self.base_context is None:
            self.base_context = Context()
        return WebSocketConnect(self, self.build_environ(handshake, url), self.base_context)

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, Any] | None = None,
        body: bytes | str | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
    ) -> Response:
        """Send a request the way modern test clients do.

        :param method: The request method.
        :param url: The path, optionally with a query string.
        :param headers: Extra request headers.
        :param params: Query parameters, added to the URL.
        :param body: A raw body.
        :param json: A value sent as a JSON body.
        :param data: Form fields sent as ``application/x-www-form-urlencoded``.
        """
        all_headers = dict(headers or {})
        if json is not None:
            body = jsonlib.dumps(json)
            all_headers.setdefault("Content-Type", "application/json")
        elif data is not None:
            body = urlencode(data, doseq=True)
            all_headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if params:
            separator = "&" if urlsplit(url).query else "?"
            url = f"{url}{separator}{urlencode(params, doseq=True)}"
        return await self.inject_request(all_headers, url, method, body)

    def get(self, url: str, **kwargs: Any) -> RequestOrRoute:
        """Send a ``GET`` request when awaited (see :meth:`request`); as a decorator, add a
        ``GET`` route, as :meth:`.Kyoukai.get` does."""
        return RequestOrRoute(self, "GET", url, kwargs)

    async def head(self, url: str, **kwargs: Any) -> Response:
        """Send a ``HEAD`` request (see :meth:`request`)."""
        return await self.request("HEAD", url, **kwargs)

    async def options(self, url: str, **kwargs: Any) -> Response:
        """Send an ``OPTIONS`` request (see :meth:`request`)."""
        return await self.request("OPTIONS", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> RequestOrRoute:
        """Send a ``POST`` request when awaited, or add a ``POST`` route (see :meth:`get`)."""
        return RequestOrRoute(self, "POST", url, kwargs)

    def put(self, url: str, **kwargs: Any) -> RequestOrRoute:
        """Send a ``PUT`` request when awaited, or add a ``PUT`` route (see :meth:`get`)."""
        return RequestOrRoute(self, "PUT", url, kwargs)

    def patch(self, url: str, **kwargs: Any) -> RequestOrRoute:
        """Send a ``PATCH`` request when awaited, or add a ``PATCH`` route (see :meth:`get`)."""
        return RequestOrRoute(self, "PATCH", url, kwargs)

    def delete(self, url: str, **kwargs: Any) -> RequestOrRoute:
        """Send a ``DELETE`` request when awaited, or add a ``DELETE`` route (see :meth:`get`)."""
        return RequestOrRoute(self, "DELETE", url, kwargs)


class RequestOrRoute:
    """What :meth:`TestKyoukai.get` and its siblings return.

    A test application is both a client and an application, so ``app.get(url)`` is both:
    awaited, it sends the request (keyword arguments as for :meth:`TestKyoukai.request`);
    used as a decorator, it adds the route (keyword arguments as for ``route()``). Nothing
    happens until one of the two is done. It is an awaitable, not a coroutine:
    ``asyncio.ensure_future`` and ``gather`` take it, ``create_task`` wants
    ``app.request(...)``.
    """

    __slots__ = ("_app", "_kwargs", "_method", "_url")

    def __init__(self, app: TestKyoukai, method: str, url: str, kwargs: dict[str, Any]) -> None:
        self._app = app
        self._method = method
        self._url = url
        self._kwargs = kwargs

    def __await__(self) -> Generator[Any, None, Response]:
        return self._app.request(self._method, self._url, **self._kwargs).__await__()

    def __call__(self, func: Handler | Route) -> Route:
        return self._app.route(self._url, (self._method,), **self._kwargs)(func)


_mixed_classes: dict[tuple[type[TestKyoukai], type[Kyoukai]], type[TestKyoukai]] = {}


def _testing_class(test_class: type[TestKyoukai], app_class: type[Kyoukai]) -> type[TestKyoukai]:
    """``test_class`` with the overrides of ``app_class`` (for ``wrap_existing_app``)."""
    if issubclass(test_class, app_class):
        return test_class
    if issubclass(app_class, test_class):
        return app_class
    mixed = _mixed_classes.get((test_class, app_class))
    if mixed is None:
        name = f"{test_class.__name__}[{app_class.__name__}]"
        mixed = type(name, (test_class, app_class), {"__test__": False})
        _mixed_classes[test_class, app_class] = mixed
    return mixed
