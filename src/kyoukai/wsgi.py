"""The bridge every backend shares: WSGI environ building and HTTP/1.1 response bytes.

This module does no I/O and imports neither asyncio nor a transport, so it can be tested with
plain values: headers in, environ out; response in, bytes out.
"""

from __future__ import annotations

import io
import re
import sys
from collections.abc import Iterable, Mapping
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote_to_bytes

from werkzeug.wrappers import Response

from kyoukai import __version__

__all__ = ["SERVER_HEADER", "check_header", "get_formatted_response", "to_wsgi_environment"]

#: The ``Server`` header value every backend sends.
SERVER_HEADER = f"Kyoukai/{__version__}"

HeaderPairs = Iterable[tuple[str | bytes, str | bytes]] | Mapping[str, str]

_STATUS_PHRASES = {status.value: status.phrase for status in HTTPStatus}
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def to_wsgi_environment(
    headers: HeaderPairs,
    method: str,
    path: str,
    http_version: str,
    body: io.BytesIO | bytes | None = None,
) -> dict[str, Any]:
    """Build a :pep:`3333` environ from the parts of a parsed request.

    The query string is split off ``path``; ``Content-Type`` and ``Content-Length`` become
    ``CONTENT_TYPE`` and ``CONTENT_LENGTH`` (without the ``HTTP_`` prefix) and repeated headers
    are joined with ``,`` (``;`` for ``Cookie``), as RFC 9110 section 5.3 allows.
    Backends add ``REMOTE_ADDR``, ``SERVER_NAME`` and friends themselves.

    :param headers: ``(name, value)`` pairs, or a mapping of names to values.
    :param method: The request method, e.g. ``"GET"``.
    :param path: The request target as sent, e.g. ``"/users/1?full=yes"``.
    :param http_version: ``"1.0"``, ``"1.1"`` or ``"2"``.
    :param body: The request body, as a file-like object or bytes.
    """
    target, _, query = path.partition("?")
    # PATH_INFO is the percent-decoded path, as a latin-1 str (PEP 3333 "bytes as str").
    path_info = unquote_to_bytes(target).decode("latin-1") if "%" in target else target
    if isinstance(body, bytes | bytearray):
        body = io.BytesIO(body)
    elif body is None:
        body = io.BytesIO()

    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path_info,
        "QUERY_STRING": query,
        "REQUEST_URI": path,
        "RAW_URI": path,
        "SERVER_PROTOCOL": f"HTTP/{http_version}",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": body,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    for raw_name, raw_value in pairs:
        name = _text(raw_name).upper().replace("-", "_")
        value = _text(raw_value)
        if name == "CONTENT_TYPE" or name == "CONTENT_LENGTH":
            key = name
        else:
            key = "HTTP_" + name
        if key in environ:
            separator = "; " if key == "HTTP_COOKIE" else ","
            environ[key] = environ[key] + separator + value
        else:
            environ[key] = value
    return environ


def http_date() -> str:
    """The current time as an RFC 9110 ``Date`` header value."""
    return formatdate(usegmt=True)


def check_header(name: str, value: str) -> None:
    """Refuse a response header that could split the response or corrupt the head.

    Names must be RFC 9110 tokens; values must not contain CR, LF or NUL. Werkzeug only stops
    CR and LF in values, and only when they are assigned through its API.

    :raises ValueError: If the header is unsafe to write.
    """
    if _TOKEN.fullmatch(name) is None:
        raise ValueError(f"invalid response header name {name!r}")
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"response header {name!r} contains CR, LF or NUL")


def get_formatted_response(response: Response, environ: dict[str, Any]) -> bytes:
    """Serialise a Werkzeug response to HTTP/1.1 bytes: status line, headers, then body.

    Werkzeug prepares the response for this request (relative ``Location`` made absolute,
    no body for ``HEAD``, 1xx, 204 and 304). ``Server`` and ``Date`` are added when the
    application did not set them, and ``Content-Length`` whenever the body may have one.

    :param response: The response to serialise.
    :param environ: The WSGI environ of the request it answers.
    :raises ValueError: If a header could split the response (see :func:`check_header`).
    """
    app_iter, _, header_list = response.get_wsgi_response(environ)
    try:
        body = b"".join(app_iter)
    finally:
        close = getattr(app_iter, "close", None)
        if close is not None:
            close()
    code = response.status_code
    bodyless = 100 <= code < 200 or code == 204
    lines = [f"HTTP/1.1 {code} {_STATUS_PHRASES.get(code, 'Unknown')}"]
    seen = set()
    for name, value in header_list:
        check_header(name, value)
        lname = name.lower()
        if lname == "transfer-encoding" or (bodyless and lname == "content-length"):
            continue  # the body is joined here: it is never chunked
        seen.add(lname)
        lines.append(f"{name}: {value}")
    if "server" not in seen:
        lines.append(f"Server: {SERVER_HEADER}")
    if "date" not in seen:
        lines.append(f"Date: {http_date()}")
    if "content-length" not in seen and not (bodyless or code == 304):
        lines.append(f"Content-Length: {len(body)}")
    head = "\r\n".join(lines) + "\r\n\r\n"
    return head.encode("latin-1") + body
