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

from collections.abc import Callable, Iterable
from email.utils import formatdate
from functools import partial
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_to_bytes

from werkzeug.datastructures import EnvironHeaders, Headers
from werkzeug.exceptions import InternalServerError
from werkzeug.urls import iri_to_uri
from werkzeug.wrappers import Request, Response

from kyoukai.wsgi import SERVER_HEADER, check_header

__all__ = [
    "STATUS_FOR",
    "ProtocolError",
    "ResponseHeadError",
    "build_environ",
    "close_iter",
    "environ_key",
    "error_response",
    "http_date_line",
    "internal_error",
    "parse_content_length",
    "render_head",
    "request_factory",
    "response_parts",
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
_ENVIRON_KEYS: dict[bytes, str] = {}
#: ``SERVER_PROTOCOL`` for each HTTP version the server speaks, as httptools reports it.
_PROTOCOLS = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}
#: Encoded lines of plain response headers already checked, by ``(name, value)``.
_HEADER_LINES: dict[tuple[str, str], bytes] = {}
#: Heads rendered before, by status, framing, ``Date`` line and header list.
_HEADS: dict[tuple[Any, ...], tuple[bytes, bool, bool, int | None]] = {}
_CACHE_CAP = 2048
#: Longer heads are rendered each time, so that the head cache stays within a few MiB.
_CACHED_HEAD_MAX = 1024


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


def build_environ(
    base: dict[str, Any],
    method: str,
    version: str,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
) -> tuple[dict[str, Any], bool, int]:
    """Build a request's environ from its parsed head and apply the framing rules.

    This is where request smuggling is closed: only HTTP/1.0 and 1.1, exactly one ``Host`` on
    HTTP/1.1 (RFC 9112 section 3.2), one ``Content-Length`` of plain digits, and no transfer
    coding but a lone ``chunked`` on HTTP/1.1. Repeated fields are joined with ``,`` (``; ``
    for ``Cookie``).

    :param base: The connection's constant keys (addresses, ``wsgi.*``); copied, not changed.
    :param method: The request method.
    :param version: ``"1.0"`` or ``"1.1"`` as the parser reports it.
    :param target: The request target as received.
    :param headers: The header fields in order, as received.
    :return: ``(environ, chunked, declared_length)``.
    :raises ProtocolError: 400, 501 or 505 as the rules say.
    """
    protocol = _PROTOCOLS.get(version)
    if protocol is None:
        if version.startswith("0."):
            raise ProtocolError("malformed request", f"HTTP/{version}")
        raise ProtocolError("unsupported HTTP version", f"HTTP/{version}")
    path = target.decode("latin-1")
    if path[:1] != "/":
        path = origin_form(path, method)
    environ = base.copy()
    environ["REQUEST_METHOD"] = method
    environ["REQUEST_URI"] = environ["RAW_URI"] = path
    if "?" in path:
        path, _, environ["QUERY_STRING"] = path.partition("?")
    else:
        environ["QUERY_STRING"] = ""
    environ["PATH_INFO"] = unquote_to_bytes(path).decode("latin-1") if "%" in path else path
    environ["SERVER_PROTOCOL"] = protocol
    keys = _ENVIRON_KEYS
    for name, raw in headers:
        key = keys.get(name) or environ_key(name)
        value = raw.decode("latin-1")
        if key in environ:
            if key == "HTTP_HOST" or key == "CONTENT_LENGTH":
                raise ProtocolError("malformed request", f"repeated {key}")
            environ[key] += ("; " if key == "HTTP_COOKIE" else ",") + value
        else:
            environ[key] = value
    if "HTTP_HOST" not in environ and version == "1.1":
        raise ProtocolError("malformed request", "HTTP/1.1 request without Host")
    transfer = environ.get("HTTP_TRANSFER_ENCODING")
    if transfer is not None:
        check_transfer_encoding(transfer, version)
    length = environ.get("CONTENT_LENGTH")
    declared = parse_content_length(length) if length is not None else 0
    return environ, transfer is not None, declared


RequestFactory = Callable[[dict[str, Any], "tuple[str, int | None] | None"], Request]


def request_factory(request_class: type[Request]) -> RequestFactory:
    """How the server makes ``request_class`` objects: ``make(environ, server)``.

    Werkzeug's constructor re-reads and re-decodes what :func:`build_environ` has just
    written, and links the request from its environ: a reference cycle per request, left for
    the cyclic garbage collector, whose full passes stall every connection for milliseconds
    under load. Classes that keep Werkzeug's ``__init__`` are filled in directly from the
    environ and the connection's ``(host, port)``: the same object as
    ``request_class(environ, populate_request=False)`` (checked when this module is imported;
    the constructor is used if Werkzeug's internals ever differ), at a third of the cost.
    Other classes get their own constructor, and the link is cut after it.
    """
    if request_class.__init__ is Request.__init__ and _FILLED_REQUESTS:
        return partial(_filled_request, request_class)

    def construct(environ: dict[str, Any], server: tuple[str, int | None] | None) -> Request:
        request = request_class(environ)
        environ.pop("werkzeug.request", None)
        return request

    return construct


_new = object.__new__


def _filled_request(
    request_class: type[Request], environ: dict[str, Any], server: tuple[str, int | None] | None
) -> Request:
    path = environ["PATH_INFO"]
    if environ["SCRIPT_NAME"] or path[:1] != "/" or path[1:2] == "/" or not path.isascii():
        # Werkzeug normalises these (a root path, "*", "//", non-ASCII): let it.
        return request_class(environ, populate_request=False)
    request = _new(request_class)
    request.method = environ["REQUEST_METHOD"].upper()
    request.scheme = environ["wsgi.url_scheme"]
    request.server = server
    request.root_path = ""
    request.path = path
    request.query_string = environ["QUERY_STRING"].encode("latin-1")
    headers = _new(EnvironHeaders)
    headers._list = []
    headers.environ = environ
    request.headers = headers
    request.remote_addr = environ.get("REMOTE_ADDR")
    request.environ = environ
    request.shallow = False
    return request


def _same_request(first: Request, second: Request) -> bool:
    return (
        {**vars(first), "headers": None} == {**vars(second), "headers": None}
        and type(first.headers) is type(second.headers)
        and vars(first.headers) == vars(second.headers)
    )


_SAMPLE_ENVIRON = {
    "REQUEST_METHOD": "GET",
    "SCRIPT_NAME": "",
    "PATH_INFO": "/a/b",
    "QUERY_STRING": "x=1",
    "SERVER_NAME": "127.0.0.1",
    "SERVER_PORT": "80",
    "REMOTE_ADDR": "127.0.0.2",
    "wsgi.url_scheme": "http",
    "HTTP_HOST": "example.com",
}
_FILLED_REQUESTS = _same_request(
    _filled_request(Request, _SAMPLE_ENVIRON, ("127.0.0.1", 80)),
    Request(_SAMPLE_ENVIRON, populate_request=False),
)


def origin_form(target: str, method: str) -> str:
    """Reduce a request target that is not a path to one, or refuse it.

    ``OPTIONS *`` stays as it is; the absolute form (RFC 9112 section 3.2.2, as sent to
    proxies) keeps what follows the authority.

    :raises ProtocolError: 400 for anything else (authority form, garbage).
    """
    if target == "*" and method == "OPTIONS":
        return target
    scheme, sep, rest = target.partition("://")
    if sep and scheme.lower() in ("http", "https"):
        slash = rest.find("/")
        return rest[slash:] if slash >= 0 else "/"
    raise ProtocolError("malformed request", "request target is not a path")


def response_parts(
    response: Response, environ: dict[str, Any], code: int
) -> tuple[Any, bytes | None, Any]:
    """Take a response apart for writing: its headers, and its body in memory or as a stream.

    A body of bytes in memory (the common case) skips Werkzeug's ``get_wsgi_response``,
    whose remaining work (``Content-Length``, ``Location``) :func:`render_head` does anyway.

    :param code: The response's status code.
    :return: ``(headers, body, stream)``: ``headers`` is a sequence of ``(name, value)``;
        ``body`` is the whole body or ``None``; ``stream`` is then the WSGI app iterator, or
        the response's async iterable.
    """
    items: Any = response.response
    if (
        type(items) is list
        and code != 304
        and response.automatically_set_content_length
        and not response.autocorrect_location_header
    ):
        headers = response.headers
        pairs: Any = headers._list if _HEADERS_KEEP_PAIRS and type(headers) is Headers else headers
        if len(items) == 1:
            body = items[0]
            if type(body) is bytes:
                return pairs, body, None
        elif all(type(item) is bytes for item in items):
            return pairs, b"".join(items), None
    if hasattr(items, "__aiter__"):
        return response.get_wsgi_headers(environ).to_wsgi_list(), None, items
    app_iter, _, wsgi_headers = response.get_wsgi_response(environ)
    if response.is_sequence:
        return wsgi_headers, b"".join(app_iter), None
    return wsgi_headers, None, app_iter


def _headers_keep_pairs() -> bool:
    """Whether Werkzeug's :class:`Headers` holds its pairs in a ``_list`` of tuples (then
    :func:`response_parts` hands that list over instead of copying it)."""
    headers = Headers([("A", "1")])
    headers.add("B", "2")
    return getattr(headers, "_list", None) == [("A", "1"), ("B", "2")]


_HEADERS_KEEP_PAIRS = _headers_keep_pairs()


def close_iter(stream: Any) -> None:
    """Close a WSGI app iterator, as PEP 3333 requires (async iterables are closed apart)."""
    close = getattr(stream, "close", None)
    if close is not None:
        close()


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
    for name, value in headers:
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
    head = (
        f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n"
    ).encode("ascii")
    return status_line(status) + head + _SERVER_LINE + date_line + b"\r\n" + body
