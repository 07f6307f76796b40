"""Server-Sent Events: a ``text/event-stream`` response fed by an async generator.

A handler returns ``EventStream(events())``, where ``events`` is an async generator yielding
:class:`ServerSentEvent` objects or plain strings (each string is one event's data). A client
that reconnects sends the id of the last event it saw as ``Last-Event-ID``; the handler reads
it from ``ctx.request.headers.get("Last-Event-ID")`` and resumes from there.

Strategy: while the generator is idle, a comment line goes out every ``ping_interval`` seconds
so that proxies and browsers keep the connection. The next event is awaited in a task of its
own, so a ping never interrupts the generator; closing the stream (the servers do when the
client goes away) cancels that task, which raises :exc:`asyncio.CancelledError` at the
generator's ``await`` and runs its ``finally`` blocks at once.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Response

__all__ = ["PING", "EventStream", "ServerSentEvent"]

#: The keep-alive comment sent while no event comes.
PING = b": ping\n\n"

_LINE_BREAK = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True, slots=True)
class ServerSentEvent:
    """One event of an event stream.

    :param data: The event's data; line breaks are kept (each line is sent as its own
        ``data:`` field, which the browser joins with ``\\n``).
    :param event: The event type (``EventSource.addEventListener(event, ...)``);
        ``message`` when omitted.
    :param id: The event id, sent back by a reconnecting client as ``Last-Event-ID``.
    :param retry: The client's reconnection delay, in milliseconds.
    :raises ValueError: If ``event`` or ``id`` holds a line break (it would end the field),
        ``id`` holds NUL (browsers ignore such an id), or ``retry`` is negative.
    """

    data: str
    event: str | None = None
    id: str | None = None
    retry: int | None = None

    def __post_init__(self) -> None:
        for name, value in (("event", self.event), ("id", self.id)):
            if value is not None and _LINE_BREAK.search(value) is not None:
                raise ValueError(f"an event's {name} cannot hold a line break: {value!r}")
        if self.id is not None and "\0" in self.id:
            raise ValueError(f"an event id cannot hold NUL: {self.id!r}")
        if self.retry is not None and self.retry < 0:
            raise ValueError(f"retry is a delay in milliseconds, not {self.retry!r}")

    def encode(self) -> bytes:
        """The event in the ``text/event-stream`` format, blank line included."""
        lines = []
        if self.event is not None:
            lines.append(f"event: {self.event}\n")
        if self.id is not None:
            lines.append(f"id: {self.id}\n")
        if self.retry is not None:
            lines.append(f"retry: {self.retry}\n")
        lines.extend(f"data: {line}\n" for line in _LINE_BREAK.split(self.data))
        lines.append("\n")
        return "".join(lines).encode()


class EventStream(Response):
    """A streamed ``text/event-stream`` response of the events an async iterable yields.

    It is sent with ``Cache-Control: no-cache`` and ``X-Accel-Buffering: no`` (so that nginx
    passes each event on at once). Through :class:`~kyoukai.compression.Compress`, every
    event is still flushed to the client on its own.

    :param events: An async iterable (usually an async generator) of
        :class:`ServerSentEvent` or ``str`` (the data of an event).
    :param ping_interval: Seconds of silence after which a comment is sent to keep the
        connection open; ``None`` or ``0`` sends none.
    :param kwargs: Passed to :class:`~werkzeug.wrappers.Response` (``status``, ``headers``).
    """

    def __init__(
        self,
        events: AsyncIterable[ServerSentEvent | str],
        *,
        ping_interval: float | None = 15.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(mimetype="text/event-stream", **kwargs)
        self.headers.setdefault("Cache-Control", "no-cache")
        self.headers["X-Accel-Buffering"] = "no"
        body: Any = _EventIterator(events, ping_interval or None)
        self.response = body  # Werkzeug's type has no async bodies; the servers take them


class _EventIterator:
    """Encodes events as they come, with pings in between; closing it closes the source."""

    def __init__(
        self, events: AsyncIterable[ServerSentEvent | str], ping_interval: float | None
    ) -> None:
        self._source = events
        self._events = aiter(events)
        self._ping_interval = ping_interval
        self._pending: asyncio.Future[ServerSentEvent | str] | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._ping_interval is None:
            item = await anext(self._events)
        else:
            if self._pending is None:
                self._pending = asyncio.ensure_future(anext(self._events))
            done, _ = await asyncio.wait((self._pending,), timeout=self._ping_interval)
            if not done:
                return PING
            pending, self._pending = self._pending, None
            item = pending.result()
        if isinstance(item, str):
            item = ServerSentEvent(item)
        return item.encode()

    async def aclose(self) -> None:
        """Stop the source: cancel the event being awaited, then close the generator."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()
            await asyncio.wait((pending,))
            if not pending.cancelled():
                pending.exception()  # retrieved: the client is gone, nobody else will
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            await aclose()
