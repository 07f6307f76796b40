"""Read and write back-pressure for one connection, and writing a streamed body under it.

Pausing and resuming reading are idempotent, so callers need not track who paused. Writers
await :meth:`FlowControl.drain` only while the transport says its buffer is over the
high-water mark, which bounds what the server holds for a client that reads slowly.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

__all__ = ["ClientGone", "FlowControl", "write_stream"]

logger = logging.getLogger("kyoukai")

_LAST_CHUNK = b"0\r\n\r\n"


class ClientGone(Exception):
    """The connection closed while a response was being written."""


class FlowControl:
    """Pauses and resumes a transport's reading; lets writers wait for its buffer to drain."""

    __slots__ = ("_transport", "_writable", "closed", "read_paused", "write_paused")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
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


async def write_stream(
    transport: asyncio.Transport,
    flow: FlowControl,
    stream: Any,
    *,
    chunked: bool,
    length: int | None,
) -> bool:
    """Write a streamed body, pulling the next piece only while the client keeps up.

    The stream is closed in every case (``close()`` for a WSGI iterator, ``aclose()`` for an
    async generator). If it fails half way, the connection is aborted: the head is already
    out, and a truncated body must not look complete to the client.

    :param stream: A WSGI app iterator, or an async iterable of ``bytes`` or ``str``.
    :param chunked: Whether to frame the pieces with chunked transfer coding.
    :param length: The ``Content-Length`` sent, if any.
    :return: False if the connection must close (a failed body or a length mismatch).
    :raises ClientGone: If the client goes away meanwhile.
    """
    sent = 0
    is_async = hasattr(stream, "__aiter__")
    try:
        if is_async:
            async for item in stream:
                data = item.encode() if isinstance(item, str) else bytes(item)
                if data:
                    sent += len(data)
                    _write_piece(transport, flow, data, chunked)
                    if flow.write_paused:
                        await flow.drain()
        else:
            for data in stream:
                if data:
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
        if is_async:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        else:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
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
