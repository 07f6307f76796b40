"""One HTTP/2 stream's request and response: :class:`H2State`, and the header translations.

A stream's request headers become a :pep:`3333` environ with the one builder every protocol
uses (:func:`kyoukai.wsgi.build_environ`): ``:authority`` becomes ``Host``, ``Cookie`` crumbs
are joined with ``"; "`` (RFC 9113 section 8.2.3) and ``SERVER_PROTOCOL`` is ``HTTP/2``. A
response's headers go out lowercased, without the connection-specific fields HTTP/2 forbids,
each checked with :func:`kyoukai._head.check_header` (h2 itself lets CR, LF and NUL through),
with the server's ``Date`` and ``Server``.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from h2.errors import ErrorCodes

from kyoukai._body import BODY_ENVIRON_KEY, BodyInput
from kyoukai._head import check_header
from kyoukai._version import SERVER_HEADER
from kyoukai.backends._decode import ContentDecoder
from kyoukai.backends._inbound import BodyStream
from kyoukai.wsgi import build_environ

if TYPE_CHECKING:
    from werkzeug.wrappers import Response

    from kyoukai.backends.http2 import H2KyoukaiProtocol

__all__ = [
    "H2State",
    "create_wsgi_environment",
    "get_header",
    "request_environ",
    "response_headers",
]

logger = logging.getLogger("kyoukai")

Header = tuple[bytes, bytes]

#: Fields that only mean something on one HTTP/1.1 hop (RFC 9113 section 8.2.2).
_HOP_BY_HOP = frozenset(
    (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade")
)
_SERVER = (b"server", SERVER_HEADER.encode("latin-1"))
#: Response header pairs already checked and lowercased, as h2 wants them.
_CHECKED: dict[tuple[str, str], Header] = {}
_CACHE_CAP = 4096
_STATUS = {code: (b":status", str(code).encode("ascii")) for code in range(100, 600)}


def get_header(headers: Iterable[tuple[Any, Any]], name: str) -> str | None:
    """Return the value of the header ``name`` (any case) in ``headers``, or ``None``.

    :param headers: ``(name, value)`` pairs, as bytes or text.
    :param name: The header's name.
    """
    wanted = name.lower()
    for key, value in headers:
        text = key.decode("latin-1") if isinstance(key, bytes) else key
        if text.lower() == wanted:
            return value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return None


def request_environ(base: dict[str, Any], headers: Iterable[Header]) -> dict[str, Any]:
    """Build the environ of a request from its HTTP/2 header list (``wsgi.input`` apart).

    h2 has already refused what RFC 9113 section 8.3 forbids (a missing or repeated
    pseudo-header, an uppercase name, a connection-specific field).

    :param base: The connection's constant keys; copied, not changed.
    :param headers: The decoded header list, pseudo-headers first.
    """
    method = path = authority = ""
    fields: list[Header] = []
    append = fields.append
    for name, value in headers:
        if name[:1] == b":":
            if name == b":method":
                method = value.decode("latin-1")
            elif name == b":path":
                path = value.decode("latin-1")
            elif name == b":authority":
                authority = value.decode("latin-1")
        else:
            append((name, value))
    environ = build_environ(base, method, "HTTP/2", path, fields)
    if authority:
        environ["HTTP_HOST"] = authority
    return environ


def create_wsgi_environment(r: H2State) -> dict[str, Any]:
    """Create the WSGI environ of the request a stream carries, with its body as the server
    gives it to the application (:meth:`H2State.attach_body`).

    :param r: The stream's state.
    """
    environ = request_environ(r.protocol.base_environ, r.headers)
    r.attach_body(environ)
    return environ


def response_headers(
    code: int, headers: Iterable[tuple[str, str]], date: bytes, length: int | None
) -> list[Header]:
    """The header list of a response for h2's ``send_headers``, checked and lowercased.

    :param date: The ``Date`` value.
    :param length: The body's length when it is in memory; it is the ``content-length``.
    :raises ValueError: If a header is unsafe to send (see :func:`check_header`).
    """
    result = [_STATUS.get(code) or (b":status", str(code).encode("ascii"))]
    has_date = has_server = False
    checked = _CHECKED
    for pair in headers:
        header = checked.get(pair)
        if header is None:
            name, value = pair
            check_header(name, value)
            header = (name.lower().encode("latin-1"), value.encode("latin-1"))
            if len(checked) >= _CACHE_CAP:
                checked.clear()
            checked[pair] = header
        key = header[0]
        if key in _HOP_BY_HOP or (key == b"content-length" and (length is not None or code == 204)):
            continue  # RFC 9110 section 8.6: no Content-Length on a 204
        if key == b"date":
            has_date = True
        elif key == b"server":
            has_server = True
        result.append(header)
    if length is not None and code != 204 and code != 304:
        result.append((b"content-length", str(length).encode("ascii")))
    if not has_date:
        result.append((b"date", date))
    if not has_server:
        result.append(_SERVER)
    return result


class H2State:
    """What the server holds for one HTTP/2 stream: its request, body and response.

    A request body streams to the handler through :attr:`body`, a
    :class:`~kyoukai.backends._inbound.BodyStream` fed with each DATA frame; the stream is its
    owner, and hands its pauses on to the connection, which withholds the stream's window
    meanwhile. :meth:`insert_data`, :meth:`get_chunk`, :meth:`read` and :meth:`read_async`
    are the spec's names for feeding and reading that body.

    :param headers: The request's decoded header list.
    :param stream_id: The stream's id.
    :param protocol: The connection the stream belongs to.
    """

    __slots__ = (
        "_held",
        "body",
        "complete",
        "deadline",
        "declared",
        "environ",
        "headers",
        "owed",
        "protocol",
        "response",
        "response_header_list",
        "response_status",
        "stream_id",
        "task",
        "window",
    )

    def __init__(self, headers: list[Header], stream_id: int, protocol: H2KyoukaiProtocol) -> None:
        self.headers = headers
        self.stream_id = stream_id
        self.protocol = protocol
        #: The request's environ.
        self.environ: dict[str, Any] = {}
        #: Whether the client ended the stream (the whole body is in).
        self.complete = False
        #: The request body arriving, or ``None`` for a request without one.
        self.body: BodyStream | None = None
        #: The body's declared ``content-length`` on the wire, or ``None``.
        self.declared: int | None = None
        #: Flow-controlled bytes received and not yet handed back in the stream's window.
        self.owed = 0
        #: The handler's task.
        self.task: asyncio.Task[None] | None = None
        #: Set when the client opens the send window this stream waits for.
        self.window: asyncio.Event | None = None
        #: Loop time by which the stream must make progress (0: none).
        self.deadline = 0.0
        #: The application's response, once the handler has returned.
        self.response: Response | None = None
        #: What :meth:`start_response` received.
        self.response_status = ""
        self.response_header_list: list[tuple[str, str]] = []
        self._held = b""

    # -- what the connection calls; a stream carrying a WebSocket (._h2ws) differs -----------

    def wake(self) -> None:
        """The client opened a flow-control window: wake the response waiting for it."""
        if self.window is not None:
            self.window.set()

    def cancel(self) -> None:
        """The stream is reset or the connection is gone: fail its body (the handler's client
        went away), cancel the handler, wake writers."""
        if self.body is not None:
            self.body.fail(None)
        task = self.task
        if task is not None and not task.done():
            task.cancel()
        self.wake()

    def expired(self, now: float) -> None:
        """The stream's :attr:`deadline` passed: a client that stopped reading the response
        is reset (``CANCEL``), a body that stopped arriving is answered **408**."""
        protocol = self.protocol
        if not protocol._body_late(self):
            logger.debug("Resetting stream %d: the client stopped reading", self.stream_id)
            protocol._reset(self, ErrorCodes.CANCEL)

    # -- the request body -----------------------------------------------------------------------

    def open_body(self, decoder: ContentDecoder | None) -> BodyStream:
        """Make the stream's :attr:`body`, bounded by the server's limits.

        :param decoder: Decodes the body's ``Content-Encoding``, if it has one.
        """
        settings = self.protocol._settings
        length = None if decoder is not None else self.declared
        self.body = BodyStream(
            self,
            length,
            settings.max_body_size,
            decoder,
            expect=False,
            buffer_size=settings.body_buffer_size,
        )
        return self.body

    def attach_body(self, environ: dict[str, Any]) -> None:
        """Give ``environ`` the stream's body: a channel to stream it, or an empty input."""
        if self.body is None:
            environ["wsgi.input"] = io.BytesIO()
        else:
            environ[BODY_ENVIRON_KEY] = self.body
            environ["wsgi.input"] = BodyInput(self.body)

    def body_wanted(self, stream: BodyStream) -> None:
        """The application reads the body: HTTP/2 has nothing to ask the client for."""

    def body_flow(self, stream: BodyStream, paused: bool) -> None:
        """The handler leaves its body unread (``paused``) or reads it again."""
        self.protocol.body_flow(self, paused)

    def _channel(self) -> BodyStream | None:
        """The body, made on first use unless the client ended the stream without one."""
        if self.body is None and not self.complete:
            return self.open_body(None)
        return self.body

    def insert_data(self, data: bytes) -> None:
        """Add a piece of the request body, as it came off the stream."""
        body = self._channel()
        if body is not None:
            body.feed(data)

    def end(self) -> None:
        """The client ended the stream: the body is complete."""
        self.complete = True
        if self.body is not None:
            self.body.end()

    def get_chunk(self) -> bytes:
        """Take the next unread piece of the body (``b""`` if none has arrived).

        :raises werkzeug.exceptions.HTTPException: If the body failed (see
            :meth:`~kyoukai._body.BodyChannel.receive`).
        """
        held, self._held = self._held, b""
        body = self._channel()
        if held or body is None:
            return held
        return body.take()

    def read(self, size: int = -1) -> bytes:
        """Read up to ``size`` bytes (all with ``-1``) of the body received and not yet read."""
        parts: list[bytes] = []
        count = 0
        while size < 0 or count < size:
            chunk = self.get_chunk()
            if not chunk:
                break
            parts.append(chunk)
            count += len(chunk)
        data = b"".join(parts)
        if 0 <= size < len(data):
            data, self._held = data[:size], data[size:]
        return data

    async def read_async(self, to_end: bool = True) -> bytes:
        """Wait for the body: all of it (``to_end``), or the next piece.

        :param to_end: Read until the client ends the stream; else return the next piece.
        :return: The unread body (``to_end``) or the next piece; ``b""`` at the end.
        """
        held, self._held = self._held, b""
        body = self._channel()
        if body is None or (held and not to_end):
            return held
        if not to_end:
            return await body.receive()
        parts = [held]
        while chunk := await body.receive():
            parts.append(chunk)
        return b"".join(parts)

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> None:
        """The WSGI ``start_response`` callable: keep the status and headers to send.

        :param status: The status line, e.g. ``"200 OK"``.
        :param headers: The response's ``(name, value)`` pairs.
        :param exc_info: Accepted as WSGI passes it; the server logs errors itself.
        """
        self.response_status = status
        self.response_header_list = list(headers)

    def get_response_headers(self) -> list[Header]:
        """The header list :meth:`start_response` received, ready for h2's ``send_headers``.

        :raises ValueError: If a header is unsafe to send, or nothing was started.
        """
        if not self.response_status:
            raise ValueError("start_response() has not been called on this stream")
        code = int(self.response_status.split(" ", 1)[0])
        date = self.protocol.date_value()
        return response_headers(code, self.response_header_list, date, None)
