"""Limits and timeouts of the built-in servers, with their defaults, and the refusals they map to.

Every limit the servers enforce lives here, so that ``Kyoukai.run()``, ``Kyoukai.start()`` and
the Asphalt component configuration accept the same names, and every protocol answers a breach
with the same status (:data:`STATUS_FOR`). The defaults follow the trusted servers (nginx,
gunicorn, uvicorn, hypercorn, aiohttp); ``docs/server.md`` explains each one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from kyoukai.backends._proxy import check_trusted_proxies

__all__ = ["STATUS_FOR", "ProtocolError", "ServerSettings"]

KiB = 1024
MiB = 1024 * KiB
#: Settings that are not limits, checked on their own.
_NOT_NUMBERS = frozenset({"forwarded_allow_ips"})
#: The largest HTTP/2 flow-control window (RFC 9113 section 6.9.1).
_MAX_WINDOW = 2**31 - 1

#: Every refusal a server makes, and the one status it answers with.
STATUS_FOR: dict[str, int] = {
    "malformed request": 400,
    "body could not be decoded": 400,
    "request line too long": 414,
    "header line too long": 431,
    "too many headers": 431,
    "head too large": 431,
    "trailer section too large": 431,
    "body too large": 413,
    "decoded body too large": 413,
    "unsupported content coding": 415,
    "unsupported transfer coding": 501,
    "unsupported HTTP version": 505,
    "request head timeout": 408,
    "request body timeout": 408,
    "too many connections": 503,
    "too many WebSockets": 503,
    "CONNECT is not supported": 501,
    "unsupported WebSocket version": 426,
}


class ProtocolError(Exception):
    """A request the server refuses without calling the application.

    :param problem: A key of :data:`STATUS_FOR`; it picks the status.
    :param detail: Extra words for the response body and the debug log.
    """

    def __init__(self, problem: str, detail: str = "") -> None:
        super().__init__(f"{problem}: {detail}" if detail else problem)
        #: What went wrong, one of the keys of :data:`STATUS_FOR`.
        self.problem = problem
        #: The status the client gets.
        self.status = STATUS_FOR[problem]


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """Limits and timeouts for one server; immutable, shared by all its connections.

    Sizes are in bytes and timeouts in seconds. Each breach of a limit is answered with the
    status named below and the connection is closed; the application never sees the request.
    """

    #: Longest request target (the path and query of the request line); longer gets **414**.
    max_request_line_size: int = 8 * KiB
    #: Longest single header field line (name and value); longer gets **431**.
    max_header_line_size: int = 8 * KiB
    #: Most header fields in one request (and trailer fields after a chunked body); **431**.
    max_header_count: int = 100
    #: Largest request head (request line and all header lines), counted on the raw bytes as
    #: they arrive, before the parser buffers them; larger gets **431**.
    max_head_size: int = 32 * KiB
    #: Largest request body, counted on the wire for ``Content-Length`` and chunked bodies
    #: alike, and again after ``Content-Encoding`` is decoded; larger gets **413**. It bounds
    #: the ``max_body_size`` of every blueprint and route, and applies where they set none:
    #: a declared length over it is refused before routing, one over the route's after.
    max_body_size: int = 16 * MiB
    #: Bytes of a request body the server holds for a handler that reads it slower than it
    #: arrives; past it, the server stops reading from the client until the handler catches up.
    body_buffer_size: int = 256 * KiB
    #: Largest non-file field of a ``multipart/form-data`` or urlencoded form that Werkzeug's
    #: form parser keeps in memory; larger gets **413**. Uploaded files go to temporary files
    #: past 500 KiB whatever their size.
    max_form_memory_size: int = 500 * KiB
    #: Most parts of a ``multipart/form-data`` body; more gets **413**.
    max_form_parts: int = 1000
    #: Most stacked ``Content-Encoding`` codings the server decodes; more gets **415**, as does
    #: any coding other than ``gzip``, ``deflate`` and ``identity``.
    max_content_codings: int = 2
    #: Requests parsed and waiting for their response on one connection before the server stops
    #: reading from it (pipelining).
    max_pipelined_requests: int = 32
    #: Absolute deadline for a complete request head, from the accept (first request) or from
    #: its first byte (later requests); a slower client gets **408** and is closed.
    request_timeout: float = 30.0
    #: Longest pause between two reads of a request body; a slower client gets **408**.
    body_timeout: float = 60.0
    #: How long an idle keep-alive connection is kept open waiting for the next request.
    keep_alive_timeout: float = 5.0
    #: How long a response write may make no progress (a client that does not read) before the
    #: connection is dropped.
    write_timeout: float = 60.0
    #: Optional deadline for the application to produce a response; ``None`` disables it.
    #: A handler that runs longer is cancelled and the client gets **503**.
    handler_timeout: float | None = None
    #: Most open connections; a connection beyond the cap gets **503** and is closed.
    max_connections: int = 10_000
    #: Grace period of a graceful shutdown: in-flight requests may finish within it, then the
    #: remaining connections are closed.
    shutdown_timeout: float = 15.0
    #: Deadline for the TLS handshake when the server runs with an ``ssl`` context.
    tls_handshake_timeout: float = 10.0
    #: Bytes the server buffers for a client before it waits for the client to read
    #: (the transport's high-water mark); the low-water mark is a quarter of it.
    write_buffer_size: int = 64 * KiB
    #: Length of the listen queue handed to ``listen()``.
    backlog: int = 1024
    #: Peers whose proxy headers (``X-Forwarded-For``, ``-Proto``, ``-Host``, ``Forwarded``)
    #: are believed: a comma-separated list of addresses and networks, or ``*`` for any peer
    #: (connections over a Unix socket are trusted only under ``*``). From other peers the
    #: fields are ordinary headers, so clients cannot fake their address or scheme.
    forwarded_allow_ips: str = "127.0.0.1"
    #: Largest WebSocket message, counted after decompression and across fragments; a larger
    #: one closes the session with **1009** before it is buffered.
    websocket_max_message_size: int = 1 * MiB
    #: WebSocket messages received and waiting for the handler before the server stops reading
    #: from the client; it reads again once the handler has taken half of them.
    websocket_max_queue: int = 16
    #: Seconds between the server's pings on an open WebSocket.
    websocket_ping_interval: float = 20.0
    #: Seconds a client has to answer a ping; a dead peer is closed with **1011**.
    websocket_ping_timeout: float = 20.0
    #: Seconds the closing handshake may take before the connection is dropped; also how long
    #: a handler may run on after its connection is gone before it is cancelled.
    websocket_close_timeout: float = 10.0
    #: Most open WebSockets on one server; a handshake beyond the cap gets **503**.
    max_websockets: int = 5_000
    #: HTTP/2: most requests whose handler runs at once on one connection (advertised as
    #: ``SETTINGS_MAX_CONCURRENT_STREAMS``); a stream beyond it is reset with
    #: ``REFUSED_STREAM``.
    h2_max_concurrent_streams: int = 100
    #: HTTP/2: largest request header list (advertised as ``SETTINGS_MAX_HEADER_LIST_SIZE``),
    #: and largest compressed header block across ``CONTINUATION`` frames; a larger block ends
    #: the connection with ``GOAWAY(ENHANCE_YOUR_CALM)``. The header count is
    #: ``max_header_count`` (**431** beyond it), as on HTTP/1.1.
    h2_max_header_list_size: int = 64 * KiB
    #: HTTP/2: requests served on one connection before it is closed gracefully with
    #: ``GOAWAY(NO_ERROR)`` (clients then open a new one).
    h2_max_requests: int = 1000
    #: HTTP/2: the receive window of each stream (request bodies), in bytes.
    h2_initial_window_size: int = 256 * KiB
    #: HTTP/2: the receive window of the whole connection, in bytes.
    h2_connection_window_size: int = 1 * MiB
    #: HTTP/2: control frames (``PING``, ``SETTINGS``, ``WINDOW_UPDATE``, ``PRIORITY``,
    #: ``RST_STREAM``, empty ``DATA``) a client may send per 10 seconds; more ends the
    #: connection with ``GOAWAY(ENHANCE_YOUR_CALM)``.
    h2_max_control_frames: int = 10_000
    #: HTTP/2: stream resets per 10 seconds, by the client or provoked from the server
    #: (refused streams, protocol errors on a stream); more ends the connection with
    #: ``GOAWAY(ENHANCE_YOUR_CALM)`` (Rapid Reset, MadeYouReset).
    h2_max_resets: int = 500

    def __post_init__(self) -> None:
        check_trusted_proxies(self.forwarded_allow_ips)
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name in _NOT_NUMBERS or (value is None and field.name == "handler_timeout"):
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"server setting {field.name!r} must be a number, not {value!r}")
            if value <= 0:
                raise ValueError(f"server setting {field.name!r} must be positive, not {value!r}")
        for name in ("h2_initial_window_size", "h2_connection_window_size"):
            if getattr(self, name) > _MAX_WINDOW:
                raise ValueError(f"server setting {name!r} must be at most {_MAX_WINDOW}")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> ServerSettings:
        """Build settings from keyword options, as passed to ``run()`` or ``start()``.

        :param options: Setting names mapped to values; missing names keep their default.
        :raises TypeError: If a name is not a setting; the message lists the valid names.
        """
        names = cls.field_names()
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise TypeError(
                f"unknown server option(s) {', '.join(map(repr, unknown))}; "
                f"valid options are: {', '.join(names)}"
            )
        return cls(**options)

    @classmethod
    def field_names(cls) -> list[str]:
        """The names of all settings, in declaration order."""
        return [field.name for field in dataclasses.fields(cls)]

    @property
    def min_timeout(self) -> float:
        """The shortest timeout, which sets how often the server checks its deadlines."""
        timeouts = [self.request_timeout, self.body_timeout, self.keep_alive_timeout]
        timeouts += [self.write_timeout, self.websocket_ping_interval, self.websocket_ping_timeout]
        return min(timeouts)
