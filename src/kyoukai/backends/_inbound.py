"""A request body pushed by a protocol as it arrives and pulled by the application.

:class:`BodyStream` is the :class:`~kyoukai._body.BodyChannel` of the protocols that are fed
bytes (HTTP/1.1 from its parser, HTTP/2 from DATA frames): the protocol calls :meth:`feed`,
:meth:`end` and :meth:`fail`; the application awaits :meth:`receive`. Between them sits a
buffer of at most ``buffer_size`` bytes (plus one read, or one flow-control window): past it
the stream asks its owner to stop reading (HTTP/1.1 pauses the socket, HTTP/2 stops opening the
stream's window), below a quarter of it to read again. The owner also hears when the
application first wants the body, which is when an HTTP/1.1 server sends ``100 Continue``. A
protocol that pulls instead (ASGI ``receive``) implements the channel directly.

Both limits are counted here, whatever the protocol: the wire bytes as they arrive, and the
decoded bytes of a body sent with ``Content-Encoding``, which is decoded as the application
receives it (:class:`~kyoukai.backends._decode.ContentDecoder`), so always under the limit the
route set. Every failure reaches the application as the Werkzeug exception of its status,
through its error handlers.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any, Protocol

from werkzeug.exceptions import ClientDisconnected, HTTPException
from werkzeug.exceptions import default_exceptions as _EXCEPTIONS

from kyoukai.backends._decode import ContentDecoder
from kyoukai.backends._settings import ProtocolError

__all__ = ["BodyOwner", "BodyStream", "http_error"]


class BodyOwner(Protocol):
    """The protocol side of a :class:`BodyStream`."""

    def body_wanted(self, stream: BodyStream) -> None:
        """The application asks for the body for the first time."""

    def body_flow(self, stream: BodyStream, paused: bool) -> None:
        """Stop (``paused``) or go on reading the body from the client."""


class _PlainRefusal(HTTPException):
    """Renders as the server's own refusals do: one line of plain text."""

    def get_body(self, environ: Any = None, scope: Any = None) -> str:
        return f"{self.code} {self.name}: {self.description}\n"

    def get_headers(self, environ: Any = None, scope: Any = None) -> list[tuple[str, str]]:
        return [("Content-Type", "text/plain; charset=utf-8")]


_REFUSALS: dict[int, type[HTTPException]] = {}


def http_error(exc: ProtocolError) -> HTTPException:
    """The Werkzeug exception of a refusal's status (``RequestEntityTooLarge`` for 413...),
    which error handlers take by code or class, and which renders like the refusal itself."""
    cls = _REFUSALS.get(exc.status)
    if cls is None:
        base = _EXCEPTIONS.get(exc.status, HTTPException)
        cls = _REFUSALS[exc.status] = type(base.__name__, (_PlainRefusal, base), {})
    error = cls(str(exc))
    error.code = exc.status
    return error


class BodyStream:
    """One request body between the protocol that receives it and the application.

    :param owner: Told when the body is first wanted and when reading should pause or resume.
    :param length: The declared length on the wire, or ``None`` (chunked, HTTP/2).
    :param limit: The server's bound on the body, wire and decoded.
    :param decoder: Decodes the body's ``Content-Encoding``, if it has one.
    :param expect: The client waits to be told to send the body (``Expect: 100-continue``).
    :param buffer_size: Bytes buffered before the owner is asked to pause.
    """

    __slots__ = (
        "_buffered",
        "_chunks",
        "_decoder",
        "_high",
        "_limit",
        "_low",
        "_owner",
        "_waiter",
        "abandoned",
        "decoded",
        "done",
        "error",
        "expect",
        "length",
        "paused",
        "received",
        "wanted",
    )

    def __init__(
        self,
        owner: BodyOwner,
        length: int | None,
        limit: int,
        decoder: ContentDecoder | None,
        *,
        expect: bool,
        buffer_size: int,
    ) -> None:
        self._owner = owner
        self._chunks: deque[bytes] = deque()
        self._buffered = 0
        self._high = buffer_size
        self._low = buffer_size // 4
        self._limit = limit
        self._decoder = decoder
        self._waiter: asyncio.Future[None] | None = None
        #: The declared length on the wire, or ``None``.
        self.length = length
        #: The client waits for ``100 Continue`` before it sends the body.
        self.expect = expect
        #: Wire bytes received so far.
        self.received = 0
        #: Decoded bytes received so far (the wire bytes, for a body without a coding).
        self.decoded = 0
        #: The application has asked for the body.
        self.wanted = False
        #: The owner was asked to stop reading.
        self.paused = False
        #: The whole body arrived (the application may not have read it all).
        self.done = False
        #: Why the body cannot be read, once it failed.
        self.error: HTTPException | None = None
        #: The application is done with the request: what arrives is dropped.
        self.abandoned = False

    # -- the application's side (BodyChannel) ------------------------------------------------

    def set_limit(self, limit: int) -> None:
        """Bound the body at ``limit`` bytes, or the server's bound if lower.

        :raises RequestEntityTooLarge: If the declared length or what arrived is over it.
        """
        if limit >= self._limit:
            return
        self._limit = limit
        if self._decoder is not None:
            self._decoder.lower_limit(limit)
        declared = self.length if self.length is not None else 0
        if max(declared, self.received, self.decoded) > limit:
            error = http_error(ProtocolError("body too large", f"over {limit} bytes"))
            self._set_error(error)
            raise error

    async def receive(self) -> bytes:
        """The next piece of the body, or ``b""`` once it is complete."""
        if not self.wanted:
            self.wanted = True
            self._owner.body_wanted(self)
        while True:
            chunk = self.take()
            if chunk:
                return chunk
            if self.done:
                if self._decoder is not None:
                    self._decode(None)
                return b""
            self._waiter = waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                self._waiter = None

    def take(self) -> bytes:
        """The next piece of the body that has arrived, decoded, without waiting; ``b""`` if
        none has (yet)."""
        if self.error is not None:
            raise self.error
        chunks = self._chunks
        while chunks:
            chunk = chunks.popleft()
            self._buffered -= len(chunk)
            if self.paused and self._buffered <= self._low:
                self.paused = False
                self._owner.body_flow(self, False)
            if self._decoder is None:
                return chunk
            chunk = self._decode(chunk)
            if chunk:
                return chunk
        return b""

    # -- the protocol's side -----------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """Nothing more will arrive for the application: complete, failed or abandoned."""
        return self.done or self.error is not None or self.abandoned

    def prime(self, received: int, pieces: list[bytes] | None) -> None:
        """Start with what the protocol read before the stream existed: ``received`` wire
        bytes, in these pieces."""
        self.received = received
        for chunk in pieces or ():
            self._chunks.append(chunk)
            self._buffered += len(chunk)

    def feed(self, data: bytes) -> bool:
        """Take the next bytes of the body as received on the wire.

        :return: False once the body failed (over the limit): the protocol stops reading
            requests on this connection.
        """
        self.received += len(data)
        if self.received > self._limit:
            self.fail(ProtocolError("body too large"))
            return False
        if self.abandoned or self.error is not None:
            return self.error is None
        self._chunks.append(data)
        self._buffered += len(data)
        if not self.paused and self._buffered > self._high:
            self.paused = True
            self._owner.body_flow(self, True)
        self._wake()
        return True

    def _decode(self, chunk: bytes | None) -> bytes:
        """Decode the next wire piece (``None``: check that the coded body ended), under the
        limit the application set by now."""
        decoder = self._decoder
        assert decoder is not None
        try:
            if chunk is None:
                decoder.finish()
                return b""
            chunk = decoder.feed(chunk)
        except ProtocolError as exc:
            error = http_error(exc)
            self._set_error(error)
            raise error from None
        self.decoded += len(chunk)
        return chunk

    def end(self) -> bool:
        """The body is complete on the wire.

        :return: False if it failed.
        """
        self.done = True
        self._resume()
        self._wake()
        return self.error is None

    def fail(self, problem: ProtocolError | None) -> None:
        """The body cannot be read: for ``problem``, or because the client went away."""
        if self.error is None:
            self._set_error(ClientDisconnected() if problem is None else http_error(problem))
        self._wake()

    def abandon(self) -> None:
        """The application answered without reading the rest: drop it as it arrives."""
        self.abandoned = True
        self._chunks.clear()
        self._buffered = 0
        self._resume()

    def _set_error(self, error: HTTPException) -> None:
        self.error = error
        self._chunks.clear()
        self._buffered = 0
        self._resume()

    def _resume(self) -> None:
        if self.paused:
            self.paused = False
            self._owner.body_flow(self, False)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
