"""A plain WSGI callable that runs the async core on an event loop of its own.

A blocking WSGI server (uWSGI's threads, gunicorn's ``gthread`` and ``sync`` workers) calls
:class:`WSGIHost` from its own threads. The host keeps one event loop per worker process, in
a background thread, and hands each request to it with
:func:`asyncio.run_coroutine_threadsafe`; the WSGI thread waits for the response. No
greenlets and no asyncio mode of the server are needed.

Strategy: the loop, its thread and the application's start-up (its base context, or the
components of an Asphalt configuration) are made lazily, on the first request of each process:
preforking servers (uWSGI without ``--lazy-apps``, gunicorn with ``--preload``) import the
application in the master and fork, and a started context must never be shared across
processes. A fork forgets whatever the parent had started. The request body is read (within
``max_body_size``) and decoded in the WSGI thread; a body in memory is returned whole, a
synchronous stream is handed to the server as it is, and an async one is pulled piece by piece
from the loop; a server that closes the response (the client left) closes the handler's
generator.
"""

from __future__ import annotations

import asyncio
import atexit
import io
import logging
import os
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, Self

from asphalt.core import Context

from kyoukai._head import check_header
from kyoukai.backends._exchange import Exchange
from kyoukai.backends._flow import iter_body
from kyoukai.backends._lifecycle import Lifecycle, RequestBody, application_settings
from kyoukai.backends._settings import ProtocolError, ServerSettings
from kyoukai.wsgi import close_iter, response_parts

if TYPE_CHECKING:
    from werkzeug.wrappers import Response

    from kyoukai._deploy import ConfigSource
    from kyoukai.app import Kyoukai

__all__ = ["StartResponse", "WSGIHost"]

logger = logging.getLogger("kyoukai")

StartResponse = Callable[..., Any]

#: Seconds the host waits for the application to start, and to stop at exit.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 15.0
_READ_SIZE = 64 * 1024
#: Hop-by-hop headers, which :pep:`3333` leaves to the server.
_HOP_BY_HOP = frozenset(("connection", "transfer-encoding", "keep-alive", "upgrade"))

_HOSTS: weakref.WeakSet[WSGIHost] = weakref.WeakSet()


def _forget_after_fork() -> None:
    for host in list(_HOSTS):
        host._forget()


def _close_all() -> None:
    for host in list(_HOSTS):
        host.close()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
atexit.register(_close_all)


class _Running:
    """What one process runs: the loop, its thread, and the started application."""

    __slots__ = ("exchange", "lifecycle", "loop", "thread")

    def __init__(self, lifecycle: Lifecycle) -> None:
        self.lifecycle = lifecycle
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="kyoukai-wsgi-loop", daemon=True
        )
        self.thread.start()
        self.exchange: Exchange = self.call(lifecycle.start(), START_TIMEOUT)

    def call(self, coroutine: Any, timeout: float | None = None) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        try:
            self.call(self.lifecycle.stop(), STOP_TIMEOUT)
        except Exception:
            logger.exception("The application failed to shut down")
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(STOP_TIMEOUT)
        if not self.thread.is_alive():
            self.loop.close()


class WSGIHost:
    """A Kyoukai application as a :pep:`3333` WSGI callable.

    :param app: The application.
    :param base_context: The parent of every request context; if omitted, each worker process
        makes its own at its first request and closes it at exit.
    :param options: ``max_body_size``, ``max_content_codings`` and ``handler_timeout``, as for
        the built-in server; every other limit is the WSGI server's.
    """

    def __init__(
        self, app: Kyoukai | None, base_context: Context | None = None, **options: Any
    ) -> None:
        settings = application_settings(options)
        self._make_lifecycle: Callable[[], Lifecycle] = lambda: Lifecycle(
            app, base_context, settings, _keep
        )
        self._running: _Running | None = None
        self._pid = 0
        self._lock = threading.Lock()
        _HOSTS.add(self)

    @classmethod
    def from_asphalt_config(cls, *sources: ConfigSource, **options: Any) -> Self:
        """The WSGI callable of an Asphalt configuration (``asphalt run``'s YAML).

        Each worker process starts the root component at its first request (the Kyoukai
        component's own server stays off, whatever ``run_server`` says) and tears it down at
        exit.

        :param sources: YAML files (later ones overlay earlier ones) or mappings.
        :param options: As for the constructor.
        """
        host = cls(None, **options)
        host._make_lifecycle = lambda: Lifecycle.from_config(sources, options, _keep)
        return host

    def _forget(self) -> None:
        # In a child after fork: the parent's loop thread does not exist here.
        self._lock = threading.Lock()
        self._running = None
        self._pid = 0

    def _started(self) -> _Running:
        running = self._running
        if running is not None and self._pid == os.getpid():
            return running
        with self._lock:
            if self._running is None or self._pid != os.getpid():
                self._running = _Running(self._make_lifecycle())
                self._pid = os.getpid()
            return self._running

    def close(self) -> None:
        """Stop this process's application (its components or base context) and loop."""
        with self._lock:
            running, self._running = self._running, None
        if running is not None and self._pid == os.getpid():
            running.stop()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        """Serve one request (the WSGI interface)."""
        running = self._started()
        # The server's environ stays the server's (it reads keys back after the call).
        environ = environ.copy()
        try:
            data = self._read_body(environ, running.lifecycle.settings)
            environ["wsgi.input"] = io.BytesIO(data)
        except ProtocolError as exc:
            logger.info("Refused a request: %s", exc)
            data = f"{exc.status} {HTTPStatus(exc.status).phrase}: {exc.problem}\n".encode()
            start_response(
                f"{exc.status} {HTTPStatus(exc.status).phrase}",
                [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(data)))],
            )
            return [data]
        # The server's file wrapper may be called from its own threads only (uWSGI's is), not
        # from the loop's: Werkzeug's own FileWrapper serves files instead.
        environ.pop("wsgi.file_wrapper", None)
        if "RAW_URI" not in environ:
            environ["RAW_URI"] = environ.get("REQUEST_URI") or environ.get("PATH_INFO", "/")
        port = environ.get("SERVER_PORT", "")
        server = (environ.get("SERVER_NAME", ""), int(port) if port.isdigit() else None)
        kept: list[Response] = []
        running.call(running.exchange.serve(kept, environ, server))
        if not kept:  # cancelled: the host is shutting down
            start_response("503 Service Unavailable", [("Content-Length", "0")])
            return []
        response = kept[0]
        code = response.status_code
        headers, body, stream = response_parts(response, environ, code)
        try:
            pairs = [(n, v) for n, v in headers if n.lower() not in _HOP_BY_HOP]
            for name, value in pairs:
                check_header(name, value)
        except ValueError:
            logger.exception(
                "Cannot send the response to %s %s", environ["REQUEST_METHOD"], environ["RAW_URI"]
            )
            self._discard(running, stream)
            start_response("500 Internal Server Error", [("Content-Length", "0")])
            return []
        start_response(response.status, pairs)
        if stream is None:
            return [] if environ["REQUEST_METHOD"] == "HEAD" else [body or b""]
        if environ["REQUEST_METHOD"] == "HEAD":
            self._discard(running, stream)
            return []
        if hasattr(stream, "__aiter__"):
            return _AsyncBody(running, iter_body(stream))
        return stream  # type: ignore[no-any-return]

    def _read_body(self, environ: dict[str, Any], settings: ServerSettings) -> bytes:
        """Read the request body from ``wsgi.input`` under the limits; empty if it has none."""
        body = RequestBody(environ, settings)
        declared = environ.get("CONTENT_LENGTH")
        if declared:
            remaining = int(declared)
            stream = environ["wsgi.input"]
            while remaining > 0:
                data = stream.read(min(remaining, _READ_SIZE))
                if not data:
                    break
                remaining -= len(data)
                body.feed(data)
        elif (
            environ.get("wsgi.input_terminated")
            or "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        ):
            for data in self.read_unframed(environ):
                body.feed(data)
        return body.finish()

    def read_unframed(self, environ: dict[str, Any]) -> Iterator[bytes]:
        """Yield the pieces of a body sent without ``Content-Length`` (chunked), as the
        server hands it over: ``wsgi.input`` up to its end (:pep:`3333`'s
        ``wsgi.input_terminated``)."""
        stream = environ["wsgi.input"]
        while data := stream.read(_READ_SIZE):
            yield data

    @staticmethod
    def _discard(running: _Running, stream: Any) -> None:
        if stream is None:
            return
        if hasattr(stream, "aclose"):
            running.call(stream.aclose())
        else:
            close_iter(stream)


async def _keep(kept: list[Response], response: Response) -> None:
    kept.append(response)


async def _next(body: AsyncGenerator[bytes, None]) -> bytes:
    return await body.__anext__()


class _AsyncBody:
    """A WSGI response iterator over an async body, each piece pulled on the host's loop."""

    __slots__ = ("_body", "_running")

    def __init__(self, running: _Running, body: AsyncGenerator[bytes, None]) -> None:
        self._running = running
        self._body = body

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        try:
            data: bytes = self._running.call(_next(self._body))
        except StopAsyncIteration:
            raise StopIteration from None
        return data

    def close(self) -> None:
        """Close the handler's generator (the server calls this, also when the client left)."""
        self._running.call(self._body.aclose(), STOP_TIMEOUT)
