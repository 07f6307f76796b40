"""Read and write back-pressure for one connection, and pulling a streamed body under it.

Pausing and resuming reading are idempotent, so callers need not track who paused. Writers
await :meth:`FlowControl.drain` only while the transport says its buffer is over the
high-water mark, which bounds what the server holds for a client that reads slowly.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator
from typing import IO, Any

from werkzeug.wsgi import FileWrapper, _RangeWrapper

__all__ = ["ClientGone", "FlowControl", "iter_body", "write_file", "write_stream"]

logger = logging.getLogger("kyoukai")

_LAST_CHUNK = b"0\r\n\r\n"
#: Bytes handed to the kernel per ``loop.sendfile`` call: each call must finish within the
#: write timeout, so a client that stops reading is noticed as it is for any other body.
SENDFILE_PIECE = 1024 * 1024
#: Bytes read per piece where the loop cannot send a file itself (TLS, uvloop).
READ_PIECE = 256 * 1024


class ClientGone(Exception):
    """The connection closed while a response was being written."""


class FlowControl:
    """Pauses and resumes a transport's reading; lets writers wait for its buffer to drain."""

    __slots__ = (
        "_transport",
        "_writable",
        "closed",
        "read_paused",
        "write_paused",
        "write_timeout",
    )

    def __init__(self, transport: asyncio.Transport, write_timeout: float | None = None) -> None:
        self._transport = transport
        #: Seconds one piece of a file body may take to go out before the client is given up.
        self.write_timeout = write_timeout
        self._writable = asyncio.Event()
        self._writable.set()
        #: True while the server has stopped reading from the client.
        self.read_paused = False
        #: True while the transport's write buffer is over its high-water mark.
        self.write_paused = False
        #: True once the connection is gone; writing raises :class:`ClientGone`.
        self.closed = False

    def pause_reading(self) -> None:
        if not self.read_paused:
            self.read_paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused:
            self.read_paused = False
            if not self._transport.is_closing():
                self._transport.resume_reading()

    def pause_writing(self) -> None:
        if not self.write_paused:
            self.write_paused = True
            self._writable.clear()

    def resume_writing(self) -> None:
        if self.write_paused:
            self.write_paused = False
            self._writable.set()

    async def drain(self) -> None:
        """Wait until the client has read enough for the server to write again.

        Returns at once when writing is not paused.

        :raises ClientGone: If the connection is lost (now or while waiting).
        """
        await self._writable.wait()
        if self.closed:
            raise ClientGone

    def release(self) -> None:
        """Wake every writer for good: the connection is gone, nothing will drain any more."""
        self.closed = True
        self.write_paused = False
        self._writable.set()


async def iter_body(stream: Any) -> AsyncGenerator[bytes, None]:
    """Yield the non-empty pieces of a streamed response body, as bytes, then close it.

    The one way every protocol pulls a body: HTTP/1.1 frames the pieces, HTTP/2 cuts them into
    DATA frames, ASGI sends them as messages. ``stream`` is a WSGI app iterator (closed with
    ``close()``, as PEP 3333 requires) or an async iterable of ``bytes`` or ``str`` (closed
    with ``aclose()``). Closing this generator closes the stream, wherever it stopped.
    """
    if hasattr(stream, "__aiter__"):
        try:
            async for item in stream:
                data = item.encode() if isinstance(item, str) else bytes(item)
                if data:
                    yield data
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
    else:
        try:
            for data in stream:
                if data:
                    yield data
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()


async def write_stream(
    transport: asyncio.Transport,
    flow: FlowControl,
    stream: Any,
    *,
    chunked: bool,
    length: int | None,
) -> bool:
    """Write a streamed body as HTTP/1.1, pulling the next piece only while the client keeps up.

    The stream is closed in every case. If it fails half way, the connection is aborted: the
    head is already out, and a truncated body must not look complete to the client. A body
    longer than its ``Content-Length`` is cut at that length (:pep:`3333`: never send more
    than declared; the excess would be read as the next response) and logged as the
    application's error.

    :param stream: A WSGI app iterator, or an async iterable of ``bytes`` or ``str``.
    :param chunked: Whether to frame the pieces with chunked transfer coding.
    :param length: The ``Content-Length`` sent, if any.
    :return: False if the connection must close (a failed body or a length mismatch).
    :raises ClientGone: If the client goes away meanwhile.
    """
    found = file_body(stream) if length is not None and not chunked else None
    sent = 0
    body = iter_body(stream)
    try:
        if found is not None:
            assert length is not None
            try:
                return await write_file(transport, flow, *found, length)
            finally:
                stream.close()
        async for data in body:
            if length is not None and sent + len(data) > length:
                _write_piece(transport, flow, data[: length - sent], chunked)
                logger.error(
                    "The response body is longer than its Content-Length of %d bytes; "
                    "cut at that length and the connection closed",
                    length,
                )
                return False
            sent += len(data)
            _write_piece(transport, flow, data, chunked)
            if flow.write_paused:
                await flow.drain()
    except (ClientGone, asyncio.CancelledError):
        raise
    except Exception:
        logger.exception("Error while streaming a response body")
        transport.abort()
        return False
    finally:
        await body.aclose()
    if chunked:
        transport.write(_LAST_CHUNK)
        return True
    return length is not None and sent == length


def _write_piece(
    transport: asyncio.Transport, flow: FlowControl, data: bytes, chunked: bool
) -> None:
    if flow.closed:
        raise ClientGone
    if chunked:
        transport.writelines((b"%x\r\n" % len(data), data, b"\r\n"))
    else:
        transport.write(data)


def file_body(stream: Any) -> tuple[IO[bytes], int] | None:
    """The file behind a streamed body and the offset its bytes start at, or ``None``.

    Recognises Werkzeug's file wrapper (what ``send_file`` and static files return), and the
    wrapper it puts around one to answer a ``Range`` request, before either was read.
    """
    if type(stream) is _RangeWrapper:
        if stream.read_length or not stream.seekable:
            return None
        inner, offset = stream.iterable, stream.start_byte
    else:
        inner, offset = stream, None
    if type(inner) is not FileWrapper:
        return None
    file = inner.file
    try:
        return file, file.tell() if offset is None else offset
    except (AttributeError, OSError, ValueError):
        return None


async def write_file(
    transport: asyncio.Transport, flow: FlowControl, file: IO[bytes], offset: int, count: int
) -> bool:
    """Write ``count`` bytes of ``file`` from ``offset``: with ``loop.sendfile`` (the kernel
    copies them, on asyncio's loop over cleartext), else in large reads under back-pressure.

    :return: False if the file ended before ``count`` bytes (the connection must close).
    :raises ClientGone: If the client goes away, or stops reading for the write timeout.
    """
    loop = asyncio.get_running_loop()
    end = offset + count
    native = count > READ_PIECE  # a small file is one read: cheaper than the kernel's way
    try:
        if not native:
            file.seek(offset)
        while offset < end:
            if flow.closed or transport.is_closing():
                raise ClientGone
            if native:
                piece = min(SENDFILE_PIECE, end - offset)
                try:
                    sent = await asyncio.wait_for(
                        loop.sendfile(transport, file, offset, piece, fallback=False),
                        flow.write_timeout,
                    )
                except (NotImplementedError, RuntimeError):
                    # uvloop has no sendfile; TLS transports only the copying fallback.
                    native = False
                    file.seek(offset)
                    continue
            else:
                data = file.read(min(READ_PIECE, end - offset))
                sent = len(data)
                _write_piece(transport, flow, data, False)
                if flow.write_paused:
                    await flow.drain()
            if not sent:
                return False  # the file shrank since its length was sent
            offset += sent
    except TimeoutError:
        logger.debug("Closing a connection whose client stopped reading")
        transport.abort()
        raise ClientGone from None
    except ConnectionError:
        raise ClientGone from None
    return True
