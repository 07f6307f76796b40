"""Read and write back-pressure for one connection.

Reading is paused for two independent reasons (too many pipelined requests waiting, or the
connection being drained before close), so pausing and resuming are idempotent. Writers await
:meth:`FlowControl.drain` only while the transport says its buffer is over the high-water mark,
which bounds what the server holds for a client that reads slowly.
"""

from __future__ import annotations

import asyncio

__all__ = ["FlowControl"]


class FlowControl:
    """Pauses and resumes a transport's reading; lets writers wait for its buffer to drain."""

    __slots__ = ("_transport", "_writable", "read_paused", "write_paused")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._writable = asyncio.Event()
        self._writable.set()
        #: True while the server has stopped reading from the client.
        self.read_paused = False
        #: True while the transport's write buffer is over its high-water mark.
        self.write_paused = False

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

        Returns at once when writing is not paused. Also returns when the connection is lost,
        because :meth:`release` wakes every waiter; the caller checks for that itself.
        """
        await self._writable.wait()

    def release(self) -> None:
        """Wake every writer for good: the connection is gone, nothing will drain any more."""
        self.write_paused = False
        self._writable.set()
