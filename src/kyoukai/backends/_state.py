"""What the connections of one server share: settings, the clock, the ``Date`` line, one timer.

One timer per server (not one per connection and request) refreshes a coarse clock and the
cached ``Date`` line and checks every connection's deadlines. It runs only while the server
has connections. Deadlines are set from the coarse clock plus :attr:`ServerState.slack`, the
most the clock can lag the loop's, so that no deadline fires early: a timeout of ``T``
closes after at least ``T`` and at most ``T`` plus two ticks.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import TYPE_CHECKING, Any, Protocol

from asphalt.core import Context

from kyoukai._head import http_date_line
from kyoukai.backends._proxy import TrustedProxies
from kyoukai.backends._settings import ServerSettings

if TYPE_CHECKING:
    from kyoukai.app import Kyoukai

__all__ = ["TICK_SECONDS", "ServerState"]

logger = logging.getLogger("kyoukai")

#: The longest interval between two ticks of the server's timer; shorter when a timeout is
#: short. Half a second keeps the ``Date`` header within one second of the clock.
TICK_SECONDS = 0.5


class Connection(Protocol):
    """What the server's timer and shutdown need of every connection, whatever its protocol."""

    def check_deadlines(self, now: float) -> None: ...
    def shutdown(self) -> None: ...
    def abort(self) -> None: ...
    def pending_tasks(self) -> list[asyncio.Task[None]]: ...


class ServerState:
    """What all connections of one server share.

    :param app: The application.
    :param settings: The server's limits and timeouts.
    :param parent_context: The parent of every request context.
    :param url_scheme: ``"https"`` when the server runs TLS.
    """

    def __init__(
        self,
        app: Kyoukai,
        settings: ServerSettings,
        parent_context: Context | None,
        *,
        url_scheme: str = "http",
    ) -> None:
        self.loop = asyncio.get_running_loop()
        #: The application.
        self.app = app
        #: The server's limits and timeouts.
        self.settings = settings
        #: The parent of every request context.
        self.parent_context = parent_context
        #: ``wsgi.url_scheme`` of every request.
        self.url_scheme = url_scheme
        #: The peers whose proxy headers are believed (``forwarded_allow_ips``).
        self.trusted_proxies = TrustedProxies(settings.forwarded_allow_ips)
        #: ``wsgi.errors`` of every request.
        self.errors_stream = sys.stderr
        #: Open connections.
        self.connections: set[Connection] = set()
        #: Open WebSocket sessions (at most ``settings.max_websockets``).
        self.websockets = 0
        #: True once a graceful shutdown began: responses close their connection.
        self.closing = False
        #: Seconds between two ticks of the timer.
        self.interval = max(0.01, min(TICK_SECONDS, settings.min_timeout / 10))
        #: Added to every deadline set from :attr:`clock`, which lags by up to one interval.
        self.slack = self.interval
        #: Loop time, refreshed by the timer; deadlines are set from it.
        self.clock = self.loop.time()
        #: The ``Date`` header line, refreshed each second.
        self.date_line = http_date_line()
        self._second = int(time.time())
        # Bound signals, looked up once: a connection only checks for listeners.
        self.made_signal: Any = getattr(app, "connection_made", None)
        self.lost_signal: Any = getattr(app, "connection_lost", None)
        self._timer: asyncio.TimerHandle | None = None
        self._drained: asyncio.Event | None = None

    @classmethod
    def standalone(cls, component: Any, parent_context: Context | None) -> ServerState:
        """The state of a connection made by hand, outside a server: it shares nothing.

        :param component: The object with ``app`` (and optionally ``settings`` and
            ``ssl_context``) the connection is made for.
        """
        settings = getattr(component, "settings", None)
        if not isinstance(settings, ServerSettings):
            settings = ServerSettings()
        scheme = "http" if getattr(component, "ssl_context", None) is None else "https"
        return cls(component.app, settings, parent_context, url_scheme=scheme)

    def deadline(self, timeout: float) -> float:
        """The loop time at which ``timeout`` seconds from now have surely passed."""
        return self.clock + timeout + self.slack

    def add(self, connection: Connection) -> None:
        """Register a new connection, and start the timer if it was idle."""
        self.connections.add(connection)
        if self._timer is None:
            self._refresh()
            self._timer = self.loop.call_later(self.interval, self._tick)

    def forget(self, connection: Connection) -> None:
        """Drop a closed connection; the last one to go stops the timer and ends a shutdown's
        wait."""
        self.connections.discard(connection)
        if not self.connections:
            self.stop_ticking()
            if self._drained is not None:
                self._drained.set()

    def stop_ticking(self) -> None:
        """Stop the timer (it starts again with the next connection)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _refresh(self) -> float:
        self.clock = now = self.loop.time()
        second = int(time.time())
        if second != self._second:
            self._second = second
            self.date_line = http_date_line(second)
        return now

    def _tick(self) -> None:
        now = self._refresh()
        for connection in list(self.connections):
            connection.check_deadlines(now)
        if self.connections:
            self._timer = self.loop.call_later(self.interval, self._tick)
        else:
            self._timer = None

    async def shutdown(self, grace: float) -> None:
        """Close idle connections, give busy ones ``grace`` seconds, then close the rest."""
        self.closing = True
        self._drained = drained = asyncio.Event()
        for connection in list(self.connections):
            connection.shutdown()
        if self.connections:
            try:
                async with asyncio.timeout(grace):
                    await drained.wait()
            except TimeoutError:
                logger.warning(
                    "Closing %d connection(s) still busy after %.1f s",
                    len(self.connections),
                    grace,
                )
        tasks = [task for c in self.connections for task in c.pending_tasks()]
        for connection in list(self.connections):
            connection.abort()
        if tasks:
            await asyncio.wait(tasks, timeout=1.0)
        self.stop_ticking()
