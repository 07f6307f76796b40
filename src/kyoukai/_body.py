"""Request bodies that arrive after the head: the channel a server feeds, and how the core reads it.

The core reads no socket. A server that streams a request body puts a :class:`BodyChannel` in
the environ under :data:`BODY_ENVIRON_KEY`, and a :class:`BodyInput` as ``wsgi.input``. After
routing, the application bounds the channel with the route's ``max_body_size``; a route with
``stream_body=True`` then reads it piece by piece (:meth:`Request.iter_body`,
:meth:`Request.read_async`), while any other route gets the whole body loaded (bounded, in
memory or, past :data:`SPOOL_SIZE`, in a temporary file) before its handler runs, so that
Werkzeug's synchronous API (``get_data()``, ``form``, ``files``, ``json``) works as usual.

Requests built without a channel (the test client, a WSGI host) carry their body in
``wsgi.input`` already; the asynchronous methods then read it from there.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import AsyncIterator
from typing import IO, Any, Protocol

from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request as WerkzeugRequest

__all__ = [
    "BODY_ENVIRON_KEY",
    "SPOOL_SIZE",
    "BodyChannel",
    "BodyInput",
    "MemoryBody",
    "Request",
    "check_body_size",
    "check_length",
    "close_body",
    "load_body",
    "stream_from_memory",
]

#: The environ key of a streamed request body's :class:`BodyChannel`.
BODY_ENVIRON_KEY = "kyoukai.body"
#: A body loaded for the synchronous API stays in memory up to this size; the rest of it goes
#: to a temporary file, so that a large upload does not grow the process.
SPOOL_SIZE = 1024 * 1024

_NOT_LOADED = (
    "the request body of a streaming route (stream_body=True) is not loaded: "
    "use 'await ctx.request.read_async()' before get_data(), form, files or json, "
    "or read it as it arrives with 'async for chunk in ctx.request.iter_body()'"
)


def check_body_size(value: int | None) -> int | None:
    """Check a ``max_body_size`` given to a route or blueprint: bytes, or ``None`` to inherit.

    :raises TypeError: If it is not an ``int`` (or ``None``).
    :raises ValueError: If it is not positive.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"max_body_size must be a number of bytes or None, not {value!r}")
    if value <= 0:
        raise ValueError(f"max_body_size must be positive, not {value!r}")
    return value


class BodyChannel(Protocol):
    """Where a request body comes from while it arrives: what a transport implements.

    Receiving is the back-pressure: a transport buffers a bounded amount and stops reading from
    the client (or stops opening its flow-control window, or stops pulling) until the
    application receives again. Nothing is asked of the client before the first
    :meth:`receive`, so an HTTP/1.1 server sends ``100 Continue`` only then.
    """

    @property
    def length(self) -> int | None:
        """The length the client declared (``Content-Length``, on the wire), or ``None``."""

    def set_limit(self, limit: int) -> None:
        """Bound the body at ``limit`` bytes, on the wire and after decoding.

        The transport's own bound (the server's ``max_body_size``) still applies when lower.
        The application calls this after routing, before the first :meth:`receive`.

        :raises werkzeug.exceptions.RequestEntityTooLarge: If the declared length, or what
            already arrived, is over the limit.
        """

    async def receive(self) -> bytes:
        """The next piece of the body, decoded; ``b""`` once the body is complete.

        :raises werkzeug.exceptions.HTTPException: **413** past the limit, **400** for a body
            that cannot be decoded or framed, **408** when the client stops sending.
        :raises werkzeug.exceptions.ClientDisconnected: If the client went away.
        """


def check_length(length: str, limit: int | None) -> None:
    """Refuse a body in memory already (``CONTENT_LENGTH`` of ``length``) over ``limit``.

    :raises RequestEntityTooLarge: If it is over.
    """
    if limit is not None and length.isdigit() and int(length) > limit:
        raise RequestEntityTooLarge(f"The body is over the {limit}-byte limit.")


class MemoryBody:
    """A :class:`BodyChannel` over a body already in memory, given out in pieces of up to
    ``piece`` bytes: how the test client sends bodies, so that limits and streaming routes
    behave as on a server."""

    def __init__(self, data: bytes, piece: int = 64 * 1024) -> None:
        self._data = memoryview(data)
        self._piece = piece
        self._position = 0
        #: The length of the body.
        self.length: int | None = len(data)

    def set_limit(self, limit: int) -> None:
        if len(self._data) > limit:
            raise RequestEntityTooLarge(f"The body is over the {limit}-byte limit.")

    async def receive(self) -> bytes:
        start = self._position
        self._position = min(start + self._piece, len(self._data))
        return bytes(self._data[start : self._position])


def stream_from_memory(environ: dict[str, Any]) -> None:
    """Give a body that is in ``wsgi.input`` already a channel, for a streaming route: it then
    reads it as it would read one arriving."""
    channel = environ[BODY_ENVIRON_KEY] = MemoryBody(environ["wsgi.input"].read())
    environ["wsgi.input"] = BodyInput(channel)


class BodyInput(io.RawIOBase):
    """``wsgi.input`` of a streamed body: readable once :func:`load_body` has loaded it.

    Reading it before then raises :exc:`RuntimeError` telling how to load the body, rather than
    returning an empty or partial body that would look complete.
    """

    def __init__(self, channel: BodyChannel) -> None:
        super().__init__()
        #: The channel the body arrives on.
        self.channel = channel
        #: The loaded body, once :func:`load_body` has run.
        self.file: IO[bytes] | None = None

    def readable(self) -> bool:
        return True

    def _loaded(self) -> IO[bytes]:
        if self.file is None:
            raise RuntimeError(_NOT_LOADED)
        return self.file

    def readinto(self, buffer: Any) -> int:
        return self._loaded().readinto(buffer)  # type: ignore[attr-defined,no-any-return]

    def read(self, size: int = -1) -> bytes:
        return self._loaded().read(size)

    def readline(self, size: int | None = -1) -> bytes:
        return self._loaded().readline(-1 if size is None else size)

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        super().close()


async def load_body(environ: dict[str, Any]) -> None:
    """Read the rest of a streamed body into its ``wsgi.input``, for the synchronous API.

    Up to :data:`SPOOL_SIZE` stays in memory; a larger body goes on to a temporary file. The
    environ then tells the loaded length as ``CONTENT_LENGTH`` (a chunked or decoded body has
    no other), without ``Transfer-Encoding``. Does nothing for a body loaded already or one
    that was never streamed.

    :raises werkzeug.exceptions.HTTPException: As :meth:`BodyChannel.receive`.
    """
    body_input = environ.get("wsgi.input")
    if type(body_input) is not BodyInput or body_input.file is not None:
        return
    receive = body_input.channel.receive
    parts: list[bytes] = []
    size = 0
    spool: IO[bytes] | None = None
    while chunk := await receive():
        size += len(chunk)
        if spool is not None:
            spool.write(chunk)
            continue
        parts.append(chunk)
        if size > SPOOL_SIZE:
            spool = tempfile.TemporaryFile()
            spool.writelines(parts)
            parts.clear()
    if spool is None:
        body_input.file = io.BytesIO(parts[0] if len(parts) == 1 else b"".join(parts))
    else:
        spool.seek(0)
        body_input.file = spool
    environ["CONTENT_LENGTH"] = str(size)
    environ.pop("HTTP_TRANSFER_ENCODING", None)


def close_body(request: WerkzeugRequest) -> None:
    """Close what a streamed body left open: its loaded file, and the form parser's files."""
    request.close()
    request.environ["wsgi.input"].close()


class Request(WerkzeugRequest):
    """Werkzeug's request, with its body readable as it arrives.

    The synchronous body API is Werkzeug's. On a route with ``stream_body=True`` it needs the
    body loaded first (:meth:`read_async`); elsewhere the body is loaded before the handler
    runs. Use this class (or a subclass) as an application's ``request_class`` to have
    :meth:`read_async` and :meth:`iter_body`.
    """

    async def read_async(self, to_end: bool = True) -> bytes:
        """Read the body without blocking the server.

        :param to_end: Read until the end of the body and return it all; the synchronous API
            (``get_data()``, ``form``, ``files``, ``json``) then sees it too. With ``False``,
            return the next piece as it arrives, and ``b""`` once the body is complete (an
            in-memory body comes in one piece).
        :raises werkzeug.exceptions.HTTPException: **413** past the route's ``max_body_size``,
            **400** or **408** for a broken or stalled upload.
        """
        environ = self.environ
        body_input = environ.get("wsgi.input")
        streaming = type(body_input) is BodyInput and body_input.file is None
        if to_end:
            if streaming:
                await load_body(environ)
            return self.get_data()
        if streaming:
            assert isinstance(body_input, BodyInput)
            return await body_input.channel.receive()
        if self.__dict__.get("_kyoukai_body_read"):
            return b""
        self.__dict__["_kyoukai_body_read"] = True
        return self.get_data()

    async def iter_body(self) -> AsyncIterator[bytes]:
        """Yield the body's pieces as they arrive (``async for chunk in request.iter_body()``).

        Nothing is buffered beyond what the server holds for back-pressure, so a body of any
        size (up to the route's ``max_body_size``) can be hashed, parsed or written to disk as
        it comes.
        """
        while chunk := await self.read_async(to_end=False):
            yield chunk
