"""The bridge every backend shares: Werkzeug requests in, Werkzeug responses out.

Everything a server needs between its wire format and :meth:`Kyoukai.process_request
<kyoukai.app.Kyoukai.process_request>` lives here, once: the WSGI environ builder (for HTTP/1.1,
HTTP/2 and the test client alike), the fast construction of Werkzeug requests, the taking
apart of responses into headers and a body, and :func:`get_formatted_response`, which writes a
response as HTTP/1.1 bytes with the one head serialiser of :mod:`kyoukai._head`.

This module does no I/O and imports neither asyncio nor a transport, so it can be tested with
plain values: headers in, environ out; response in, bytes out.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any
from urllib.parse import unquote_to_bytes

from werkzeug.datastructures import EnvironHeaders, Headers
from werkzeug.wrappers import Request, Response

from kyoukai._head import check_header, http_date_line, render_head
from kyoukai._version import SERVER_HEADER

__all__ = [
    "SERVER_HEADER",
    "build_environ",
    "check_header",
    "close_iter",
    "environ_key",
    "get_formatted_response",
    "request_factory",
    "response_parts",
    "to_wsgi_environment",
]

HeaderPairs = Iterable[tuple[str | bytes, str | bytes]] | Mapping[str, str]

#: The environ keys of request header names seen before, by name as received.
_ENVIRON_KEYS: dict[bytes, str] = {}
_CACHE_CAP = 2048


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


def build_environ(
    base: dict[str, Any],
    method: str,
    protocol: str,
    target: str,
    headers: Iterable[tuple[bytes, bytes]],
) -> dict[str, Any]:
    """Build a request's :pep:`3333` environ from its parsed head.

    The query string is split off ``target`` and the path percent-decoded into ``PATH_INFO``
    (latin-1 text, PEP 3333's "bytes as str"). ``Content-Type`` and ``Content-Length`` become
    ``CONTENT_TYPE`` and ``CONTENT_LENGTH``; repeated fields are joined with ``,`` (``; `` for
    ``Cookie``), as RFC 9110 section 5.3 allows. Framing rules are the protocol's to apply
    afterwards (a repeated ``Host`` then shows as a comma in ``HTTP_HOST``).

    :param base: The connection's constant keys (addresses, ``wsgi.*``); copied, not changed.
    :param method: The request method.
    :param protocol: ``SERVER_PROTOCOL``, e.g. ``"HTTP/1.1"``.
    :param target: The request target: path and query, as received.
    :param headers: The header fields in order, as received.
    """
    environ = base.copy()
    environ["REQUEST_METHOD"] = method
    environ["REQUEST_URI"] = environ["RAW_URI"] = target
    if "?" in target:
        path, _, environ["QUERY_STRING"] = target.partition("?")
    else:
        path = target
        environ["QUERY_STRING"] = ""
    environ["PATH_INFO"] = unquote_to_bytes(path).decode("latin-1") if "%" in path else path
    environ["SERVER_PROTOCOL"] = protocol
    keys = _ENVIRON_KEYS
    for name, raw in headers:
        key = keys.get(name) or environ_key(name)
        value = raw.decode("latin-1")
        if key in environ:
            environ[key] += ("; " if key == "HTTP_COOKIE" else ",") + value
        else:
            environ[key] = value
    return environ


#: What :func:`to_wsgi_environment` puts in every environ before the request's own keys.
_DEFAULT_BASE: dict[str, Any] = {
    "SCRIPT_NAME": "",
    "SERVER_NAME": "localhost",
    "SERVER_PORT": "80",
    "wsgi.version": (1, 0),
    "wsgi.url_scheme": "http",
    "wsgi.errors": sys.stderr,
    "wsgi.multithread": False,
    "wsgi.multiprocess": False,
    "wsgi.run_once": False,
}


def _latin1(value: str | bytes) -> bytes:
    return value.encode("latin-1") if isinstance(value, str) else value


def to_wsgi_environment(
    headers: HeaderPairs,
    method: str,
    path: str,
    http_version: str,
    body: io.BytesIO | bytes | None = None,
) -> dict[str, Any]:
    """Build a :pep:`3333` environ from the parts of a parsed request.

    The same builder as the servers' (:func:`.build_environ`), with ``localhost:80`` as the
    server's address; backends add ``REMOTE_ADDR`` and friends themselves.

    :param headers: ``(name, value)`` pairs, or a mapping of names to values.
    :param method: The request method, e.g. ``"GET"``.
    :param path: The request target as sent, e.g. ``"/users/1?full=yes"``.
    :param http_version: ``"1.0"``, ``"1.1"`` or ``"2"``.
    :param body: The request body, as a file-like object or bytes.
    """
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    raw = [(_latin1(name), _latin1(value)) for name, value in pairs]
    environ = build_environ(_DEFAULT_BASE, method, f"HTTP/{http_version}", path, raw)
    if isinstance(body, bytes | bytearray):
        body = io.BytesIO(body)
    environ["wsgi.input"] = io.BytesIO() if body is None else body
    return environ


RequestFactory = Callable[[dict[str, Any], "tuple[str, int | None] | None"], Request]


def request_factory(request_class: type[Request]) -> RequestFactory:
    """How a server makes ``request_class`` objects: ``make(environ, server)``.

    Werkzeug's constructor re-reads and re-decodes what :func:`.build_environ` has just
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


def response_parts(
    response: Response, environ: dict[str, Any], code: int
) -> tuple[Any, bytes | None, Any]:
    """Take a response apart for writing: its headers, and its body in memory or as a stream.

    A body of bytes in memory (the common case) skips Werkzeug's ``get_wsgi_response``,
    whose remaining work (``Content-Length``, ``Location``) the head serialiser does anyway.

    :param response: The response to write.
    :param environ: The environ of the request it answers.
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


def get_formatted_response(response: Response, environ: dict[str, Any]) -> bytes:
    """Serialise a Werkzeug response to HTTP/1.1 bytes: status line, headers, then body.

    Werkzeug prepares the response for this request (relative ``Location`` made absolute,
    no body for ``HEAD``, 1xx, 204 and 304); the head is rendered as the built-in server
    renders it, with ``Server`` and ``Date`` added when the application did not set them and
    ``Content-Length`` whenever the body may have one. A streamed body is joined first.

    :param response: The response to serialise.
    :param environ: The WSGI environ of the request it answers.
    :raises ValueError: If a header could split the response (see :func:`.check_header`).
    """
    app_iter, _, header_list = response.get_wsgi_response(environ)
    try:
        body = b"".join(app_iter)
    finally:
        close_iter(app_iter)
    code = response.status_code
    head, _, _, _ = render_head(code, header_list, http_date_line(), True, False, len(body))
    return head + body
