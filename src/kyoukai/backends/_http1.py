"""I/O-free HTTP/1.x rules: the framing checks that close request smuggling, and responses.

Nothing here imports asyncio or touches a transport: every function takes values and returns
values (or raises :class:`~kyoukai.backends._settings.ProtocolError`), so each rule can be
tested with bytes alone. The protocol in :mod:`kyoukai.backends.httptools_` applies them in
``on_headers_complete`` (inline there, as it runs for every request) and writes what
:func:`prepare_response` renders.

Every refusal closes the connection: once framing is in doubt, the next byte cannot be
trusted to start a new request.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from werkzeug.wrappers import Response

from kyoukai._head import ResponseHeadError, internal_error, render_head
from kyoukai.backends._settings import ProtocolError
from kyoukai.wsgi import close_iter, response_parts

if TYPE_CHECKING:
    import asyncio

    from kyoukai.backends._inbound import BodyStream

__all__ = [
    "PROTOCOLS",
    "Cycle",
    "Stage",
    "StreamJob",
    "check_transfer_encoding",
    "parse_content_length",
    "partial_head_size",
    "prepare_response",
    "split_target",
    "unsupported_version",
]

logger = logging.getLogger("kyoukai")

#: ``SERVER_PROTOCOL`` for each HTTP version the server speaks, as httptools reports it.
PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}


def parse_content_length(value: str) -> int:
    """Parse a ``Content-Length`` value: ASCII digits only (no sign, no spaces, no list).

    A repeated ``Content-Length`` arrives joined with a comma, so it is refused here too.

    :raises ProtocolError: 400 for anything else.
    """
    if not value.isdigit() or not value.isascii():
        raise ProtocolError("malformed request", "invalid or repeated Content-Length")
    return int(value)


def check_transfer_encoding(value: str, http_version: str) -> None:
    """Accept only ``Transfer-Encoding: chunked`` on HTTP/1.1.

    RFC 9112 section 6.1: a server that receives a transfer coding it does not understand
    responds 501; a ``Transfer-Encoding`` in an HTTP/1.0 message must be treated as faulty
    framing, because an HTTP/1.0 intermediary may not have understood it.

    :raises ProtocolError: 400 on HTTP/1.0, 501 for any coding besides a lone ``chunked``.
    """
    if http_version != "1.1":
        raise ProtocolError("malformed request", "Transfer-Encoding on HTTP/1.0")
    if value.strip().lower() != "chunked":
        raise ProtocolError("unsupported transfer coding", value)


def split_target(target: str, method: str) -> tuple[str, str | None]:
    """Split a request target into the path (and query) to route, and its authority if any.

    The origin form (``/path?query``) is the usual one. ``OPTIONS *`` stays as it is. The
    absolute form (``http://host/path``, RFC 9112 section 3.2.2, as sent to proxies) gives
    its path and its authority, which replaces ``Host``.

    :return: ``(path_and_query, authority)``; ``authority`` is ``None`` but for the absolute
        form.
    :raises ProtocolError: 400 for anything else (authority form, user info, garbage).
    """
    if target[:1] == "/":
        return target, None
    if target == "*" and method == "OPTIONS":
        return target, None
    scheme, sep, rest = target.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        raise ProtocolError("malformed request", "request target is not a path")
    end = len(rest)
    for stop in "/?":
        found = rest.find(stop)
        if 0 <= found < end:
            end = found
    authority, path = rest[:end], rest[end:]
    if not authority or "@" in authority:
        raise ProtocolError("malformed request", "absolute request target without a plain host")
    if path[:1] != "/":
        path = "/" + path
    return path, authority


def partial_head_size(piece: bytes, target: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    """Bound the size of a head that began inside ``piece`` and is not complete yet.

    The head follows the last CRLFCRLF of the piece (the end of the previous head), which
    bounds it from above; so does what the parser has delivered of it (``target`` and whole
    header lines, without whitespace around values) plus the unfinished line after the last
    LF. The smaller bound is taken; the next pieces are then counted exactly.
    """
    end = piece.rfind(b"\r\n\r\n")
    after_head = len(piece) - (end + 4 if end >= 0 else 0)
    unfinished = len(piece) - (piece.rfind(b"\n") + 1)
    delivered = len(target) + 24 + sum(len(n) + len(v) + 4 for n, v in headers)
    return min(after_head, delivered + unfinished)


def unsupported_version(version: str) -> str:
    """Refuse a request line's HTTP version that is not 1.0 or 1.1.

    :raises ProtocolError: 400 for HTTP/0.x, 505 for anything else (HTTP/2.0 and later).
    """
    if version.startswith("0."):
        raise ProtocolError("malformed request", f"HTTP/{version}")
    raise ProtocolError("unsupported HTTP version", f"HTTP/{version}")


class Stage(enum.Enum):
    """Where the connection is in reading the current request."""

    IDLE = "idle"  #: between requests: nothing of the next one has arrived
    HEAD = "head"  #: request line and headers arriving
    BODY = "body"  #: head parsed, body (or trailers) arriving
    DONE = "done"  #: no further request will be read (close pending, or lingering)


class Cycle:
    """One request on the connection, from its parsed head to its written response."""

    __slots__ = ("body", "environ", "http10", "keep_alive", "raw", "response", "task")

    def __init__(self, environ: dict[str, Any] | None, keep_alive: bool, http10: bool) -> None:
        self.environ = environ
        self.keep_alive = keep_alive
        self.http10 = http10
        #: The request body as it arrives, for a request that has one.
        self.body: BodyStream | None = None
        #: The application's response, once the handler has returned.
        self.response: Response | None = None
        #: Bytes to send instead of a response (a refusal); always the last on the connection.
        self.raw: bytes | None = None
        self.task: asyncio.Task[None] | None = None


@dataclass(slots=True)
class StreamJob:
    """A response whose head is rendered and whose body is a stream, left for a coroutine."""

    head: bytes
    stream: Any
    chunked: bool
    length: int | None
    keep_alive: bool


def prepare_response(
    cycle: Cycle, date_line: bytes, closing: bool
) -> StreamJob | tuple[bytes, bytes | None, bool]:
    """Render a cycle's response for writing, under the HTTP/1.1 framing rules.

    A response that cannot be written safely becomes a plain 500, logged once as the
    application's error: a bad header, or a body longer than its ``Content-Length``
    (:pep:`3333`: never send more than declared; the excess would be read as the next
    response), after which the connection closes.

    :param cycle: The request and its response.
    :param date_line: The current ``Date`` line.
    :param closing: Whether the server is shutting down (the connection then closes).
    :return: A :class:`StreamJob` for a streamed body; otherwise ``(data, more, keep_alive)``:
        the bytes to write, a large body to write after them (or ``None``), and whether the
        connection stays open.
    """
    response = cycle.response
    environ = cycle.environ
    assert response is not None and environ is not None
    keep_alive = cycle.keep_alive and not closing
    code = response.status_code
    stream: Any = None
    try:
        headers, body, stream = response_parts(response, environ, code)
        no_body = environ["REQUEST_METHOD"] == "HEAD" or code < 200 or code in (204, 304)
        head, chunked, keep_alive, length = render_head(
            code,
            headers,
            date_line,
            keep_alive,
            cycle.http10,
            None if body is None or no_body else len(body),
        )
    except Exception as exc:
        if isinstance(exc, ResponseHeadError):
            logger.error("Refusing to send the response to %s: %s", environ["RAW_URI"], exc)
        else:
            logger.exception("Error preparing the response to %s", environ["RAW_URI"])
        close_iter(stream)
        data, keep_alive = internal_error(
            environ, date_line, keep_alive=keep_alive, http10=cycle.http10
        )
        return data, None, keep_alive
    if body is not None and not no_body and length is not None and length < len(body):
        logger.error(
            "Refusing to send the response to %s: its body is %d bytes, longer than its "
            "Content-Length of %d",
            environ["RAW_URI"],
            len(body),
            length,
        )
        data, _ = internal_error(environ, date_line, keep_alive=False, http10=cycle.http10)
        return data, None, False
    if no_body:
        close_iter(stream)
        return head, None, keep_alive
    if body is None:
        return StreamJob(head, stream, chunked, length, keep_alive)
    if length != len(body):
        keep_alive = False  # a Content-Length longer than the body: the client sees it end
    if len(body) < 65536:
        return head + body, None, keep_alive
    return head, body, keep_alive
