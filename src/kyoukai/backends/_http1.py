"""I/O-free pieces of the HTTP/1.1 server: framing rules, limits, response heads, decoding.

Nothing here imports asyncio or touches a transport: every function takes values and returns
values (or raises :class:`ProtocolError`), so each rule can be tested with bytes alone.
The protocol in :mod:`kyoukai.backends.httptools_` calls these on its hot path, which is why
the tables below are computed once at import.

Each way a request can be refused maps to exactly one status (:data:`STATUS_FOR`), and every
refusal closes the connection: once framing is in doubt, the next byte cannot be trusted to
start a new request.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from email.utils import formatdate
from http import HTTPStatus

from werkzeug.urls import iri_to_uri

from kyoukai.wsgi import SERVER_HEADER

__all__ = [
    "STATUS_FOR",
    "ContentDecoder",
    "ProtocolError",
    "ResponseHeadError",
    "environ_key",
    "error_response",
    "http_date_line",
    "parse_content_length",
    "render_head",
    "status_line",
]

_PHRASES = {status.value: status.phrase for status in HTTPStatus}

#: ``HTTP/1.1 <code> <phrase>\r\n`` for every registered status, built once.
STATUS_LINES: dict[int, bytes] = {
    code: f"HTTP/1.1 {code} {phrase}\r\n".encode("ascii") for code, phrase in _PHRASES.items()
}

#: Every refusal the server makes, and the one status it answers with.
STATUS_FOR: dict[str, int] = {
    "malformed request": 400,
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
}

_SERVER_LINE = f"Server: {SERVER_HEADER}\r\n"

# Response header names render_head treats specially, by lower-case name; the usual
# spellings are added too so that the common case needs no str.lower().
_OTHER, _CONTENT_LENGTH, _HOP_BY_HOP, _SERVER, _DATE, _LOCATION = range(6)
_KINDS = {
    "content-length": _CONTENT_LENGTH,
    "transfer-encoding": _HOP_BY_HOP,
    "connection": _HOP_BY_HOP,
    "server": _SERVER,
    "date": _DATE,
    "location": _LOCATION,
    "content-location": _LOCATION,
}
_KINDS.update({name.title(): kind for name, kind in _KINDS.items()})
_KINDS.update({"Content-Type": _OTHER, "Set-Cookie": _OTHER, "Cache-Control": _OTHER})
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALID_NAMES: set[str] = set()
_ENVIRON_KEYS: dict[bytes, str] = {}
_CACHE_CAP = 2048


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


class ResponseHeadError(ValueError):
    """The application's response cannot be written safely (CR, LF or NUL in a header)."""


def status_line(code: int) -> bytes:
    """Return the status line for ``code``, including its CRLF."""
    line = STATUS_LINES.get(code)
    if line is None:
        if not 100 <= code <= 999:
            raise ResponseHeadError(f"status code {code} is not three digits")
        line = f"HTTP/1.1 {code} Unknown\r\n".encode("ascii")
    return line


def http_date_line(timestamp: float | None = None) -> bytes:
    """Return a ``Date`` header line for ``timestamp`` (default: now), CRLF included."""
    return f"Date: {formatdate(timestamp, usegmt=True)}\r\n".encode("ascii")


def environ_key(name: bytes) -> str:
    """Map a request header name to its WSGI environ key (``Content-Type`` → ``CONTENT_TYPE``).

    Results are cached, because clients repeat the same few spellings on every request.
    """
    key = _ENVIRON_KEYS.get(name)
    if key is None:
        key = name.decode("latin-1").upper().replace("-", "_")
        if key != "CONTENT_TYPE" and key != "CONTENT_LENGTH":
            key = "HTTP_" + key
        if len(_ENVIRON_KEYS) >= _CACHE_CAP:
            _ENVIRON_KEYS.clear()
        _ENVIRON_KEYS[name] = key
    return key


def parse_content_length(value: str) -> int:
    """Parse a ``Content-Length`` value: ASCII digits only (no sign, no spaces, no list).

    :raises ProtocolError: 400 for anything else.
    """
    if not value.isdigit() or not value.isascii():
        raise ProtocolError("malformed request", "invalid Content-Length")
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


class _Inflater:
    """One ``gzip`` or ``deflate`` stage whose output never exceeds a byte budget."""

    __slots__ = ("_gzip", "_obj", "_pending")

    def __init__(self, coding: str) -> None:
        self._gzip = coding != "deflate"
        self._obj: zlib._Decompress | None = zlib.decompressobj(31) if self._gzip else None
        self._pending = b""

    def _start_deflate(self, data: bytes) -> bytes:
        # "deflate" should be zlib-wrapped (RFC 9110 section 8.4.1.2), but some clients send
        # a raw deflate stream; the two-byte zlib header tells them apart.
        data = self._pending + data
        if len(data) < 2:
            self._pending = data
            return b""
        self._pending = b""
        wrapped = data[0] & 0x0F == 8 and ((data[0] << 8) | data[1]) % 31 == 0
        self._obj = zlib.decompressobj(15 if wrapped else -15)
        return data

    def feed(self, data: bytes, budget: int) -> bytes:
        """Decode ``data``, producing at most ``budget + 1`` bytes (one more means too big)."""
        if self._obj is None:
            data = self._start_deflate(data)
            if self._obj is None:
                return b""
        obj = self._obj
        out: list[bytes] = []
        room = budget + 1
        try:
            while data:
                chunk = obj.decompress(data, room)
                out.append(chunk)
                room -= len(chunk)
                if room <= 0:
                    break
                if obj.eof:
                    data = obj.unused_data
                    if data and self._gzip:
                        # A multi-member gzip body: each member is decoded under the budget.
                        obj = self._obj = zlib.decompressobj(31)
                    elif data:
                        raise ProtocolError("malformed request", "data after deflate stream")
                else:
                    data = obj.unconsumed_tail
        except zlib.error as exc:
            raise ProtocolError("malformed request", f"undecodable body: {exc}") from None
        return b"".join(out)

    @property
    def complete(self) -> bool:
        return self._obj is not None and self._obj.eof


class ContentDecoder:
    """Decodes a request body's ``Content-Encoding`` chain with a bound on every stage's output.

    A 334-byte ``gzip(gzip(...))`` body can expand to 100 MiB, so output is produced
    incrementally with ``max_length`` and each stage stops one byte past ``limit``
    (RELIABILITY.md, decompression bombs).

    :param codings: The ``Content-Encoding`` value, e.g. ``"gzip"`` or ``"deflate, gzip"``.
    :param limit: The largest decoded body allowed.
    :param max_codings: The most stacked codings accepted.
    :raises ProtocolError: 415 for an unknown coding or too many codings.
    """

    __slots__ = ("_limit", "_produced", "_stages")

    def __init__(self, codings: str, limit: int, max_codings: int) -> None:
        names = [c.strip().lower() for c in codings.split(",")]
        names = [n for n in names if n and n != "identity"]
        if len(names) > max_codings:
            raise ProtocolError("unsupported content coding", f"more than {max_codings} codings")
        for name in names:
            if name not in ("gzip", "x-gzip", "deflate"):
                raise ProtocolError("unsupported content coding", name)
        # Codings are listed in the order they were applied, so decoding runs backwards.
        self._stages = [_Inflater(name) for name in reversed(names)]
        self._limit = limit
        self._produced = 0

    @property
    def active(self) -> bool:
        """False when every coding was ``identity``: the body passes through untouched."""
        return bool(self._stages)

    def feed(self, data: bytes) -> bytes:
        """Decode the next piece of the body.

        :raises ProtocolError: 413 once the decoded body passes the limit, 400 for bad data.
        """
        budget = self._limit - self._produced
        for stage in self._stages:
            data = stage.feed(data, budget)
            if len(data) > budget:
                raise ProtocolError("decoded body too large")
        self._produced += len(data)
        return data

    def finish(self) -> None:
        """Check that every coded stream ended; a truncated body is a 400."""
        for stage in self._stages:
            if not stage.complete:
                raise ProtocolError("malformed request", "truncated compressed body")


def render_head(
    code: int,
    headers: Iterable[tuple[str, str]],
    date_line: bytes,
    *,
    keep_alive: bool,
    http10: bool,
    body_length: int | None,
) -> tuple[bytes, bool, bool, int | None]:
    """Serialise a response head and decide how its body is framed.

    ``Server`` and ``Date`` are added unless the application set them; hop-by-hop
    ``Transfer-Encoding`` and ``Connection`` are the server's to decide; ``Location`` and
    ``Content-Location`` are made ASCII-safe as Werkzeug would. A body of unknown length
    is chunked on HTTP/1.1 and ends with the connection on HTTP/1.0. 1xx and 204 responses carry
    no ``Content-Length``. Every name must be a token and no value may hold CR, LF or NUL, which
    is checked before a byte is written so a handler cannot split the response.

    :param code: The status code.
    :param headers: The application's ``(name, value)`` pairs.
    :param date_line: The cached ``Date`` line.
    :param keep_alive: Whether the connection may stay open after this response.
    :param http10: Whether the request was HTTP/1.0.
    :param body_length: The body's length if known, else ``None`` (a stream).
    :return: ``(head, chunked, keep_alive, content_length)``.
    :raises ResponseHeadError: If a header is unsafe or ``Content-Length`` is not a number.
    """
    parts: list[str] = []
    count = 0
    content_length: int | None = None
    has_server = has_date = False
    for name, value in headers:
        kind = _KINDS.get(name)
        if kind is None:
            kind = _KINDS.get(name.lower(), _OTHER)
        if kind:
            if kind == _CONTENT_LENGTH:
                if not value.isdigit():
                    raise ResponseHeadError(f"Content-Length {value!r} is not a number")
                content_length = int(value)
                continue
            if kind == _HOP_BY_HOP:
                if name.lower() == "connection" and "close" in value.lower():
                    keep_alive = False
                continue
            if kind == _SERVER:
                has_server = True
            elif kind == _DATE:
                has_date = True
            elif kind == _LOCATION:
                value = iri_to_uri(value)
        if name not in _VALID_NAMES:
            if _TOKEN.fullmatch(name) is None:
                raise ResponseHeadError(f"invalid header name {name!r}")
            if len(_VALID_NAMES) < _CACHE_CAP:
                _VALID_NAMES.add(name)
        parts.append(f"{name}: {value}\r\n")
        count += 1
    text = "".join(parts)
    if text.count("\n") != count or text.count("\r") != count or "\0" in text:
        raise ResponseHeadError("a header value contains CR, LF or NUL")

    chunked = False
    if code < 200 or code == 204:
        content_length = None
    elif code == 304:
        pass
    elif content_length is None and body_length is not None:
        content_length = body_length
    if content_length is not None:
        text += f"Content-Length: {content_length}\r\n"
    elif code >= 200 and code not in (204, 304):
        if http10:
            keep_alive = False
        else:
            chunked = True
            text += "Transfer-Encoding: chunked\r\n"
    if not keep_alive:
        text += "Connection: close\r\n"
    elif http10:
        text += "Connection: keep-alive\r\n"
    if not has_server:
        text += _SERVER_LINE
    try:
        head = status_line(code) + text.encode("latin-1")
    except UnicodeEncodeError:
        raise ResponseHeadError("a header is not latin-1 text") from None
    if not has_date:
        head += date_line
    return head + b"\r\n", chunked, keep_alive, content_length


def error_response(status: int, date_line: bytes, detail: str = "") -> bytes:
    """A complete plain-text response for a refused request; it always closes the connection."""
    phrase = _PHRASES.get(status, "Error")
    body = f"{status} {phrase}{': ' + detail if detail else ''}\n".encode("latin-1", "replace")
    head = (
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n{_SERVER_LINE}"
    ).encode("ascii")
    return status_line(status) + head + date_line + b"\r\n" + body
