"""Noticing that an ASGI client left: ``http.disconnect`` while a handler runs or a body streams.

The built-in server cancels a request's handler when its connection is lost; under ASGI the
only sign is an ``http.disconnect`` message from ``receive``. :class:`DisconnectWatch` waits
for it in a task of its own. While the handler runs, a disconnect cancels the request's task,
so the handler gets :class:`asyncio.CancelledError` at its ``await``, its request context is
torn down and no response is sent (:class:`~kyoukai.backends._exchange.Exchange` takes the
cancellation as the client's leaving, not as a failure); while a body streams, it stops the
stream.

Strategy: the watch starts on the loop's next turn, so a handler that answers within its first
step costs no task, and only once the request's body has been read to its end (or it has
none): until then ``receive`` belongs to the body channel, which sees a disconnect itself
(:class:`werkzeug.exceptions.ClientDisconnected`). The watch cancels the request's task only
before the response is handed over, and takes the cancellation back (``uncancel``) at the
end, so the ASGI server sees an application that returned.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["DisconnectWatch"]

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]


class DisconnectWatch:
    """Waits for one request's ``http.disconnect``; cancels its handler if it still runs.

    :param receive: The request's ASGI ``receive``.
    :param task: The task running the request (the ASGI server's), cancelled on disconnect
        while the handler runs.
    """

    __slots__ = ("_closed", "_receive", "_task", "_watcher", "cancelled", "handling")

    def __init__(self, receive: Receive, task: asyncio.Task[Any] | None) -> None:
        self._receive = receive
        self._task = task
        self._watcher: asyncio.Task[None] | None = None
        self._closed = False
        #: The handler still runs: a disconnect now cancels the request's task.
        self.handling = True
        #: The watch cancelled the handler.
        self.cancelled = False

    def start_soon(self) -> None:
        """Start watching on the loop's next turn, if the handler still runs then (the
        request's body, if any, has been read to its end)."""
        asyncio.get_running_loop().call_soon(self._start_if_handling)

    def _start_if_handling(self) -> None:
        if self.handling and not self._closed:
            self.watcher()

    def watcher(self) -> asyncio.Task[None]:
        """The task that ends when the client disconnects, started now if it was not."""
        if self._watcher is None:
            self._watcher = asyncio.ensure_future(self._watch())
        return self._watcher

    async def _watch(self) -> None:
        while (await self._receive())["type"] != "http.disconnect":
            pass  # what is left of a body nobody reads
        if self.handling and self._task is not None:
            self.cancelled = True
            self._task.cancel()  # as the built-in server cancels a handler on connection loss

    def responding(self) -> None:
        """The handler has returned: a disconnect from now on only stops a streamed body."""
        self.handling = False

    def close(self) -> None:
        """Stop watching, at the request's end."""
        self._closed = True
        self.handling = False
        if self._watcher is not None:
            self._watcher.cancel()
        if self.cancelled and self._task is not None:
            self._task.uncancel()  # the cancellation was the watch's, and is spent
