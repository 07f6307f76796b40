"""HTTP/1.1 response heads: the one serialiser every writer of HTTP/1.1 bytes uses.

The built-in server, :func:`kyoukai.wsgi.get_formatted_response` and the server's refusals all
render their status line and headers here, so the same rules hold everywhere: header names are
tokens, values hold no control character, ``Server`` and ``Date`` are added when missing, and
the framing (``Content-Length``, chunked, ``Connection``) follows from the request and the
body. Like the rest of the bridge it does no I/O and imports no asyncio.

Rendered heads are cached whole, by status, framing, ``Date`` line and header list: a server
answers the same few heads over and over, and the cache turns their rendering into one
dictionary lookup.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any

from werkzeug.exceptions import InternalServerError
from werkzeug.urls import iri_to_uri

from kyoukai._version import SERVER_HEADER

__all__ = [
    "STATUS_LINES",
    "ResponseHeadError",
    "check_header",
    "error_response",
    "http_date_line",
    "internal_error",
    "render_head",
    "status_line",
]

_PHRASES = {status.value: status.phrase for status in HTTPStatus}

#: ``HTTP/1.1 <code> <phrase>\r\n`` for every registered status, built once.
STATUS_LINES: dict[int, bytes] = {
    code: f"HTTP/1.1 {code} {phrase}\r\n".encode("ascii") for code, phrase in _PHRASES.items()
}

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 section 5.5: a field value is visible characters, obs-text, SP and HTAB. Every
# other control character is refused: CR, LF and NUL split or truncate the head, and the rest
# (BEL, DEL, ...) are treated as errors by clients and proxies.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_SERVER_LINE = f"Server: {SERVER_HEADER}\r\n".encode("latin-1")

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
#: Encoded lines of plain response headers already checked, by ``(name, value)``.
_HEADER_LINES: dict[tuple[str, str], bytes] = {}
#: Heads rendered before, by status, framing, ``Date`` line and header list.
_HEADS: dict[tuple[Any, ...], tuple[bytes, bool, bool, int | None]] = {}
_CACHE_CAP = 2048
#: Longer heads are rendered each time, so that the head cache stays within a few MiB.
_CACHED_HEAD_MAX = 1024


class ResponseHeadError(ValueError):
    """The application's response cannot be written safely (a bad header or status)."""


def check_header(name: str, value: str) -> None:
    """Refuse a response header that could split the response or corrupt the head.

    Names must be RFC 9110 tokens; values may hold visible characters, obs-text, spaces and
    tabs only (RFC 9110 section 5.5). Werkzeug only stops CR and LF in values, and only when
    they are assigned through its API.

    :raises ValueError: If the header is unsafe to write.
    """
    if _TOKEN.fullmatch(name) is None:
        raise ValueError(f"invalid response header name {name!r}")
    if _CONTROL.search(value) is not None:
        raise ValueError(f"response header {name!r} contains a control character: {value!r}")


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


def render_head(
    code: int,
    headers: Iterable[tuple[str, str]],
    date_line: bytes,
    keep_alive: bool,
    http10: bool,
    body_length: int | None,
) -> tuple[bytes, bool, bool, int | None]:
    """Serialise a response head and decide how its body is framed.

    ``Server`` and ``Date`` are added unless the application set them; hop-by-hop
    ``Transfer-Encoding`` and ``Connection`` are the server's to decide; ``Location`` and
    ``Content-Location`` are made ASCII-safe as Werkzeug would. A body of unknown length
    is chunked on HTTP/1.1 and ends with the connection on HTTP/1.0. 1xx and 204 responses carry
    no ``Content-Length``. Every header is checked (:func:`check_header`) before a byte is
    written, so a handler cannot split the response.

    :param code: The status code.
    :param headers: The application's ``(name, value)`` pairs.
    :param date_line: The cached ``Date`` line.
    :param keep_alive: Whether the connection may stay open after this response.
    :param http10: Whether the request was HTTP/1.0.
    :param body_length: The body's length if known, else ``None`` (a stream).
    :return: ``(head, chunked, keep_alive, content_length)``.
    :raises ResponseHeadError: If a header is unsafe or ``Content-Length`` is not a number.
    """
    key = (code, keep_alive, http10, body_length, date_line, *headers)
    rendered = _HEADS.get(key)
    if rendered is None:
        rendered = _render_head(code, key[5:], date_line, keep_alive, http10, body_length)
        if len(rendered[0]) <= _CACHED_HEAD_MAX:
            if len(_HEADS) >= _CACHE_CAP:
                # Heads of past seconds, and per-response values (cookies, ETags), must not
                # grow it without bound.
                _HEADS.clear()
            _HEADS[key] = rendered
    return rendered


def _render_head(
    code: int,
    headers: tuple[Any, ...],
    date_line: bytes,
    keep_alive: bool,
    http10: bool,
    body_length: int | None,
) -> tuple[bytes, bool, bool, int | None]:
    """:func:`render_head` without its cache (``headers`` as the tuple of its cache key)."""
    parts: list[bytes] = [status_line(code)]
    content_length: int | None = None
    has_server = has_date = False
    lines = _HEADER_LINES
    contentless = code < 200 or code == 204
    for name, value in headers:
        if contentless and name.lower() == "content-type":
            continue  # RFC 9110 section 15.3.5: a 204 has no content to describe
        line = lines.get((name, value))
        if line is not None:  # a plain header seen before: checked and encoded already
            parts.append(line)
            continue
        kind = _KINDS.get(name)
        if kind is None:
            kind = _KINDS.get(name.lower(), _OTHER)
        if kind:
            if kind == _CONTENT_LENGTH:
                if not value.isdigit() or not value.isascii():
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
        line = _header_line(name, value)
        if not kind:
            if len(lines) >= _CACHE_CAP:
                lines.clear()  # per-response values (cookies, ETags) must not crowd it out
            lines[(name, value)] = line
        parts.append(line)

    chunked = False
    if code < 200 or code == 204:
        content_length = None
    elif code == 304:
        pass
    elif content_length is None and body_length is not None:
        content_length = body_length
    if content_length is not None:
        parts.append(b"Content-Length: %d\r\n" % content_length)
    elif code >= 200 and code not in (204, 304):
        if http10:
            keep_alive = False
        else:
            chunked = True
            parts.append(b"Transfer-Encoding: chunked\r\n")
    if not keep_alive:
        parts.append(b"Connection: close\r\n")
    elif http10:
        parts.append(b"Connection: keep-alive\r\n")
    if not has_server:
        parts.append(_SERVER_LINE)
    if not has_date:
        parts.append(date_line)
    parts.append(b"\r\n")
    return b"".join(parts), chunked, keep_alive, content_length


def _header_line(name: str, value: str) -> bytes:
    """``name: value`` and CRLF as bytes, refusing what could split or corrupt the head."""
    try:
        check_header(name, value)
        return f"{name}: {value}\r\n".encode("latin-1")
    except UnicodeEncodeError:
        raise ResponseHeadError("a header is not latin-1 text") from None
    except ValueError as exc:
        raise ResponseHeadError(str(exc)) from None


def error_response(status: int, date_line: bytes, detail: str = "") -> bytes:
    """A complete plain-text response for a refused request; it always closes the connection."""
    phrase = _PHRASES.get(status, "Error")
    body = f"{status} {phrase}{': ' + detail if detail else ''}\n".encode("latin-1", "replace")
    headers = [("Content-Type", "text/plain; charset=utf-8")]
    head, _, _, _ = render_head(status, headers, date_line, False, False, len(body))
    return head + body


def internal_error(
    environ: dict[str, Any], date_line: bytes, *, keep_alive: bool, http10: bool
) -> tuple[bytes, bool]:
    """The bytes of a plain 500 response, for when the application's cannot be written.

    :return: ``(data, keep_alive)``.
    """
    error = InternalServerError().get_response(environ)
    body = error.get_data()
    head, _, keep_alive, _ = render_head(
        500,
        error.get_wsgi_headers(environ).to_wsgi_list(),
        date_line,
        keep_alive=keep_alive,
        http10=http10,
        body_length=len(body),
    )
    return (head if environ["REQUEST_METHOD"] == "HEAD" else head + body), keep_alive
